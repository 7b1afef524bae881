"""Where a sweep's time goes: start-up, per-trial overhead, training, evaluation, report.

Two sources, both written by the sweep: the driver's RunTiming of each run
(experiment.RunTiming, in timing.json) and each trial's own `split_*` report keys
(trainables.py): `split_wall_s` (this run of the trial, start to its last report),
`split_setup_s` (model or features built, data and Gram fetched), `split_train_s`,
`split_eval_s` (the test set) and `split_checkpoint_s` (checkpoints and predictions
written, reports sent). The trials' phase is counted in slot-seconds (slots x its wall):
what the trials' own keys do not cover is scheduling, worker starts, Tune's bookkeeping
and slots left idle. Per-trial overhead is everything in that phase but training and
evaluation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tune_mnist.store.results import numbers
from tune_mnist.store.timings import RunTiming, read_timings

PARTS = ("setup", "train", "eval", "checkpoint")


class SweepClock:
    """The driver's stopwatch for one run of a sweep: `lap(name)` ends a part."""

    def __init__(self) -> None:
        import psutil

        self.process_started_at = psutil.Process().create_time()
        self.called_at = time.time()
        self._last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now

    def timing(self, slots: int, report_s: float | None = None) -> RunTiming:
        """What was measured so far; `report_s` and the end once the report is written."""
        return RunTiming(
            process_started_at=self.process_started_at,
            called_at=self.called_at,
            data_s=self.laps.get("data", 0.0),
            ray_start_s=self.laps.get("ray", 0.0),
            shared_s=self.laps.get("shared", 0.0),
            trials_s=self.laps.get("trials", 0.0),
            slots=slots,
            report_s=report_s,
            ended_at=time.time() if report_s is not None else None,
        )


@dataclass(frozen=True)
class TimingSplit:
    """A run's wall time in parts, and its trials' slot time in parts (seconds)."""

    runs: int  # runs of the sweep recorded (a resumed sweep has several)
    wall: pd.DataFrame  # part, seconds, % of wall: the latest run
    trials: dict[str, float]  # slot-seconds: slots, capacity, train, eval, setup, ...

    @property
    def overhead_fraction(self) -> float:
        """Per-trial overhead: the trials' slot time not training or evaluating, over it."""
        capacity = self.trials["capacity"]
        busy = self.trials["train"] + self.trials["eval"]
        return (capacity - busy) / capacity if capacity > 0 else float("nan")

    def note(self) -> str:
        t = self.trials
        if not t["capacity"]:
            return "No trial reported its time split."
        share = {k: 100 * v / t["capacity"] for k, v in t.items() if k not in ("slots",)}
        return (
            f"Trials, in slot-seconds ({t['slots']:g} slots x {t['wall']:.1f} s = "
            f"{t['capacity']:.1f}): training {t['train']:.1f} ({share['train']:.0f}%), "
            f"evaluation {t['eval']:.1f} ({share['eval']:.0f}%), per-trial overhead "
            f"{t['capacity'] - t['train'] - t['eval']:.1f} ({100 * self.overhead_fraction:.0f}%)"
            f": set-up {t['setup']:.1f}, checkpoints and reports {t['checkpoint']:.1f}, "
            f"other within trials {t['other']:.1f}, scheduling, worker starts and idle slots "
            f"{t['outside']:.1f}."
        )


def split(runs: list[RunTiming], results: pd.DataFrame) -> TimingSplit | None:
    """The split of the latest run (None when no run was recorded: an older experiment)."""
    if not runs:
        return None
    run = runs[-1]
    before = run.called_at - run.process_started_at
    parts = {
        "start-up: Python and imports, before run_sweep": before,
        "start-up: data read and checked, FLOPs counted": run.data_s,
        "start-up: Ray started or joined": run.ray_start_s,
        "start-up: placement, metadata, shared Gram matrices": run.shared_s,
        "trials (Tune's fit)": run.trials_s,
        "report: tables and figures": run.report_s,  # from 439a5cd, while Ray stops
    }
    wall = run.wall_s
    if wall is not None:
        rest = wall - sum(v or 0.0 for v in parts.values())
        parts["other (signing; Ray's shutdown, where not during the report)"] = rest
    parts["total, process start to report written"] = wall
    frame = pd.DataFrame({"part": list(parts), "seconds": list(parts.values())})
    frame["seconds"] = pd.to_numeric(frame["seconds"]).round(2)
    frame["% of wall"] = (100 * frame["seconds"] / wall).round(1) if wall else float("nan")
    return TimingSplit(len(runs), frame, trial_parts(results, run))


def trial_parts(results: pd.DataFrame, run: RunTiming) -> dict[str, float]:
    """Slot-seconds of the run's trials phase, by part (from the trials' split_* keys)."""
    results = results[numbers(results, "started_at") >= run.called_at]  # this run's trials
    found = {part: float(numbers(results, f"split_{part}_s").sum()) for part in PARTS}
    inside = float(numbers(results, "split_wall_s").sum())
    capacity = run.slots * run.trials_s
    found["other"] = max(0.0, inside - sum(found.values()))
    found["outside"] = max(0.0, capacity - inside)
    return {"slots": run.slots, "wall": run.trials_s, "capacity": capacity, **found}


def timing_split(experiment: str | Path) -> TimingSplit | None:
    """Where an experiment's latest run spent its time; None for an experiment that
    recorded no timing (written before tune-mnist recorded it)."""
    from tune_mnist.store.results import load_results

    return split(read_timings(experiment), load_results(experiment))


def timing_markdown(found: TimingSplit) -> str:
    """The split as a short Markdown section."""
    runs = f" (the latest of {found.runs} runs)" if found.runs > 1 else ""
    body = found.wall.to_markdown(index=False, floatfmt="", missingval="—")
    return f"## Where the time went{runs}\n\n{body}\n\n{found.note()}\n"
