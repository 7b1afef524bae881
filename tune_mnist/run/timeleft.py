"""The time-left model of a running sweep: its trials by state, the work they stand for, and
an estimate of the time left from the work per slot-second of the trials that ended.

progress.ProgressReport builds a LiveState from Tune's trials at each step of Tune's loop
and hands it to a View: the terminal's live view (cli/live.py), or none where there is no
terminal (CI, job logs), where the sweep prints one plain line per event instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tune_mnist.analysis.status import format_duration


class View(Protocol):
    """Where a sweep shows its progress as it runs (cli/live.py's LiveView on a terminal)."""

    def say(self, message: str) -> None:
        """A line for the user, above whatever the view shows."""

    def show(self, state: LiveState, force: bool = False) -> None:
        """The sweep as it is now."""


@dataclass(frozen=True)
class RunningTrial:
    """A trial Tune is running: how far it got."""

    label: str
    epoch: int | None = None  # the latest epoch reported (ResNets)
    epochs: int | None = None  # the epochs it trains (ResNets)
    accuracy: float | None = None  # latest test accuracy, %
    work: float = 0.0  # its estimated work in all (order.estimated_work); 0: unknown
    from_epoch: int = 0  # the epochs it had done when this process started watching it
    running_s: float = 0.0  # how long it has run in this process

    @property
    def work_done(self) -> float:
        """The share of its work its reported epochs stand for (0 without epochs)."""
        return self._share(self.epoch or 0)

    @property
    def work_done_here(self) -> float:
        """The share of its work done since this process started watching it."""
        return self._share(self.epoch or 0) - self._share(self.from_epoch)

    def _share(self, epoch: int) -> float:
        if not (self.work and self.epochs):
            return 0.0
        return self.work * min(epoch / self.epochs, 1.0)


@dataclass(frozen=True)
class Work:
    """The estimated work (order.estimated_work) behind the time-left estimate."""

    ended: float = 0.0  # done in this process by the trials that ended in it
    ended_s: float = 0.0  # the seconds those trials ran in it, summed: slot-seconds
    left: float = 0.0  # of the trials not ended, running ones whole
    largest_left: float = 0.0  # of the one trial with the most left (net of its epochs)
    slots: int = 1  # trials run at once, at most so far

    def remaining_s(self, running: tuple[RunningTrial, ...]) -> float | None:
        """The work left, spread over the slots, at the rate per slot of the trials that
        ended in this process (before any: of the running ones' epochs); never less than
        the one trial with the most left needs alone. None before there is a rate."""
        epochs_here = sum(trial.work_done_here for trial in running)
        if self.ended > 0 and self.ended_s > 0:
            rate = self.ended / self.ended_s
        elif epochs_here > 0 and (running_s := sum(trial.running_s for trial in running)) > 0:
            rate = epochs_here / running_s
        else:
            return None
        left = max(self.left - sum(trial.work_done for trial in running), 0.0)
        return max(left / (rate * max(self.slots, 1)), self.largest_left / rate)


@dataclass(frozen=True)
class LiveState:
    """What the live view shows at one moment."""

    name: str  # the experiment's
    total: int  # trials this sweep runs, including those finished before a resume
    finished: int  # finished (or diverged), whenever
    failed: int
    running: tuple[RunningTrial, ...] = ()
    elapsed_s: float = 0.0  # since this process started the sweep (or resumed it)
    done_here: int = 0  # trials that ended in this process: the rate the estimate uses
    work: Work | None = None  # None: some trial's work is not known (counts are used)

    @property
    def pending(self) -> int:
        return max(0, self.total - self.finished - self.failed - len(self.running))

    @property
    def remaining_s(self) -> float | None:
        """From the estimated work left (Work.remaining_s); without work estimates, the
        trials left at the rate trials ended in this run. None before there is a rate.
        Work is an estimate (order.py), so the time left is too."""
        left = self.total - self.finished - self.failed
        if left <= 0:
            return 0.0
        if self.elapsed_s <= 0:
            return None
        if self.work is not None:
            return self.work.remaining_s(self.running)
        if self.done_here <= 0:
            return None
        return self.elapsed_s / self.done_here * left


def summary_line(state: LiveState) -> str:
    """The counts and times, as one line."""
    left = state.remaining_s
    estimate = "estimating time left" if left is None else f"~{format_duration(left)} left"
    return (
        f"{state.name}: {state.finished}/{state.total} finished, {len(state.running)} running, "
        f"{state.pending} pending, {state.failed} failed; "
        f"{format_duration(state.elapsed_s)} elapsed, {estimate}"
    )


def reported_epoch(trial) -> int | None:
    """The epoch a Tune trial's latest result reports (trainables report it as an int);
    None before one."""
    epoch = (trial.last_result or {}).get("epoch")
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None


def running_trial(
    trial, label: str, work: float = 0.0, from_epoch: int = 0, running_s: float = 0.0
) -> RunningTrial:
    """A Tune trial's progress from its latest result (the trainable's report keys);
    `work`: its estimated work in all; `from_epoch`: its epochs when first seen;
    `running_s`: how long it has run since."""
    result = trial.last_result or {}
    config = trial.config or {}
    epochs = (config.get("trial") or {}).get("epochs")
    cap = (config.get("options") or {}).get("max_epochs")
    if epochs is not None and cap is not None:
        epochs = min(epochs, cap)
    accuracy = result.get("test_accuracy")
    return RunningTrial(
        label=label,
        epoch=reported_epoch(trial),
        epochs=epochs,
        accuracy=float(accuracy) if isinstance(accuracy, int | float) else None,
        work=work,
        from_epoch=from_epoch,
        running_s=running_s,
    )
