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

from .checks import check_space, model_costs
from .cluster import (
    check_shared_storage,
    cluster_nodes,
    dashboard_url,
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
    trial_folder_name,
    write_meta,
    writing,
)
from .live import LiveState, LiveView, running_trial
from .provenance import sha256_files
from .report import Summary, summarize
from .results import load_results
from .settings import SweepSettings
from .spaces import Spec, parse_space, restrict, trial_count
from .status import format_duration
from .trainables import run_trial
from .trust import Signer, sign, untrusted_files

__all__ = ["SweepResult", "SweepSettings", "resume_sweep", "run_sweep"]


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
    spec: Spec,
    settings: SweepSettings,
    on_event: Callable[[str], None] | None = None,
    view: LiveView | None = None,
) -> SweepResult:
    """Run every trial of a space on Ray Tune, then write and return its tables and figures.

    Data is loaded once here and shared with trials through Ray's object store. Starting
    over an existing experiment is refused unless `settings.resume` is set; a resumed
    sweep runs only the trials that had not finished, each from its last checkpoint.
    `view` (a terminal's live view, live.py) is shown the trials' progress as they run.
    """
    say = on_event or (lambda message: None)
    address = resolve_address(settings.address)  # before any slow work
    experiment = settings.experiment_dir(spec.name)
    with writing(experiment):  # one writer at a time; a refused sweep leaves no folder
        return _run_sweep(spec, settings, say, address, experiment, view)


def _run_sweep(
    spec: Spec,
    settings: SweepSettings,
    say: Callable[[str], None],
    address,
    experiment: Path,
    view: LiveView | None = None,
) -> SweepResult:
    version = _check_experiment_dir(experiment, spec, settings.resume)
    if settings.resume and not settings.trust and tune.Tuner.can_restore(str(experiment)):
        _check_trusted(experiment)  # before anything is read or started
    names, sources = [t.dataset for t in spec.trials], spec.data_sources
    datasets = load_datasets(names, settings.data_dir, settings.smoke, sources)
    for name, data in datasets.items():
        say(f"{name}: {data.sizes[0]:,} train / {data.sizes[1]:,} test images from {data.source}")
    _check_batches_fit(spec, datasets)
    check_space(spec, datasets)  # every model imports, builds and fits its data
    costs = model_costs(spec, datasets)
    with ray_session(address, settings.verbose):
        sizes = {n: (*d.sizes, math.prod(d.train_images.shape[1:])) for n, d in datasets.items()}
        placement = trial_resources(spec, settings, sizes)  # refuses what fits no node
        say(placement.describe())
        if dashboard := dashboard_url():
            say(f"Ray dashboard: {dashboard}")
        check_shared_storage(experiment, cluster_nodes())
        resources = {placement.kind: placement.asks}
        trainable = tune.with_resources(
            tune.with_parameters(
                run_trial, datasets=datasets, costs=costs, experiment=str(experiment)
            ),
            # per trial: SVM trials of one space may train on different numbers of images
            lambda config: placement.asks_for(config["trial"]),
        )
        done = _finished_count(experiment) if settings.resume else 0
        param_space = _param_space(spec, settings, version)
        restoring = settings.resume and tune.Tuner.can_restore(str(experiment))
        progress = ProgressReport(
            len(spec.trials), say, done, Signer(experiment), view=view, name=experiment.name
        )
        if restoring:
            # The restored RunConfig holds the Progress callback pickled at the start; it
            # prints through the ProgressReport of this process (see Progress).
            tuner = tune.Tuner.restore(
                str(experiment), trainable, resume_errored=True, param_space=param_space
            )
        else:  # a new sweep, or one killed before Tune wrote its first state
            data = {n: _data_info(n, d, settings, sources.get(n)) for n, d in datasets.items()}
            write_meta(experiment, new_meta(spec, settings, data, resources))
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                tune_config=tune.TuneConfig(trial_dirname_creator=_dirname),
                run_config=_run_config(experiment, settings),
            )
        # Tune saves the experiment's state every 10 s or more by default; a driver killed
        # in between would, on resume, rerun trials that had finished. The state is small.
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
        try:
            with progress.active():
                tuner.fit()
        finally:  # whatever state Tune left, this run wrote it
            sign(experiment)
    summary = summarize(experiment, plots=True)
    return SweepResult(experiment, summary, progress.peak_running, resources)


def resume_sweep(
    experiment: str | Path,
    address: str | None = None,
    verbose: bool = False,
    on_event: Callable[[str], None] | None = None,
    trust: bool = False,
    view: LiveView | None = None,
) -> SweepResult:
    """Continue an interrupted sweep with the space and settings it was started with.

    Refused when this user's key did not sign the files Tune will unpickle, unless `trust`.
    """
    experiment = Path(experiment).absolute()
    meta = read_meta(experiment)
    # the size was accepted when the sweep started, whatever --trial-limit it had
    whole = parse_space(meta.space.model_dump(), meta.space_source, trial_count(meta.space))
    spec = restrict(whole, meta.selection)
    settings = replace(
        meta.settings,
        storage_path=str(experiment.parent),
        name=experiment.name,
        address=address,
        verbose=verbose,
        resume=True,
        trust=trust,
    )
    return run_sweep(spec, settings, on_event, view)


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
    if version < 2:  # experiments of 0.1.0 carried the SVM backend inside the options
        return {**space, "options": {**options, "svm_backend": settings.svm_backend}}
    return {**space, "options": options, "svm_backend": settings.svm_backend}


def _check_batches_fit(spec: Spec, datasets) -> None:
    """A batch larger than the training set would train on no full batch: refuse it here."""
    for trial in spec.trials:
        if trial.trainable == "resnet":
            images = datasets[trial.dataset].sizes[0]
            if trial.batch_size > images:
                raise TuneMnistError(
                    f"{spec.source}: batch_size {trial.batch_size:,} is larger than the "
                    f"{images:,} training images of {trial.dataset} ({trial.label})"
                )


def _finished_count(experiment: Path) -> int:
    return int((load_results(experiment)["status"] == "finished").sum())


def _run_config(experiment: Path, settings: SweepSettings) -> tune.RunConfig:
    return tune.RunConfig(
        name=experiment.name,
        storage_path=str(experiment.parent),
        failure_config=tune.FailureConfig(max_failures=settings.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        verbose=1 if settings.verbose else 0,
        callbacks=[Progress()],
    )


def _dirname(trial) -> str:
    return trial_folder_name(trial.trial_id, trial_from_dict(trial.config["trial"]))


def _check_experiment_dir(experiment: Path, spec: Spec, resume: bool) -> int:
    """Refuse to start over an experiment or to resume none; the metadata version to run.

    Cheap checks only, before the data is read.
    """
    exists = holds_experiment(experiment)
    if resume and not exists:
        raise TuneMnistError(f"--resume: no tune-mnist experiment at {experiment} to resume")
    if not resume and exists:
        raise TuneMnistError(
            f"{experiment} already holds an experiment: add --resume to continue it, "
            "or pick another --name or --storage-path"
        )
    meta = read_meta(experiment) if resume else None
    version = meta.version if meta else META_VERSION
    if meta and meta.trials != list(spec.trials):
        raise TuneMnistError(
            f"--resume: {spec.source} no longer declares the trials that {experiment} "
            "started with; resume with `tune-mnist resume EXPERIMENT_DIR`, or pick another --name"
        )
    return version


class ProgressReport:
    """What this process prints about a sweep: one line per finished trial (with the time so
    far and an estimate of the time left), peak concurrency; on a terminal, a live view.

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
        view: LiveView | None = None,
        name: str = "",
    ):
        self.total, self.say, self.finished, self.peak_running = total, say, finished, 0
        self.signer = signer
        self.view, self.name, self.failures, self.done_here = view, name, 0, 0
        self.started, self.trials, self.ended = time.monotonic(), [], set()

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
        self.trials = trials
        if self.view:
            self.view.show(self.state())

    def state(self) -> LiveState:
        """The sweep now, for the live view: counts, running trials, times."""
        running = [
            running_trial(t, _label(t))
            for t in self.trials
            if t.status == "RUNNING" and t.trial_id not in self.ended  # Tune marks it later
        ]
        return LiveState(
            name=self.name,
            total=self.total,
            finished=self.finished - self.failures,
            failed=self.failures,
            running=tuple(running),
            elapsed_s=time.monotonic() - self.started,
            done_here=self.done_here,
        )

    def _ended(self, trial) -> None:
        self.finished += 1
        self.done_here += 1
        self.ended.add(trial.trial_id)
        if self.view:
            self.view.show(self.state(), force=True)

    def _times(self) -> str:
        state = self.state()
        left = state.remaining_s
        estimate = "" if left is None else f", ~{format_duration(left)} left"
        return f" ({format_duration(state.elapsed_s)} elapsed{estimate})"

    def step_end(self, trials) -> None:
        """Sign the state Tune saved in this step: its staging copy, then the folder."""
        if self.signer is None:
            return
        if trials:
            self.signer.sign(Path(trials[0].storage.experiment_driver_staging_path))
        self.signer.sign()

    def completed(self, trial) -> None:
        self._ended(trial)
        result = trial.last_result or {}
        if result.get("diverged"):
            loss, epoch = result.get("train_loss"), result.get("epoch")
            self.say(
                f"[{self.finished}/{self.total}] {_label(trial)}: DIVERGED "
                f"(loss {loss} in epoch {epoch}; left out of the tables)" + self._times()
            )
            return
        accuracy = result.get("test_accuracy", float("nan"))
        seconds = result.get("train_time_ms", float("nan")) / 1000
        self.say(
            f"[{self.finished}/{self.total}] {_label(trial)}: {accuracy:.2f}% in {seconds:.1f}s"
            + self._times()
        )

    def failed(self, trial) -> None:
        self.failures += 1
        self._ended(trial)
        where = f" (see {trial.path}/error.txt)" if trial.path else ""
        self.say(f"[{self.finished}/{self.total}] {_label(trial)}: FAILED{where}" + self._times())

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
