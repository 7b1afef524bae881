"""Run a space as a Ray Tune grid search: cluster, resources, storage, failures, restore."""

from __future__ import annotations

import contextlib
import gc
import math
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from ray import tune

from tune_mnist.analysis.report import Summary, summarize
from tune_mnist.analysis.timing import SweepClock, split
from tune_mnist.errors import TuneMnistError
from tune_mnist.run import budget as budgets
from tune_mnist.run import session, tracking, trial_logs
from tune_mnist.run.cluster import (
    check_shared_storage,
    cluster_nodes,
    dashboard_url,
    ray_session,
    resolve_address,
    trial_resources,
)
from tune_mnist.run.extend import check_same_data, plan_extension
from tune_mnist.run.order import longest_first

# Progress stays importable from here: tuner.pkl of older experiments names it so
from tune_mnist.run.progress import Progress, ProgressReport, in_thread
from tune_mnist.run.run_plan import RunPlan
from tune_mnist.run.timeleft import View
from tune_mnist.run.trainables import run_trial
from tune_mnist.run.tune_inputs import (
    check_batches_fit,
    check_experiment_dir,
    ended_keys,
    planned,
    search_config,
    tensorboard_without_torch,
    tune_param_space,
    tune_usage_imports,
    work_left,
)
from tune_mnist.spec.budget import admitted
from tune_mnist.spec.configs import trial_from_dict
from tune_mnist.spec.spaces import Spec, parse_space, trial_count
from tune_mnist.store import storage
from tune_mnist.store.experiment import (
    Budget,
    DataInfo,
    ExperimentMeta,
    TuneRun,
    holds_experiment,
    new_meta,
    trial_folder_name,
    write_meta,
    writing,
)
from tune_mnist.store.opened import Experiment, locate, open_experiment
from tune_mnist.store.provenance import sha256_files
from tune_mnist.store.settings import SweepSettings
from tune_mnist.store.timings import read_timings, write_timing
from tune_mnist.store.trust import (
    TUNER_FILE,
    Signer,
    check_trusted,
    untrusted_files,
)
from tune_mnist.store.verified_fs import VerifiedFiles
from tune_mnist.train.checks import check_space, model_costs
from tune_mnist.train.data import dataset_files, load_datasets
from tune_mnist.train.gram import share_grams
from tune_mnist.train.split import check_validation

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
    spec: Spec,
    settings: SweepSettings,
    on_event: Callable[[str], None] | None = None,
    budget: Budget | None = None,
    extend: str | Path | None = None,
    view: View | None = None,
) -> SweepResult:
    """Run every trial of a space on Ray Tune, then write and return its tables and figures.

    Data is loaded once here and shared with trials through Ray's object store. Starting
    over an existing experiment is refused unless `settings.resume` is set; a resumed
    sweep runs only the trials that had not finished, each from its last checkpoint.
    `budget` limits the run (budget.py); `extend` names an existing experiment to which
    the space's new trials are added as a new Tune run, its finished ones reused (extend.py).
    `view` (a terminal's live view, cli/live.py) is shown the trials' progress as they run.
    """
    clock = SweepClock()  # where the time goes: timing.json (timing.py)
    say = on_event or (lambda message: None)
    address = resolve_address(settings.address)  # before any slow work
    if extend:
        experiment = Experiment(Path(extend).absolute())  # --extend: a folder (extend.py)
    else:  # object storage: its folder is the local copy
        experiment = Experiment(
            settings.experiment_dir(spec.name), settings.experiment_uri(spec.name)
        )
    if experiment.uri:
        storage.check_storage(experiment.uri)  # the bucket and keys, before anything is written
    if settings.mlflow:
        tracking.check_server(settings.mlflow)  # never train without the tracking asked for
    with writing(experiment.folder):  # one writer at a time; a refused sweep leaves no folder
        experiment = experiment.fetched(must_exist=False)
        if extend and not settings.trust:  # its trials are rebuilt from its metadata
            check_trusted(experiment.folder)
        if extend:
            plan = plan_extension(experiment.reread(), spec, settings, budget, say)
        else:
            plan = _plan(experiment, spec, settings, budget)
        if plan is None:  # an extension with nothing new to run
            return SweepResult(experiment.folder, summarize(experiment, plots=True), 0, {})
        if plan.old is not None:  # the metadata as read under the lock, once
            experiment = replace(experiment, meta=plan.old)
        return _run_sweep(plan, settings, say, address, experiment, clock, view)


def _plan(
    experiment: Experiment, spec: Spec, settings: SweepSettings, budget: Budget | None
) -> RunPlan:
    """A new sweep's Tune run, or the saved one a resume continues (in the saved order).
    A resume reads the metadata here, under the experiment's lock."""
    if settings.resume and holds_experiment(experiment.folder):
        experiment = experiment.reread()
    version = check_experiment_dir(experiment, spec, settings.resume)
    if budget and budget.max_trials and spec.search and spec.search.samples:
        raise TuneMnistError(
            "--max-trials: a sampled search runs search.num_samples trials; set that instead"
        )
    if not settings.resume:
        # a new sweep signs what Tune writes into its folder: nothing may be there before it
        # that it would then sign (a state file planted in a shared prefix, say)
        if planted := untrusted_files(experiment.folder):
            raise TuneMnistError(
                f"{experiment.shown} holds files this user's tune-mnist did not write "
                f"({', '.join(planted[:3])}): remove them, or pick another --name"
            )
        return RunPlan(
            spec, [TuneRun(trials=admitted(spec.trials, budget), budget=budget)], version
        )
    if budget:
        raise TuneMnistError(
            "--resume continues with the budget the sweep started with (and what is left of "
            "it); to run more, use `tune-mnist sweep SPACE --extend EXPERIMENT` with a budget"
        )
    meta = experiment.meta
    return RunPlan(replace(spec, trials=list(meta.trials)), meta.runs, version, meta)


def _run_sweep(
    plan: RunPlan,
    settings: SweepSettings,
    say: Callable[[str], None],
    address,
    experiment: Experiment,
    clock: SweepClock,
    view: View | None = None,
) -> SweepResult:
    folder, uri = experiment.folder, experiment.uri
    run_dir = folder / plan.run.folder  # where this Tune run keeps its state and trials
    where = experiment.place(plan.run.folder)  # where Tune reads and writes this run
    if settings.resume and (spent := budgets.spent(experiment)):
        say(f"nothing to resume: {spent}; `tune-mnist sweep SPACE --extend` runs the rest")
        return SweepResult(folder, summarize(experiment, plots=True), 0, {}, uri)
    if settings.resume and not settings.trust and tune.Tuner.can_restore(where):
        check_trusted(run_dir)  # before anything is read or started
    spec = replace(plan.spec, trials=plan.tune_trials)  # what this run trains
    names, sources = [t.dataset for t in spec.trials], spec.data_sources
    datasets = load_datasets(names, settings.data_dir, settings.smoke, sources)
    for name, data in datasets.items():
        say(f"{name}: {data.sizes[0]:,} train / {data.sizes[1]:,} test images from {data.source}")
    check_validation(spec.space.validation, {n: d.sizes[0] for n, d in datasets.items()})
    data = {n: _data_info(n, d, settings, sources.get(n)) for n, d in datasets.items()}
    if plan.old is not None and len(plan.runs) > len(plan.old.runs):  # --extend: before writing
        check_same_data(folder, plan.old, data)
    check_batches_fit(spec, datasets)
    check_space(spec, datasets)  # every model imports, builds and fits its data
    costs = model_costs(spec, datasets)
    images = {n: d.sizes for n, d in datasets.items()}  # (train, test) per dataset
    if not (settings.resume or plan.run.budget or spec.search):  # a budget: the space's order
        ordered = longest_first(spec.trials, costs, images, settings.max_epochs)
        if ordered is not None:  # kept with the run: a resume hands Tune the same order
            plan = replace(plan, runs=[*plan.runs[:-1], replace(plan.run, trials=ordered)])
            spec = replace(spec, trials=ordered)
    clock.lap("data")
    tune_imports = in_thread(tune_usage_imports)  # while Ray starts, a CPU idles
    with _collection_restored(), ray_session(address, settings.verbose, settings.dashboard):
        clock.lap("ray")
        sizes = {n: (*d.sizes, math.prod(d.train_images.shape[1:])) for n, d in datasets.items()}
        placement = trial_resources(spec, settings, sizes)  # refuses what fits no node
        say(placement.describe())
        if dashboard := dashboard_url():
            say(f"Ray dashboard: {dashboard}")
        check_shared_storage(uri or folder, cluster_nodes())
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
        ended = ended_keys(experiment, spec.trials) if settings.resume else set()
        done = len(ended)
        param_space = tune_param_space(spec, settings, plan.version)
        restoring = settings.resume and tune.Tuner.can_restore(where)
        tensorboard_without_torch()  # before Tune builds its TensorBoard logger
        signer = Signer(run_dir, uri and where)
        progress = ProgressReport(planned(spec), say, done, signer, view=view, name=folder.name)
        progress.work = work_left(spec, costs, images, settings, ended)
        progress.early_stopping = bool(spec.search and spec.search.asha)
        tracked = None
        if restoring:
            if settings.mlflow:  # the restored RunConfig holds the trials' MLflow callback
                tracked = tracking.start_sweep_run(settings.mlflow, experiment.meta, where)
            # The restored RunConfig holds the Progress callback pickled at the start; it
            # prints through the ProgressReport of this process (see Progress).
            # Tune reads the run again from `where`: through a filesystem that checks it
            # reads the bytes verified above (a file swapped meanwhile is refused)
            files, path = VerifiedFiles.over(where, run_dir)
            tuner = tune.Tuner.restore(
                path,
                trainable,
                resume_errored=True,
                param_space=param_space,
                storage_filesystem=files,
            )
        else:  # a new sweep, or one killed before Tune wrote its first state
            meta = _meta(plan, settings, data, resources)
            write_meta(folder, meta)
            experiment.signed_meta()
            experiment = replace(experiment, meta=meta)
            if settings.mlflow:
                tracked = tracking.start_sweep_run(settings.mlflow, meta, where)
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                # a trial that asks for what the last one had runs in its worker: no new
                # process, no second import of torch, Ray Tune and tune_mnist per trial
                tune_config=tune.TuneConfig(
                    trial_dirname_creator=_dirname,
                    reuse_actors=True,
                    **search_config(spec, settings),
                ),
                run_config=_run_config(where, settings, tracked, bool(plan.run.budget)),
            )
        if not restoring:  # Tune has just written tuner.pkl, for this process
            if uri:  # straight to the URI: signed as it is there now
                experiment.fetched(must_exist=False)
            signer.sign_written(TUNER_FILE)
        # Tune saves the experiment's state every 10 s or more by default; a driver killed
        # in between would, on resume, rerun trials that had finished. The state is small.
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
        clock.lap("shared")
        spending = budgets.clock(experiment)  # None without a budget
        tune_imports.result()
        try:
            with progress.active(), spending.active() if spending else contextlib.nullcontext():
                tuner.fit()
        except BaseException:
            if tracked:
                tracked.stopped()
            raise
        finally:  # whatever state Tune left, this run wrote it
            clock.lap("trials")
            progress.saved()  # Tune's last save is signed as made; if it was not, it is now
            if spending:  # signs the metadata it writes
                budgets.close_run(folder, spending)
                experiment.signed_meta()  # with what the budget spent
        experiment.put_beside(write_timing(folder, clock.timing(progress.peak_running)))
        # A local Ray takes about a second to stop and spends it waiting for its processes
        # to exit: the report is made meanwhile (Ray itself stops in this, the main thread).
        # Tune leaves cycles that hold Ray's handles; the garbage collector, run in the
        # report's thread while Ray stops, would free one there, and Ray ends the process
        # when its stopped core worker is called (seen once: exit 1, no report). So they
        # are freed now, and nothing is collected until Ray has stopped.
        gc.collect()
        gc.disable()
        report = in_thread(_timed_summary, experiment, progress.report_libraries)
    summary, report_s = report.result()
    timing = clock.timing(progress.peak_running, report_s)
    experiment.put_beside(write_timing(folder, timing))
    summary.timing = split(read_timings(folder), summary.results)  # the report's time too
    if tracked:
        tracked.finish(experiment.report, summary.complete)
    return SweepResult(folder, summary, progress.peak_running, resources, uri)


@contextlib.contextmanager
def _collection_restored() -> Iterator[None]:
    """Turn the garbage collector back on at the end, if it was on (see _run_sweep)."""
    enabled = gc.isenabled()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _timed_summary(experiment: Experiment, imports: Future | None) -> tuple[Summary, float]:
    """The experiment's tables and figures, and the seconds they took; after `imports`
    (the report's libraries, imported in a thread of their own) are done, so that the
    report never imports a module while that thread does."""
    started = time.perf_counter()
    if imports is not None:
        imports.exception()  # waits; a failed import fails again, in the report, with its error
    # what Tune wrote (to a URI too) and the metadata as the run left it, read afresh
    summary = summarize(experiment.fetched().reread(), plots=True)
    return summary, time.perf_counter() - started


def _meta(plan: RunPlan, settings: SweepSettings, data, resources) -> ExperimentMeta:
    """The metadata this run writes before Tune starts: a new sweep's, or (resume, --extend)
    the saved one's with this run's trials, data and resources added."""
    if plan.old is None:
        return new_meta(plan.spec, settings, data, resources, plan.runs, plan.version)
    old = plan.old
    data, resources = {**old.data, **data}, {**old.resources, **resources}
    meta = new_meta(plan.spec, settings, data, resources, plan.runs, plan.version)
    return replace(meta, started_at=old.started_at, provenance=old.provenance)


def resume_sweep(
    experiment: str | Path,
    address: str | None = None,
    verbose: bool = False,
    on_event: Callable[[str], None] | None = None,
    trust: bool = False,
    view: View | None = None,
    dashboard: bool = False,
) -> SweepResult:
    """Continue an interrupted sweep with the space and settings it was started with
    (a local Ray's dashboard only if `dashboard`, as for a new sweep).

    Refused when this user's key did not sign the files Tune will unpickle, unless `trust`.
    `experiment` may be a URI in object storage (storage.py).
    """
    # what to resume: read here to rebuild the space and settings; run_sweep reads the
    # metadata again under the experiment's lock, which this read does not hold
    opened = open_experiment(locate(experiment, absolute=True))
    if not trust:  # before anything it names is imported or contacted; under the lock, so
        with writing(opened.folder):  # a sweep at work on it is "in use", not "unsigned"
            check_trusted(opened.folder)
    meta = opened.meta
    if opened.uri:
        parent, name = storage.split(opened.uri)
    else:
        parent, name = str(opened.folder.parent), opened.folder.name
    # the size was accepted when the sweep started, whatever --trial-limit it had
    whole = parse_space(meta.space.model_dump(), meta.space_source, trial_count(meta.space))
    # the saved trials, in the saved order: an --extend may have added trials another space
    # declared, and experiments before balanced repeats listed their seeds side by side
    spec = replace(whole, trials=list(meta.trials), selection=meta.selection)
    settings = replace(
        meta.settings,
        storage_path=parent,
        name=name,
        address=address,
        verbose=verbose,
        resume=True,
        trust=trust,
        dashboard=dashboard,
    )
    return run_sweep(spec, settings, on_event, view=view)


def _data_info(name: str, data, settings: SweepSettings, source=None) -> DataInfo:
    """What a sweep read of one dataset, with each file's checksum."""
    files = dataset_files(name, settings.data_dir, settings.smoke, source)
    return DataInfo(data.source, *data.sizes, sha256=sha256_files(files))


def _run_config(
    where: str,
    settings: SweepSettings,
    tracked: tracking.SweepRun | None = None,
    budgeted: bool = False,
) -> tune.RunConfig:
    parent, _, name = where.rstrip("/").rpartition("/")  # a folder's path, or a URI
    return tune.RunConfig(
        name=name,
        storage_path=parent,
        failure_config=tune.FailureConfig(max_failures=settings.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        verbose=1 if settings.verbose else 0,
        callbacks=[Progress(), *trial_logs.loggers()] + ([tracked.callback()] if tracked else []),
        stop=BudgetStopper() if budgeted else None,
    )


def _dirname(trial) -> str:
    return trial_folder_name(trial.trial_id, trial_from_dict(trial.config["trial"]))


class BudgetStopper(tune.Stopper):
    """Tune's stopper for a budget, forwarding to the BudgetClock of this process's session
    (pickled with the RunConfig like Progress, so it holds nothing itself)."""

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        pass

    def __call__(self, trial_id, result) -> bool:
        if clock := session.current().clock:
            clock.observe(result)
        return False

    def stop_all(self) -> bool:
        clock = session.current().clock
        return bool(clock and clock.stop_all())
