"""Run a space as a Ray Tune grid search: cluster, resources, storage, failures, restore."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import ray
from ray import tune

from .cluster import Placement, check_shared_storage, cluster_nodes, plan
from .data import load_datasets
from .errors import TuneMnistError
from .models import model_cost
from .report import Summary, summarize
from .results import META_FILE, load_results, read_meta, write_meta
from .spaces import Selection, Spec, parse_space, restrict, trial_label
from .train import TrainOptions


@dataclass
class SweepSettings:
    """Everything about a sweep that is not in the space file."""

    data_dir: str | None = None  # else $TUNE_MNIST_DATA, the cache, or (smoke) the sample
    smoke: bool = False  # ~1,000/500 images per dataset and 1 epoch per trial
    address: str | None = None  # a running cluster; else $RAY_ADDRESS; else a local Ray
    storage_path: str | None = None  # experiments live in <storage_path>/<name>
    name: str | None = None  # default: the space's name, "-smoke" added for smoke runs
    gpus_per_trial: float | None = None  # GPU fraction per ResNet trial; else the space's
    svm_cpus: float = 1.0  # CPUs per SVM trial
    svm_resource: str = "svm_worker"  # custom resource marking CPU workers for SVM trials
    svm_backend: str = "precomputed"  # see svm.py: same predictions as plain SVC, faster
    max_failures: int = 2  # retries of a trial whose worker dies, from its last checkpoint
    resume: bool = False  # continue the experiment at <storage_path>/<name>
    verbose: bool = False  # Ray's own logs and progress tables
    options: TrainOptions = field(default_factory=TrainOptions)

    def experiment_dir(self, spec: Spec) -> Path:
        """Absolute path of this sweep's experiment (Ray rejects relative storage paths)."""
        root = self.storage_path or os.environ.get("TUNE_MNIST_RESULTS", "ray_results")
        if "://" in str(root):
            raise TuneMnistError(
                f"storage path {root}: cloud URIs are not supported yet; use a folder that "
                "every node mounts (NFS, a shared volume)"
            )
        name = self.name or (f"{spec.name}-smoke" if self.smoke else spec.name)
        return Path(root).expanduser().absolute() / name


@dataclass
class SweepResult:
    """What a finished (or partly failed) sweep left behind."""

    experiment_dir: Path
    summary: Summary  # the study's tables, written to <experiment>/report/
    peak_running: int  # most trials Ray ran at the same time
    resources: dict[str, dict[str, float]]  # what each kind of trial asked for

    @property
    def results(self) -> pd.DataFrame:
        """One row per trial: see results.load_results."""
        return self.summary.results


def run_sweep(
    spec: Spec, settings: SweepSettings, on_event: Callable[[str], None] | None = None
) -> SweepResult:
    """Run every trial of a space on Ray Tune, then write and return its tables.

    Data is loaded once here and shared with trials through Ray's object store. Starting
    over an existing experiment is refused unless `settings.resume` is set; a resumed
    sweep runs only the trials that had not finished, each from its last checkpoint.
    """
    say = on_event or (lambda message: None)
    address = resolve_address(settings.address)  # before any slow work
    if settings.gpus_per_trial is not None and settings.gpus_per_trial <= 0:
        raise TuneMnistError(f"--gpus-per-trial {settings.gpus_per_trial:g}: expected more than 0")
    experiment = settings.experiment_dir(spec)
    _check_experiment_dir(experiment, spec, settings.resume)
    datasets = load_datasets([t["dataset"] for t in spec.trials], settings.data_dir, settings.smoke)
    for name, data in datasets.items():
        say(f"{name}: {data.sizes[0]:,} train / {data.sizes[1]:,} test images from {data.source}")
    costs = {t["model"]: model_cost(t["model"]) for t in spec.trials if "model" in t}
    with ray_session(address, settings.verbose):
        placement = trial_resources(spec, settings)
        say(placement.describe())
        check_shared_storage(experiment, cluster_nodes())
        resources = {placement.kind: placement.asks}
        trainable = tune.with_resources(
            tune.with_parameters(_trainable(), datasets=datasets, costs=costs),
            lambda config: resources[config["trial"]["trainable"]],
        )
        done = _finished_count(experiment) if settings.resume else 0
        progress = Progress(len(spec.trials), say, finished=done)
        if settings.resume and tune.Tuner.can_restore(str(experiment)):
            tuner = tune.Tuner.restore(
                str(experiment),
                trainable,
                resume_errored=True,
                param_space=_param_space(spec, settings),
            )
            # The restored RunConfig is the pickled one, whose printer prints nowhere.
            tuner._local_tuner._run_config.callbacks = [progress]
        else:  # a new sweep, or one killed before Tune wrote its first state
            write_meta(experiment, spec, settings, datasets, resources)
            tuner = tune.Tuner(
                trainable,
                param_space=_param_space(spec, settings),
                tune_config=tune.TuneConfig(trial_dirname_creator=_dirname),
                run_config=_run_config(experiment, settings, progress),
            )
        # Tune saves the experiment's state every 10 s or more by default; a driver killed
        # in between would, on resume, rerun trials that had finished. The state is small.
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
        tuner.fit()
    return SweepResult(experiment, summarize(experiment), progress.peak_running, resources)


def resume_sweep(
    experiment: str | Path,
    address: str | None = None,
    verbose: bool = False,
    on_event: Callable[[str], None] | None = None,
) -> SweepResult:
    """Continue an interrupted sweep with the space and settings it was started with."""
    experiment = Path(experiment).absolute()
    meta = read_meta(experiment)
    selection = meta.get("selection")
    spec = restrict(
        parse_space(meta["space"], meta["space_source"]),
        Selection(**selection) if selection else None,
    )
    saved = meta["settings"]
    settings = SweepSettings(
        **{
            **saved,
            "options": TrainOptions(**saved["options"]),
            "storage_path": str(experiment.parent),
            "name": experiment.name,
            "address": address,
            "verbose": verbose,
            "resume": True,
        }
    )
    return run_sweep(spec, settings, on_event)


def _param_space(spec: Spec, settings: SweepSettings) -> dict:
    max_epochs = 1 if settings.smoke else settings.options.max_epochs
    options = {
        **asdict(settings.options),
        "max_epochs": max_epochs,
        "svm_backend": settings.svm_backend,
    }
    return {"trial": tune.grid_search(spec.trials), "options": options}


def _finished_count(experiment: Path) -> int:
    return int((load_results(experiment)["status"] == "finished").sum())


def _trainable():
    from .trainables import run_trial

    return run_trial


def _run_config(experiment: Path, settings: SweepSettings, progress: Progress):
    return tune.RunConfig(
        name=experiment.name,
        storage_path=str(experiment.parent),
        failure_config=tune.FailureConfig(max_failures=settings.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        verbose=1 if settings.verbose else 0,
        callbacks=[progress],
    )


def _dirname(trial) -> str:
    config = trial.config["trial"]
    return f"{trial.trial_id}_{trial_label(config).replace('/', '_')}"


def _check_experiment_dir(experiment: Path, spec: Spec, resume: bool) -> None:
    exists = (experiment / META_FILE).is_file()
    if resume and not exists:
        raise TuneMnistError(f"--resume: no tune-mnist experiment at {experiment} to resume")
    if not resume and exists:
        raise TuneMnistError(
            f"{experiment} already holds an experiment: add --resume to continue it, "
            "or pick another --name or --storage-path"
        )
    if resume and read_meta(experiment)["trials"] != spec.trials:
        raise TuneMnistError(
            f"--resume: {spec.source} no longer declares the trials that {experiment} "
            "started with; resume with `tune-mnist resume EXPERIMENT_DIR`, or pick another --name"
        )
    try:
        experiment.mkdir(parents=True, exist_ok=True)
        probe = experiment / f".write-test-{uuid.uuid4().hex}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise TuneMnistError(
            f"cannot write to storage path {experiment.parent}: {e.strerror}"
        ) from None


def trial_resources(spec: Spec, settings: SweepSettings) -> Placement:
    """What this space's trials ask for on the connected cluster, and where they fit."""
    gpu = settings.gpus_per_trial
    return plan(
        spec.space.trainable,
        cluster_nodes(),
        gpu=gpu if gpu is not None else spec.space.resources.gpu,
        cpu=spec.space.resources.cpu,
        gpu_explicit=gpu is not None,
        svm_cpus=settings.svm_cpus,
        svm_resource=settings.svm_resource,
    )


def resolve_address(address: str | None) -> str | None:
    """The cluster to join (`address`, else $RAY_ADDRESS), checked reachable; None: a local Ray."""
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        check_reachable(address)
    return address


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast, with one line, when nothing listens at a cluster's host:port.

    Ray itself retries an unreachable address for many minutes before it gives up.
    """
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except ValueError:
        raise TuneMnistError(f"--address {address}: expected HOST:PORT") from None
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise TuneMnistError(f"cannot connect to Ray at {address}: {reason}") from None


@contextlib.contextmanager
def ray_session(address: str | None, verbose: bool) -> Iterator[None]:
    """Join the cluster at `address` (see resolve_address), or start a local Ray for this sweep.

    A Ray already initialized in this process is used as it is and left running.
    """
    if ray.is_initialized():
        yield
        return
    level = logging.INFO if verbose else logging.ERROR
    if not verbose:  # Tune's newer console output prints its banner even at verbose=0
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        # A failed trial is one line from Progress and its error.txt, not a traceback here.
        logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    try:
        if address:
            ray.init(address=address, logging_level=level, log_to_driver=verbose)
        else:
            # "local": always a new instance, never a cluster that `ray start` left behind
            ray.init(
                address="local",
                dashboard_host="127.0.0.1",
                logging_level=level,
                log_to_driver=verbose,
            )
    except Exception as e:  # ConnectionError, TimeoutError, auth failures: one line each
        if _caused_by(e, ray.exceptions.AuthenticationError):
            raise TuneMnistError(
                f"the Ray cluster at {address} requires a token and none was accepted: "
                "set RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN, "
                "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token"
            ) from None
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TuneMnistError(
            f"cannot connect to Ray at {address or 'a local instance'}: {message}"
        ) from None
    try:
        yield
    finally:
        ray.shutdown()


def _caused_by(error: BaseException | None, kind: type) -> bool:
    while error is not None:
        if isinstance(error, kind):
            return True
        error = error.__cause__ or error.__context__
    return False


class Progress(tune.Callback):
    """A Tune callback that prints one line per trial and tracks peak concurrency."""

    def __init__(self, total: int, say: Callable[[str], None], finished: int = 0):
        self.total, self.say, self.finished, self.peak_running = total, say, finished, 0

    def __getstate__(self) -> dict:
        # Tune pickles the RunConfig into the experiment; a printer does not pickle.
        return {"total": self.total, "finished": 0, "peak_running": 0}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, say=lambda message: None)

    def on_step_begin(self, iteration, trials, **info):
        running = sum(t.status == "RUNNING" for t in trials)
        self.peak_running = max(self.peak_running, running)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.finished += 1
        result = trial.last_result or {}
        accuracy = result.get("test_accuracy", float("nan"))
        seconds = result.get("train_time_ms", float("nan")) / 1000
        self.say(
            f"[{self.finished}/{self.total}] {trial_label(trial.config['trial'])}: "
            f"{accuracy:.2f}% in {seconds:.1f}s"
        )

    def on_trial_error(self, iteration, trials, trial, **info):
        self.finished += 1
        where = f" (see {trial.path}/error.txt)" if trial.path else ""
        self.say(
            f"[{self.finished}/{self.total}] {trial_label(trial.config['trial'])}: FAILED{where}"
        )

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.say(f"retrying {trial_label(trial.config['trial'])} from its last checkpoint")
