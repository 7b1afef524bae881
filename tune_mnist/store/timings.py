"""timing.json: where each run of a sweep (its start, each resume) spent its wall time, as
its driver measured it; analysis/timing.py splits and shows it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tune_mnist.store.experiment import write_atomic

TIMING_FILE = "timing.json"


TIMING_VERSION = 1


@dataclass(frozen=True)
class RunTiming:
    """Where one run of a sweep (its start, or a resume) spent its wall time, as its driver
    measured it. Times are seconds; `*_at` are Unix times. timing.py splits and shows it."""

    process_started_at: float  # the driver process started (the command, for the CLI)
    called_at: float  # run_sweep was called: what came before is Python and imports
    data_s: float  # datasets read and checked, model costs (FLOPs) counted, once per sweep
    ray_start_s: float  # joining the cluster or starting a local Ray
    shared_s: float  # placement, storage checks, the metadata, shared Gram matrices
    trials_s: float  # Tune's fit: the trials, their scheduling and worker starts
    slots: int  # most trials that ran at once
    report_s: float | None = None  # tables and figures; None until they were written
    ended_at: float | None = None  # None: the run stopped before its report

    @property
    def wall_s(self) -> float | None:
        """Process start to the end of the report (None before the end)."""
        return None if self.ended_at is None else self.ended_at - self.process_started_at


def write_timing(experiment: str | Path, run: RunTiming) -> Path:
    """Record one run's timing in timing.json (replacing the entry of the same run)."""
    runs = [r for r in read_timings(experiment) if r.called_at != run.called_at]
    record = {"version": TIMING_VERSION, "runs": [asdict(r) for r in [*runs, run]]}
    path = Path(experiment) / TIMING_FILE
    write_atomic(path, json.dumps(record, indent=2))
    return path


def read_timings(experiment: str | Path) -> list[RunTiming]:
    """The timing of every run of an experiment, oldest first; [] when none was recorded
    (older experiments) or the file is unreadable or from a newer tune-mnist."""
    try:
        record = json.loads((Path(experiment) / TIMING_FILE).read_text())
        if record.get("version") != TIMING_VERSION:
            return []
        return [RunTiming(**run) for run in record["runs"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []
