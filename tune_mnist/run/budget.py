"""A budget at work while a sweep runs: the clock, Tune's stop, what each run spent.

The budget itself (what may be spent, from the command line) is spec/budget.py; what it
left out, as the report shows it, is analysis/budget_table.py.

A budget belongs to one Tune run of an experiment (experiment.TuneRun) and is saved with
it, together with what the run spent, so that `resume` continues with what is left:

- `--max-trials N`: Tune is given only the first N trials (in the space's balanced order,
  so N a multiple of the configurations is a complete design at fewer seeds); the rest are
  never created, never started.
- `--time-budget 2h`: wall-clock seconds of the sweep's Tune loop, summed over resumes.
- `--max-gpu-hours H`: GPU-seconds as the report's compute table counts them (train time x
  the GPU fraction a trial held), summed over the run's trials, resumes included.

When time or GPU-seconds run out, Tune's stopper ends the run: trials not started are not
started, running ones stop (each keeps its last per-epoch checkpoint; none is counted as
finished) and everything Tune and the trials wrote stays. The report then says the sweep
stopped on its budget and lists the trials that did not run; `sweep SPACE --extend EXP`
runs them later (extend.py) while reusing every finished one.

The Tune adapter (sweep.BudgetStopper) holds nothing: Tune pickles it into the experiment,
so it forwards to the BudgetClock lent to the driver session (session.py), as
progress.Progress does.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from tune_mnist.run import session
from tune_mnist.spec.budget import Budget, duration
from tune_mnist.spec.configs import trial_key
from tune_mnist.store.experiment import META_FILE, ExperimentMeta, TuneRun, update_meta
from tune_mnist.store.opened import Experiment
from tune_mnist.store.results import load_experiment, load_results
from tune_mnist.store.trust import sign

__all__ = ["BudgetClock"]

SAVE_EVERY_S = 5.0  # how often a running sweep records the time it has spent


def gpu_seconds_spent(
    meta: ExperimentMeta, results: pd.DataFrame, run: TuneRun
) -> dict[str, float]:
    """Per trial of one run, the GPU-seconds its files report (results.with_compute)."""
    spent = dict(zip(map(trial_key, meta.trials), results["gpu_seconds"], strict=True))
    return {
        key: float(spent[key])
        for key in map(trial_key, meta.run_trials(run))
        if key in spent and pd.notna(spent[key])
    }


class BudgetClock:
    """What one Tune run of this process has spent, and whether its budget is out.

    `spent_s` and the GPU-seconds start from what earlier runs of the same Tune run (before
    a resume) recorded; `save` is called every SAVE_EVERY_S with the seconds spent so far,
    so a driver killed at any moment loses at most that much of its account.
    """

    def __init__(
        self,
        budget: Budget,
        spent_s: float = 0.0,
        gpu_seconds: dict[str, float] | None = None,
        save: Callable[[float], None] | None = None,
    ):
        self.budget, self.before_s, self.save = budget, spent_s, save
        self.gpu_seconds = dict(gpu_seconds or {})
        self.started: float | None = None
        self.saved_at = 0.0
        self.stopped: str | None = None  # why it ran out, once it has

    @property
    def spent_s(self) -> float:
        """Wall-clock seconds spent, this process's included."""
        running = time.monotonic() - self.started if self.started is not None else 0.0
        return self.before_s + running

    @property
    def spent_gpu_seconds(self) -> float:
        return sum(self.gpu_seconds.values())

    def out(self) -> str | None:
        """Why the budget is spent, in words; None while some is left."""
        budget = self.budget
        if budget.time_s is not None and self.spent_s >= budget.time_s:
            return f"time budget of {duration(budget.time_s)} spent ({duration(self.spent_s)})"
        if budget.gpu_seconds is not None and self.spent_gpu_seconds >= budget.gpu_seconds:
            return (
                f"GPU budget of {budget.gpu_seconds / 3600:g} GPU-hours spent "
                f"({self.spent_gpu_seconds:,.1f} GPU-seconds)"
            )
        return None

    @contextlib.contextmanager
    def active(self) -> Iterator[BudgetClock]:
        """Count this process's time, and let the stopper Tune holds reach this clock."""
        self.started = time.monotonic()
        try:
            with session.lent("clock", self):
                yield self
        finally:
            self.before_s, self.started = self.spent_s, None

    def observe(self, result: dict[str, Any]) -> None:
        """A trial's report: its GPU-seconds so far (train time is cumulative over resumes)."""
        trial = (result.get("config") or {}).get("trial")
        train_ms, gpus = result.get("train_time_ms"), result.get("assigned_gpus")
        if isinstance(trial, dict) and isinstance(train_ms, int | float) and gpus:
            self.gpu_seconds[trial_key(trial)] = train_ms / 1000 * gpus

    def stop_all(self) -> bool:
        """Tune asks this at every step of its loop: True ends the run."""
        now = time.monotonic()
        if self.save and now - self.saved_at >= SAVE_EVERY_S:
            self.saved_at = now
            self.save(self.spent_s)
        if self.stopped is None:
            self.stopped = self.out()
        return self.stopped is not None


def clock(experiment: Experiment) -> BudgetClock | None:
    """A clock for the latest run of an opened experiment, from what it spent before; None
    when that run has no budget."""
    meta = experiment.meta
    if not meta.run.budget:
        return None
    gpu = gpu_seconds_spent(meta, load_experiment(experiment).results, meta.run)
    save = functools.partial(_save_run, experiment.folder, "spent_s")
    return BudgetClock(meta.run.budget, meta.run.spent_s, gpu, save)


def spent(experiment: Experiment) -> str | None:
    """Why the latest run's budget is spent (recorded then, if it was not yet); None while
    some is left or it has none: what a resume asks before starting anything."""
    meta = experiment.meta
    if meta.run.stopped or not meta.run.budget:
        return meta.run.stopped
    reason = clock(experiment).out()
    if reason:
        _save_run(experiment.folder, "stopped", reason)
    return reason


def close_run(experiment: Path, clock: BudgetClock) -> None:
    """Record, as a run ends (finished, stopped or interrupted), what it spent and why its
    budget stopped it, if it did."""
    results = load_results(experiment)  # the metadata the run has been updating, read now

    def closed(meta: ExperimentMeta) -> ExperimentMeta:
        status = dict(zip(map(trial_key, meta.trials), results["status"], strict=True))
        ran = {trial_key(t) for t in meta.run_trials(meta.run)}
        unfinished = sum(status[k] in ("pending", "running") for k in ran)
        not_admitted = sum(s == "pending" for k, s in status.items() if k not in ran)
        run = finished_run(meta.run, clock, unfinished, not_admitted)
        return replace(meta, runs=[*meta.runs[:-1], run])

    update_meta(experiment, closed)
    sign(experiment, META_FILE)


def _save_run(experiment: Path, key: str, value: Any) -> None:
    update_meta(
        experiment,
        lambda meta: replace(meta, runs=[*meta.runs[:-1], replace(meta.run, **{key: value})]),
    )
    sign(experiment, META_FILE)  # what a resume reads next


def finished_run(
    run: TuneRun, clock: BudgetClock | None, unfinished: int, not_admitted: int
) -> TuneRun:
    """The run as it ended: time spent, and why its budget stopped it (if it did).

    `unfinished`: its trials neither finished nor failed; `not_admitted`: trials of the
    experiment that --max-trials kept out of it. A run with unfinished trials and a budget
    left was interrupted (Ctrl-C), not stopped; one where everything ran was not stopped.
    """
    spent = clock.before_s if clock else run.spent_s
    gpu = clock.spent_gpu_seconds if clock else run.spent_gpu_s
    stopped = None
    if unfinished or not_admitted:
        stopped = clock.stopped if clock else run.stopped
        if stopped is None and not unfinished and run.budget and run.budget.max_trials:
            stopped = f"--max-trials {run.budget.max_trials} reached"
    return replace(run, spent_s=spent, spent_gpu_s=gpu, stopped=stopped)
