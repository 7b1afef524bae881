"""What a sweep's driver tells its user while Tune runs the trials: a line per ended trial
with the time so far and an estimate of the time left, a live view on a terminal, and the
signing of each state Tune saves (trust.py).

`Progress` is the Tune callback; it holds nothing (Tune pickles it into the experiment)
and forwards Tune's events to the `ProgressReport` of the process running `fit`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ray import tune

from tune_mnist.analysis.report import load_report_libraries
from tune_mnist.analysis.status import format_duration
from tune_mnist.run import session
from tune_mnist.run.timeleft import (
    LiveState,
    RunningTrial,
    View,
    Work,
    reported_epoch,
    running_trial,
)
from tune_mnist.spec.configs import trial_from_dict, trial_key
from tune_mnist.store import storage
from tune_mnist.store.experiment import mark_stopped_early
from tune_mnist.store.trust import Signer

T = TypeVar("T")


def in_thread(work: Callable[..., T], *args) -> Future[T]:
    """`work(*args)` started in a thread of its own; its Future returns or raises its end."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tune-mnist")
    try:
        return pool.submit(work, *args)
    finally:
        pool.shutdown(wait=False)  # the thread ends with its work


class ProgressReport:
    """What this process prints about a sweep: one line per finished trial (with the time so
    far and an estimate of the time left), peak concurrency; on a terminal, a live view.

    Tune pickles the RunConfig's callbacks into the experiment and a restored sweep runs
    the unpickled ones, so the callback (Progress) holds nothing: it forwards to the report
    lent to the driver session (session.py) by the process that runs `fit`, whether it
    started the sweep or resumed it.
    """

    def __init__(
        self,
        total: int,
        say: Callable[[str], None],
        finished: int = 0,
        signer: Signer | None = None,
        view: View | None = None,
        name: str = "",
    ):
        self.total, self.say, self.finished, self.peak_running = total, say, finished, 0
        self.signer = signer
        self.staging: Path | None = None  # Tune's local staging copy of the experiment
        self.saves_signed = False  # Tune's saves are signed as it makes them (get_state)
        self.early_stopping = False  # a scheduler may stop trials: mark those it stops
        self.view, self.name, self.failures, self.done_here = view, name, 0, 0
        self.started, self.trials, self.ended = time.monotonic(), [], set()
        self.report_libraries: Future | None = None  # imported once a slot has gone idle
        # trial key -> estimated work, for the trials left to run (None: not known)
        self.work: dict[str, float] | None = None
        self.work_ended = 0.0  # done here by the trials that ended here
        self.ended_s = 0.0  # the seconds those trials ran here, summed
        self.first_epoch: dict[str, int] = {}  # trial id -> its epochs when first seen
        self.since: dict[str, float] = {}  # trial id -> when first seen running

    def active(self) -> contextlib.AbstractContextManager[ProgressReport]:
        """Lend this report to the Progress callback Tune holds (session.py) while fit runs."""
        return session.lent("progress", self)

    def step(self, trials) -> None:
        self._note_staging(trials)
        now, running = time.monotonic(), 0
        for trial in trials:  # a restored trial has done some epochs before this process
            if trial.trial_id not in self.first_epoch:
                self.first_epoch[trial.trial_id] = reported_epoch(trial) or 0
            if trial.status == "RUNNING":
                self.since.setdefault(trial.trial_id, now)
                running += 1
        self.peak_running = max(self.peak_running, running)
        self.trials = trials
        if self.view:
            self.view.show(self.state())

    def state(self) -> LiveState:
        """The sweep now, for the live view: counts, running trials, times."""
        work, running = self.work or {}, []
        for t in self.trials:
            if t.status == "RUNNING" and t.trial_id not in self.ended:  # Tune marks it later
                key = _key(t)
                running.append((key, self._progress(t, label(t), work.get(key, 0.0))))
        return LiveState(
            name=self.name,
            total=self.total,
            finished=self.finished - self.failures,
            failed=self.failures,
            running=tuple(trial for _, trial in running),
            elapsed_s=time.monotonic() - self.started,
            done_here=self.done_here,
            work=None if self.work is None else self._work(self.work, dict(running)),
        )

    def _work(self, work: dict[str, float], running: dict[str, RunningTrial]) -> Work:
        """The estimate's work: `work` of the trials left, `running` ones by trial key."""
        left = [w - (running[k].work_done if k in running else 0.0) for k, w in work.items()]
        return Work(
            ended=self.work_ended,
            ended_s=self.ended_s,
            left=sum(work.values()),
            largest_left=max(left, default=0.0),
            slots=self.peak_running,
        )

    def _progress(self, trial, shown: str, work: float = 0.0) -> RunningTrial:
        since = self.since.get(trial.trial_id)
        running_s = time.monotonic() - since if since is not None else 0.0
        return running_trial(trial, shown, work, self.first_epoch.get(trial.trial_id, 0), running_s)

    def _ended(self, trial, completed: bool = True) -> None:
        self.finished += 1
        self.done_here += 1
        self.ended.add(trial.trial_id)
        if self.work is not None:
            # what it did here: its epochs' share (a trial stopped early did part), else
            # all of it if it completed (an SVM), none if it failed
            work = self.work.pop(_key(trial), 0.0)
            did = self._progress(trial, "", work)
            self.work_ended += did.work_done_here if did.epochs else work * completed
            self.ended_s += did.running_s
            self.since.pop(trial.trial_id, None)
        if self.view:
            self.view.show(self.state(), force=True)
        if self.report_libraries is None and self.total - self.finished < self.peak_running:
            # fewer trials left than have run at once: a CPU stays idle till the end;
            # import the report's libraries on it instead of after the last trial
            self.report_libraries = in_thread(load_report_libraries)

    def _times(self) -> str:
        state = self.state()
        left = state.remaining_s
        estimate = "" if left is None else f", ~{format_duration(left)} left"
        return f" ({format_duration(state.elapsed_s)} elapsed{estimate})"

    def saved(self) -> None:
        """Sign the state Tune has just staged, before Tune starts copying it to the
        experiment (see Progress.get_state)."""
        if self.signer is not None and self.staging is not None:
            self.signer.sign_copy(self.staging)
            self.saves_signed = True

    def step_end(self, trials) -> None:
        """Sign the staged state until saves are signed as Tune makes them (its first
        save comes before any trial shows the staging folder)."""
        if self.signer is None:
            return
        self._note_staging(trials)
        if not self.saves_signed:
            self.saved()

    def _note_staging(self, trials) -> None:
        if trials and self.signer is not None:  # where Tune stages the state it saves
            self.staging = Path(trials[0].storage.experiment_driver_staging_path)

    def completed(self, trial) -> None:
        self._ended(trial)
        result = trial.last_result or {}
        if result.get("diverged"):
            loss, epoch = result.get("train_loss"), result.get("epoch")
            self.say(
                f"[{self.finished}/{self.total}] {label(trial)}: DIVERGED "
                f"(loss {loss} in epoch {epoch}; left out of the tables)" + self._times()
            )
            return
        seconds = result.get("train_time_ms", float("nan")) / 1000
        if self.early_stopping and not result.get("trial_finished"):
            epoch, accuracy = result.get("epoch"), result.get("test_accuracy", float("nan"))
            if trial.path and not storage.is_uri(trial.path):
                mark_stopped_early(Path(trial.path), epoch)
            self.say(
                f"[{self.finished}/{self.total}] {label(trial)}: stopped early after epoch "
                f"{epoch} (ASHA; {accuracy:.2f}% test, left out of the tables' numbers)"
                + self._times()
            )
            return
        if metric := trial.config.get("metric"):  # a custom trainable's own
            shown = f"{metric} {result.get(metric, float('nan')):.4g}"
        else:
            shown = f"{result.get('test_accuracy', float('nan')):.2f}%"
        self.say(
            f"[{self.finished}/{self.total}] {label(trial)}: {shown} in {seconds:.1f}s"
            + self._times()
        )

    def failed(self, trial) -> None:
        self.failures += 1
        self._ended(trial, completed=False)
        where = f" (see {trial.path}/error.txt)" if trial.path else ""
        self.say(f"[{self.finished}/{self.total}] {label(trial)}: FAILED{where}" + self._times())

    def retrying(self, trial) -> None:
        # The trial itself picks its newest readable checkpoint (trainables.newest_state),
        # which a trial killed in its first epoch does not have.
        self.say(f"retrying {label(trial)} from its newest saved epoch, or from the start")


def label(trial) -> str:
    return trial_from_dict(trial.config["trial"]).label


def _key(trial) -> str:
    """A Tune trial's budget.trial_key, through its config (the planned trials' key form)."""
    return trial_key(trial_from_dict(trial.config["trial"]))


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

    def get_state(self) -> None:
        # Tune asks for callbacks' state as the last part of each save, after writing the
        # experiment and search states to its staging folder and before it starts copying
        # that folder to the experiment's storage in the background: signing here puts the
        # signatures there first, so a driver killed mid-copy leaves signed state behind.
        self._forward("saved")
        return None  # no state of its own: Tune writes no callback-state file

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._forward("completed", trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._forward("failed", trial)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._forward("retrying", trial)

    @staticmethod
    def _forward(event: str, *args) -> None:
        report = session.current().progress
        if report:  # None outside fit: nobody to tell
            getattr(report, event)(*args)
