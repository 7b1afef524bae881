"""Run a space as a Ray Tune grid search: cluster, resources, storage, failures, restore."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
from ray import tune

from . import storage, tracking
from .checks import check_space, model_costs
from .cluster import (
    check_shared_storage,
    cluster_nodes,
    ray_session,
    resolve_address,
    trial_resources,
)
from .configs import trial_from_dict, trial_to_dict
from .data import dataset_files, load_datasets
from .errors import TuneMnistError
from .experiment import (
    META_VERSION,
    DataInfo,
    holds_experiment,
    new_meta,
    read_meta,
    read_timings,
    report_dir,
    trial_folder_name,
    write_meta,
    write_timing,
    writing,
)
from .gram import share_grams
from .provenance import sha256_files
from .report import Summary, summarize
from .results import load_results
from .settings import SweepSettings
from .spaces import Spec, parse_space, restrict, trial_count
from .timing import SweepClock, split
from .trainables import run_trial
from .trust import Signer, sign, untrusted_files

__all__ = ["SweepResult", "SweepSettings", "resume_sweep", "run_sweep"]


@dataclass
class SweepResult:
    """What a finished (or partly failed) sweep left behind."""

    experiment_dir: Path  # the folder; for object storage, its local copy (storage.py)
    summary: Summary  # the study's tables, written to <experiment>/report/
    peak_running: int  # most trials Ray ran at the same time
    resources: dict[str, dict[str, float]]  # what each kind of trial asked for
    uri: str | None = None  # the experiment's URI when it lives in object storage

    @property
    def results(self) -> pd.DataFrame:
        """One row per trial: see results.load_results."""
        return self.summary.results


def run_sweep(
    spec: Spec, settings: SweepSettings, on_event: Callable[[str], None] | None = None
) -> SweepResult:
    """Run every trial of a space on Ray Tune, then write and return its tables and figures.

    Data is loaded once here and shared with trials through Ray's object store. Starting
    over an existing experiment is refused unless `settings.resume` is set; a resumed
    sweep runs only the trials that had not finished, each from its last checkpoint.
    """
    clock = SweepClock()  # where the time goes: timing.json (timing.py)
    say = on_event or (lambda message: None)
    address = resolve_address(settings.address)  # before any slow work
    experiment = settings.experiment_dir(spec.name)
    uri = settings.experiment_uri(spec.name)  # object storage: `experiment` is its copy
    if uri:
        storage.check_storage(uri)  # the bucket and credentials, before anything is written
    if settings.mlflow:
        tracking.check_server(settings.mlflow)  # never train without the tracking asked for
    with writing(experiment):  # one writer at a time; a refused sweep leaves no folder
        if uri:
            storage.fetch(uri, experiment, must_exist=False)
        return _run_sweep(spec, settings, say, address, experiment, clock, uri)


def _run_sweep(
    spec: Spec,
    settings: SweepSettings,
    say: Callable[[str], None],
    address,
    experiment: Path,
    clock: SweepClock,
    uri: str | None = None,
) -> SweepResult:
    where = uri or str(experiment)  # where Tune reads and writes the experiment
    version = _check_experiment_dir(experiment, spec, settings.resume, where)
    if settings.resume and not settings.trust and tune.Tuner.can_restore(where):
        _check_trusted(experiment)  # before anything is read or started
    names, sources = [t.dataset for t in spec.trials], spec.data_sources
    datasets = load_datasets(names, settings.data_dir, settings.smoke, sources)
    for name, data in datasets.items():
        say(f"{name}: {data.sizes[0]:,} train / {data.sizes[1]:,} test images from {data.source}")
    _check_batches_fit(spec, datasets)
    check_space(spec, datasets)  # every model imports, builds and fits its data
    costs = model_costs(spec, datasets)
    clock.lap("data")
    with ray_session(address, settings.verbose):
        clock.lap("ray")
        sizes = {n: (*d.sizes, math.prod(d.train_images.shape[1:])) for n, d in datasets.items()}
        placement = trial_resources(spec, settings, sizes)  # refuses what fits no node
        say(placement.describe())
        check_shared_storage(where, cluster_nodes())
        resources = {placement.kind: placement.asks}
        grams = share_grams(spec, datasets, placement)  # SVM kernels of one dataset: one Gram
        if grams.refs:
            say(grams.describe())
        trainable = tune.with_resources(
            tune.with_parameters(
                run_trial, datasets=datasets, costs=costs, experiment=where, grams=grams.refs
            ),
            # per trial: SVM trials of one space may train on different numbers of images
            lambda config: placement.asks_for(config["trial"]),
        )
        done = _finished_count(experiment) if settings.resume else 0
        param_space = _param_space(spec, settings, version)
        restoring = settings.resume and tune.Tuner.can_restore(where)
        progress = ProgressReport(len(spec.trials), say, done, Signer(experiment, uri))
        tracked = None
        if restoring:
            if settings.mlflow:  # the restored RunConfig holds the trials' MLflow callback
                tracked = tracking.start_sweep_run(settings.mlflow, read_meta(experiment), where)
            # The restored RunConfig holds the Progress callback pickled at the start; it
            # prints through the ProgressReport of this process (see Progress).
            tuner = tune.Tuner.restore(
                where, trainable, resume_errored=True, param_space=param_space
            )
        else:  # a new sweep, or one killed before Tune wrote its first state
            data = {n: _data_info(n, d, settings, sources.get(n)) for n, d in datasets.items()}
            meta = new_meta(spec, settings, data, resources)
            written = write_meta(experiment, meta)
            if uri:
                storage.put(written, storage.join(uri, written.name))
            if settings.mlflow:
                tracked = tracking.start_sweep_run(settings.mlflow, meta, where)
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                # a trial that asks for what the last one had runs in its worker: no new
                # process, no second import of torch, Ray Tune and tune_mnist per trial
                tune_config=tune.TuneConfig(trial_dirname_creator=_dirname, reuse_actors=True),
                run_config=_run_config(where, settings, tracked),
            )
        if uri:  # Tune wrote tuner.pkl straight to the URI: sign it as it is there now
            storage.fetch(uri, experiment, must_exist=False)
            progress.signer.sign()
        # Tune saves the experiment's state every 10 s or more by default; a driver killed
        # in between would, on resume, rerun trials that had finished. The state is small.
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
        clock.lap("shared")
        try:
            with progress.active():
                tuner.fit()
        except BaseException:
            if tracked:
                tracked.stopped()
            raise
        finally:  # whatever state Tune left, this run wrote it
            clock.lap("trials")
            progress.sign_last()
            sign(experiment)
    _record_timing(experiment, uri, clock.timing(progress.peak_running))  # the report shows it
    started = time.perf_counter()
    summary = summarize(where, plots=True)
    timing = clock.timing(progress.peak_running, time.perf_counter() - started)
    _record_timing(experiment, uri, timing)
    summary.timing = split(read_timings(experiment), summary.results)  # the report's time too
    if tracked:
        tracked.finish(report_dir(experiment), summary.complete)
    return SweepResult(experiment, summary, progress.peak_running, resources, uri)


def _record_timing(experiment: Path, uri: str | None, timing) -> None:
    """Write timing.json (and put it beside the experiment in object storage, whose copy
    a later fetch would otherwise drop)."""
    written = write_timing(experiment, timing)
    if uri:
        storage.put(written, storage.join(uri, written.name))


def resume_sweep(
    experiment: str | Path,
    address: str | None = None,
    verbose: bool = False,
    on_event: Callable[[str], None] | None = None,
    trust: bool = False,
) -> SweepResult:
    """Continue an interrupted sweep with the space and settings it was started with.

    Refused when this user's key did not sign the files Tune will unpickle, unless `trust`.
    `experiment` may be a URI in object storage (storage.py).
    """
    if storage.is_uri(experiment):
        parent, name = storage.split(str(experiment))
        meta = read_meta(storage.fetch(str(experiment)))
    else:
        experiment = Path(experiment).absolute()
        parent, name = str(experiment.parent), experiment.name
        meta = read_meta(experiment)
    # the size was accepted when the sweep started, whatever --trial-limit it had
    whole = parse_space(meta.space.model_dump(), meta.space_source, trial_count(meta.space))
    spec = restrict(whole, meta.selection)
    settings = replace(
        meta.settings,
        storage_path=parent,
        name=name,
        address=address,
        verbose=verbose,
        resume=True,
        trust=trust,
    )
    return run_sweep(spec, settings, on_event)


def _data_info(name: str, data, settings: SweepSettings, source=None) -> DataInfo:
    """What a sweep read of one dataset, with each file's checksum."""
    files = dataset_files(name, settings.data_dir, settings.smoke, source)
    return DataInfo(data.source, *data.sizes, sha256=sha256_files(files))


def _check_trusted(experiment: Path) -> None:
    """Refuse to unpickle an experiment's files unless this user's sweeps signed them."""
    if untrusted := untrusted_files(experiment):
        more = f" and {len(untrusted) - 3} more" if len(untrusted) > 3 else ""
        shown = ", ".join(untrusted[:3]) + more
        raise TuneMnistError(
            f"{experiment}: {shown} not signed by this user's tune-mnist, or changed since; "
            "resuming unpickles them, which can run code: add --trust only if you know "
            "where the folder came from"
        )


def _param_space(spec: Spec, settings: SweepSettings, version: int) -> dict:
    options = {**asdict(settings.options), "max_epochs": settings.max_epochs}
    space = {"trial": tune.grid_search([trial_to_dict(t) for t in spec.trials])}
    if spec.trainable == "custom":  # the key its tables show, which it must report
        space["metric"] = spec.space.metric
    if version < 2:  # experiments of 0.1.0 carried the SVM backend inside the options
        return {**space, "options": {**options, "svm_backend": settings.svm_backend}}
    return {**space, "options": options, "svm_backend": settings.svm_backend}


def _check_batches_fit(spec: Spec, datasets) -> None:
    """A batch larger than the training set would train on no full batch: refuse it here."""
    for trial in spec.trials:
        if trial.trainable == "resnet":  # (a custom trainable batches as it likes)
            images = datasets[trial.dataset].sizes[0]
            if trial.batch_size > images:
                raise TuneMnistError(
                    f"{spec.source}: batch_size {trial.batch_size:,} is larger than the "
                    f"{images:,} training images of {trial.dataset} ({trial.label})"
                )


def _finished_count(experiment: Path) -> int:
    return int((load_results(experiment)["status"] == "finished").sum())


def _run_config(
    where: str, settings: SweepSettings, tracked: tracking.SweepRun | None = None
) -> tune.RunConfig:
    parent, _, name = where.rstrip("/").rpartition("/")  # a folder's path, or a URI
    return tune.RunConfig(
        name=name,
        storage_path=parent,
        failure_config=tune.FailureConfig(max_failures=settings.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        verbose=1 if settings.verbose else 0,
        callbacks=[Progress()] + ([tracked.callback()] if tracked else []),
    )


def _dirname(trial) -> str:
    return trial_folder_name(trial.trial_id, trial_from_dict(trial.config["trial"]))


def _check_experiment_dir(
    experiment: Path, spec: Spec, resume: bool, shown: str | None = None
) -> int:
    """Refuse to start over an experiment or to resume none; the metadata version to run.

    Cheap checks only, before the data is read. `shown`: the experiment as the user named
    it (its URI, when `experiment` is the local copy of one).
    """
    exists = holds_experiment(experiment)
    shown = shown or str(experiment)
    if resume and not exists:
        raise TuneMnistError(f"--resume: no tune-mnist experiment at {shown} to resume")
    if not resume and exists:
        raise TuneMnistError(
            f"{shown} already holds an experiment: add --resume to continue it, "
            "or pick another --name or --storage-path"
        )
    meta = read_meta(experiment) if resume else None
    version = meta.version if meta else META_VERSION
    if meta and meta.trials != list(spec.trials):
        raise TuneMnistError(
            f"--resume: {spec.source} no longer declares the trials that {shown} "
            "started with; resume with `tune-mnist resume EXPERIMENT_DIR`, or pick another --name"
        )
    return version


class ProgressReport:
    """What this process prints about a sweep: one line per finished trial, peak concurrency.

    Tune pickles the RunConfig's callbacks into the experiment and a restored sweep runs
    the unpickled ones, so the callback (Progress) holds nothing: it forwards to the report
    made active by the process that runs `fit`, whether it started the sweep or resumed it.
    """

    _active: ProgressReport | None = None

    def __init__(
        self,
        total: int,
        say: Callable[[str], None],
        finished: int = 0,
        signer: Signer | None = None,
    ):
        self.total, self.say, self.finished, self.peak_running = total, say, finished, 0
        self.signer = signer
        self.staging: Path | None = None  # Tune's local staging copy of the experiment

    @contextlib.contextmanager
    def active(self) -> Iterator[ProgressReport]:
        ProgressReport._active = self
        try:
            yield self
        finally:
            ProgressReport._active = None

    def step(self, trials) -> None:
        running = sum(t.status == "RUNNING" for t in trials)
        self.peak_running = max(self.peak_running, running)

    def step_end(self, trials) -> None:
        """Sign the state Tune saved in this step: its staging copy, then the folder."""
        if self.signer is None:
            return
        if trials:
            self.staging = Path(trials[0].storage.experiment_driver_staging_path)
            self.signer.sign(self.staging)
        self.signer.sign()

    def sign_last(self) -> None:
        """Sign the state Tune saved after its last step (its final save, on the way out)."""
        if self.signer is not None and self.staging is not None:
            self.signer.sign(self.staging)

    def completed(self, trial) -> None:
        self.finished += 1
        result = trial.last_result or {}
        if result.get("diverged"):
            loss, epoch = result.get("train_loss"), result.get("epoch")
            self.say(
                f"[{self.finished}/{self.total}] {_label(trial)}: DIVERGED "
                f"(loss {loss} in epoch {epoch}; left out of the tables)"
            )
            return
        seconds = result.get("train_time_ms", float("nan")) / 1000
        if metric := trial.config.get("metric"):  # a custom trainable's own
            shown = f"{metric} {result.get(metric, float('nan')):.4g}"
        else:
            shown = f"{result.get('test_accuracy', float('nan')):.2f}%"
        self.say(f"[{self.finished}/{self.total}] {_label(trial)}: {shown} in {seconds:.1f}s")

    def failed(self, trial) -> None:
        self.finished += 1
        where = f" (see {trial.path}/error.txt)" if trial.path else ""
        self.say(f"[{self.finished}/{self.total}] {_label(trial)}: FAILED{where}")

    def retrying(self, trial) -> None:
        # The trial itself picks its newest readable checkpoint (trainables.newest_state),
        # which a trial killed in its first epoch does not have.
        self.say(f"retrying {_label(trial)} from its newest saved epoch, or from the start")


def _label(trial) -> str:
    return trial_from_dict(trial.config["trial"]).label


class Progress(tune.Callback):
    """Tune's trial events, forwarded to the active ProgressReport of this process."""

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:  # 0.1.0 pickled counters here: dropped
        pass

    def on_step_begin(self, iteration, trials, **info):
        self._forward("step", trials)

    def on_step_end(self, iteration, trials, **info):
        self._forward("step_end", trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._forward("completed", trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._forward("failed", trial)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._forward("retrying", trial)

    @staticmethod
    def _forward(event: str, *args) -> None:
        if ProgressReport._active:  # None outside fit: nobody to tell
            getattr(ProgressReport._active, event)(*args)
