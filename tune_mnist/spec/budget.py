"""A budget as the user gives it: what one Tune run may spend, parsed and described.

run/budget.py enforces it while a sweep runs; the experiment's metadata keeps it with each
run (store/experiment.py), so `resume` goes on with what is left.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.configs import TrialConfig

_UNITS = {"s": 1, "m": 60, "h": 3600}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smh]?)")


@dataclass(frozen=True)
class Budget:
    """What one Tune run may spend (budget.py enforces it); None: no limit of that kind."""

    time_s: float | None = None  # wall-clock seconds of the sweep, summed over resumes
    max_trials: int | None = None  # trials started, the first ones in the space's order
    gpu_seconds: float | None = None  # train time x GPU fraction, as the compute table counts

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.time_s, self.max_trials, self.gpu_seconds))


def parse_duration(text: str, option: str = "--time-budget") -> float:
    """Seconds in `90`, `90s`, `30m`, `2h`, `1.5h` or `1h30m`; one line when it is none."""
    cleaned = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(cleaned)
    units = [u for _, u in parts]
    if not cleaned or "".join(n + u for n, u in parts) != cleaned or "" in units[:-1]:
        raise TuneMnistError(f"{option} {text}: expected a duration such as 90s, 30m, 2h or 1h30m")
    seconds = sum(float(n) * _UNITS[u or "s"] for n, u in parts)
    if not 0 < seconds < math.inf:
        raise TuneMnistError(f"{option} {text}: expected more than 0 seconds")
    return seconds


def make_budget(
    time_budget: str | None = None,
    max_trials: int | None = None,
    max_gpu_hours: float | None = None,
) -> Budget | None:
    """A Budget from the command line's options; None when none was given."""
    if max_trials is not None and max_trials < 1:
        raise TuneMnistError(f"--max-trials {max_trials}: expected 1 or more")
    if max_gpu_hours is not None and not 0 < max_gpu_hours < math.inf:
        raise TuneMnistError(f"--max-gpu-hours {max_gpu_hours:g}: expected more than 0")
    budget = Budget(
        time_s=parse_duration(time_budget) if time_budget is not None else None,
        max_trials=max_trials,
        gpu_seconds=max_gpu_hours * 3600 if max_gpu_hours is not None else None,
    )
    return budget or None


def describe(budget: Budget) -> str:
    """The budget as the options that set it, e.g. `--time-budget 2h, --max-trials 6`."""
    parts = []
    if budget.time_s is not None:
        parts.append(f"--time-budget {duration(budget.time_s)}")
    if budget.max_trials is not None:
        parts.append(f"--max-trials {budget.max_trials}")
    if budget.gpu_seconds is not None:
        parts.append(f"--max-gpu-hours {budget.gpu_seconds / 3600:g}")
    return ", ".join(parts)


def duration(seconds: float) -> str:
    """Seconds for people: `45s`, `12m 5s`, `2h 0m`."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m {seconds % 60:.0f}s"
    return f"{seconds // 3600:.0f}h {seconds % 3600 // 60:.0f}m"


def admitted(trials: list[TrialConfig], budget: Budget | None) -> list[TrialConfig] | None:
    """The trials a run may start under --max-trials (the first ones); None: all of them."""
    if budget is None or budget.max_trials is None or budget.max_trials >= len(trials):
        return None
    return trials[: budget.max_trials]
