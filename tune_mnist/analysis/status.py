"""Where an experiment stands, from its files alone (no Ray): `tune-mnist status`.

The trials' own files (results.load_experiment) say which finished, failed or diverged
and how far each unfinished one got. Ray Tune's newest `experiment_state-*.json` says
which of the others it was running and which were still waiting; it is read as plain
JSON, never unpickled. Whether a driver is still at work is read from the owner file a
sweep keeps while it holds the folder (experiment.writing): present while it runs, and
checked against the process when it names this machine.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tune_mnist.spec.configs import trial_to_dict
from tune_mnist.store.experiment import OWNER_FILE
from tune_mnist.store.opened import Experiment, open_experiment
from tune_mnist.store.results import ENDED, load_experiment

STATE_GLOB = "experiment_state-*.json"


@dataclass(frozen=True)
class TrialStatus:
    """One trial: what it is, how far it got."""

    label: str
    status: str  # finished, running, pending, interrupted, failed or diverged
    epoch: int | None  # the latest epoch reported (ResNets)
    epochs: int | None  # the epochs it is to train (ResNets)
    accuracy: float | None  # the latest test accuracy reported, %
    seconds: float | None  # training time so far


@dataclass(frozen=True)
class ExperimentStatus:
    """An experiment's trials by state and the time it has taken so far."""

    experiment: Path | str  # the folder, or the URI in object storage
    name: str  # the space's
    trials: list[TrialStatus]  # in the order the space declares them
    started_at: datetime | None  # when the sweep first started
    last_update: datetime | None  # the newest write of a trial or of Tune's state
    driver: str | None  # "pid N on HOST, since ..." while a sweep holds the folder
    active: bool  # a driver is at work on it (or, on another machine, says it is)

    def count(self, status: str) -> int:
        """How many trials are in this state."""
        return sum(t.status == status for t in self.trials)

    @property
    def total(self) -> int:
        return len(self.trials)

    @property
    def elapsed_s(self) -> float | None:
        """Wall time from the first start to now (running) or to the last write (stopped)."""
        if self.started_at is None:
            return None
        end = datetime.now().astimezone() if self.active else self.last_update
        return max(0.0, (end - self.started_at).total_seconds()) if end else None

    @property
    def trial_seconds(self) -> float:
        """Training time summed over trials (finished and unfinished)."""
        return sum(t.seconds for t in self.trials if t.seconds)

    @property
    def complete(self) -> bool:
        return sum(self.count(status) for status in ENDED) == self.total


def experiment_status(experiment: str | Path | Experiment) -> ExperimentStatus:
    """Read an experiment's state: see the module's docstring. A URI in object storage is
    read through its local copy (storage.py), refreshed first."""
    opened = open_experiment(experiment)  # one-line errors for a folder that holds none
    uri, experiment = opened.uri, opened.folder
    found = load_experiment(opened)
    tune_states = _tune_states(experiment)
    driver, active = _driver(experiment)
    trials = []
    for trial, row in zip(found.meta.trials, found.results.to_dict("records"), strict=True):
        status = _status(row["status"], tune_states.get(_key(trial_to_dict(trial))), active)
        trials.append(
            TrialStatus(
                label=row["label"],
                status=status,
                epoch=_number(row.get("epoch"), int),
                epochs=_number(row.get("epochs"), int),
                accuracy=_number(row.get("test_accuracy"), float),
                seconds=_number(row.get("train_time_ms"), float, scale=1e-3),
            )
        )
    return ExperimentStatus(
        experiment=uri or experiment.absolute(),
        name=found.meta.name,
        trials=trials,
        started_at=_parse_time(found.meta.started_at),
        last_update=_last_update(experiment),
        driver=driver,
        active=active,
    )


def _status(from_files: str, from_tune: str | None, active: bool) -> str:
    """A trial's state: its files first; Tune's word for the ones not yet done."""
    if from_files in ENDED:
        return from_files
    if from_files == "error" or from_tune == "ERROR":
        return "failed"
    if not active:  # nothing runs: a started trial waits for `resume`
        return "interrupted" if from_files == "running" else "pending"
    if from_tune == "RUNNING" or (from_tune is None and from_files == "running"):
        return "running"
    return "pending"


def _key(trial: dict) -> str:
    return json.dumps(trial, sort_keys=True)


def _tune_states(experiment: Path) -> dict[str, str]:
    """Trial config key -> Tune's status (RUNNING, PENDING, TERMINATED, ERROR, PAUSED),
    from the newest experiment state Tune saved; empty when there is none to read."""
    states = sorted(experiment.glob(STATE_GLOB), key=lambda p: p.stat().st_mtime)
    if not states:
        return {}
    try:
        record = json.loads(states[-1].read_bytes())
        found = {}
        for trial_json, _runtime in record["trial_data"]:
            trial = json.loads(trial_json)
            found[_key(trial["config"]["trial"])] = str(trial["status"])
        return found
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # written by another Ray, or cut short: the trials' files still tell


_OWNER = re.compile(r"pid (\d+) on (\S+),")


def _driver(experiment: Path) -> tuple[str | None, bool]:
    """Who holds the folder, and whether it is at work (owner file: experiment.writing)."""
    try:
        owner = (experiment / OWNER_FILE).read_text().strip()
    except OSError:
        return None, False
    match = _OWNER.match(owner)
    if match and match[2] == platform.node():  # here: the process can be asked
        import psutil

        if not psutil.pid_exists(int(match[1])):
            return None, False  # it died without cleaning up: nothing runs
    return owner, True


def _last_update(experiment: Path) -> datetime | None:
    times = []
    for pattern in ("*/result.json", STATE_GLOB):
        for path in experiment.glob(pattern):
            with contextlib.suppress(OSError):
                times.append(path.stat().st_mtime)
    return datetime.fromtimestamp(max(times)).astimezone() if times else None


def _parse_time(text: str) -> datetime | None:
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"):
        with contextlib.suppress(ValueError):
            parsed = datetime.strptime(text, fmt)
            return parsed if parsed.tzinfo else parsed.astimezone()
    return None


def _number(value, kind, scale: float = 1.0):
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else kind(number * scale)


def format_duration(seconds: float | None) -> str:
    """h:mm:ss, or a dash when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def describe(status: ExperimentStatus) -> str:
    """One line: the counts, the time so far, and whether a driver is at work."""
    order = ("finished", "running", "pending", "failed", "interrupted", "diverged")
    counts = ", ".join(f"{status.count(s)} {s}" for s in order if status.count(s) or s in order[:4])
    when = format_duration(status.elapsed_s)
    return f"{status.name}: {counts} of {status.total} trials; {when} since the start" + (
        f" (trial time {format_duration(status.trial_seconds)})" if status.trial_seconds else ""
    )
