"""The experiment folder: its layout, its metadata file, and atomic writes into it.

```
<experiment>/
  tune_mnist.json     ExperimentMeta: the space, its trials, settings, data, provenance;
                      written before the first trial starts
  timing.json         RunTiming of each run (the start, each resume): where its wall time
                      went; absent in experiments written before it existed
  <trial folders>/    Ray Tune's: params.json, result.json (one report per line), ...;
                      ours: predictions.npz (the finished trial's test-set predictions),
                      stopped_early.json (a trial the scheduler stopped, and when)
  report/             tables, exports, figures, provenance.json (report.py, plots.py)
  extend-1/ ...       a later Ray Tune run of the same experiment (`sweep --extend`): its
                      own Tune state and trial folders, one per trial it added
```

Every other module reaches these files through here. The metadata is versioned: files
written before the version field existed read as version 1 (the same keys, without
`selection`); a newer version than this code knows is refused with one line.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import platform
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from tune_mnist.errors import TuneMnistError, shown
from tune_mnist.spec.budget import Budget
from tune_mnist.spec.configs import (
    Selection,
    TrialConfig,
    trainable_kind,
    trial_from_dict,
    trial_to_dict,
)
from tune_mnist.spec.schema import Space
from tune_mnist.store.provenance import SWEEP_KEYS
from tune_mnist.store.settings import SweepSettings

META_FILE = "tune_mnist.json"
REPORT_DIR = "report"
PREDICTIONS_FILE = "predictions.npz"
STOPPED_FILE = "stopped_early.json"
RUN_PREFIX = "extend-"  # the folders of the Tune runs an extension adds (run/extend.py)
LOCK_FILE, OWNER_FILE = ".tune-mnist.lock", ".tune-mnist.owner"
# 3: adds `runs` (each Tune run's folder, trials, budget and what it spent);
# 2: adds `version` and `selection`; 1: the files of tune-mnist 0.1.0
META_VERSION = 3


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write a file so that readers see the old or the new content, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if isinstance(content, bytes) else "w") as f:
            f.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def writing(experiment: Path) -> Iterator[Path]:
    """Hold an experiment for writing: one sweep or resume at a time, others refused.

    The lock is the operating system's (filelock's flock), so a process that dies lets go
    of it at once and no stale lock outlives its owner; the owner file only says who holds
    it. A folder made here that ends up holding nothing else is removed on the way out, so
    a sweep refused before it wrote its metadata leaves no trace.
    """
    from filelock import FileLock, Timeout

    created = not experiment.exists()
    try:
        experiment.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _cannot_write(experiment, e) from None
    lock, owner = FileLock(str(experiment / LOCK_FILE)), experiment / OWNER_FILE
    for link in (p for p in (experiment / LOCK_FILE, owner) if p.is_symlink()):
        # a link there would have this run write through it to wherever it points
        raise TuneMnistError(f"{link} is a symbolic link: refused; remove it to continue")
    try:
        lock.acquire(timeout=0)
    except Timeout:  # first: filelock's Timeout is an OSError too
        holder = owner.read_text().strip() if owner.is_file() else "another process"
        raise TuneMnistError(
            f"{experiment} is in use by another tune-mnist run ({holder}): wait for it to "
            "finish or stop it; `tune-mnist summarize` can read it meanwhile"
        ) from None
    except OSError as e:  # a folder that exists but cannot be written
        raise _cannot_write(experiment, e) from None
    try:
        _write_owner(owner)
        yield experiment
    finally:
        owner.unlink(missing_ok=True)
        lock.release()
        if created and not any(p.name != LOCK_FILE for p in experiment.iterdir()):
            (experiment / LOCK_FILE).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                experiment.rmdir()


def _write_owner(owner: Path) -> None:
    """Say who holds the lock, never through a link planted after the check above."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(owner, flags, 0o644)
    except OSError as e:
        raise TuneMnistError(f"{owner}: cannot write ({e.strerror}); is it a link?") from None
    with os.fdopen(fd, "w") as f:
        f.write(
            f"pid {os.getpid()} on {platform.node()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}"
        )


def _cannot_write(experiment: Path, error: OSError) -> TuneMnistError:
    """One line on why an experiment folder cannot be made or written.

    A system folder such as /proc exists yet answers "No such file or directory" when a
    folder is made in it: say which existing folder refused, not only what the OS said.
    """
    existing = next((p for p in experiment.parents if p.exists()), None)
    if error.errno == errno.ENOENT and existing is not None:
        reason = f"{existing} exists but does not accept new folders ({error.strerror})"
    else:
        reason = error.strerror or type(error).__name__
    return TuneMnistError(f"cannot write to storage path {experiment.parent}: {reason}")


@dataclass(frozen=True)
class Predictions:
    """A finished trial's predicted label for each test image, beside the true one."""

    predicted: np.ndarray  # uint8 (or int16 past 255 classes), one per test image
    labels: np.ndarray

    @property
    def correct(self) -> np.ndarray:
        """Which test images the trial got right (bool)."""
        return self.predicted == self.labels


def save_predictions(trial_folder: Path | str, predicted, labels) -> Path | str:
    """Write a trial's test-set predictions, compressed (about 10 KB for 10,000 images);
    `trial_folder` may be a URI in object storage (storage.py)."""
    small = (
        np.uint8
        if max(int(np.max(labels, initial=0)), int(np.max(predicted, initial=0))) < 256
        else np.int16
    )
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, predicted=np.asarray(predicted, dtype=small), labels=np.asarray(labels, dtype=small)
    )
    from tune_mnist.store import storage

    if storage.is_uri(trial_folder):
        uri = storage.join(str(trial_folder), PREDICTIONS_FILE)
        storage.write_bytes(uri, buffer.getvalue())
        return uri
    path = Path(trial_folder) / PREDICTIONS_FILE
    write_atomic(path, buffer.getvalue())
    return path


def read_predictions(trial_folder: Path) -> Predictions | None:
    """A trial's saved predictions; None when it saved none or the file is unreadable."""
    try:
        with np.load(Path(trial_folder) / PREDICTIONS_FILE, allow_pickle=False) as saved:
            found = Predictions(saved["predicted"], saved["labels"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if found.predicted.shape != found.labels.shape or found.labels.ndim != 1:
        return None
    return found


def mark_stopped_early(trial_folder: Path, epoch: int | None, by: str = "asha") -> Path:
    """Record that the scheduler stopped a trial after `epoch` (its last reported epoch)."""
    path = Path(trial_folder) / STOPPED_FILE
    write_atomic(path, json.dumps({"epoch": epoch, "by": by}))
    return path


def read_stopped_early(trial_folder: Path) -> dict | None:
    """{"epoch": ..., "by": ...} of a trial the scheduler stopped; None for any other."""
    try:
        record = json.loads((Path(trial_folder) / STOPPED_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def report_dir(experiment: str | Path) -> Path:
    """Where an experiment's tables, figures and provenance go."""
    return Path(experiment) / REPORT_DIR


def holds_experiment(folder: str | Path) -> bool:
    """Whether a folder already holds a tune-mnist experiment."""
    return (Path(folder) / META_FILE).is_file()


def trial_folder_name(trial_id: str, trial: TrialConfig) -> str:
    """The folder of one trial: Tune's trial id and the trial's label, e.g.
    `4ca03_00000_fashion-mnist_resnet18_bs16_adam_lr0.001_e5_pin_s0`."""
    return f"{trial_id}_{trial.label.replace('/', '_')}"


@dataclass(frozen=True)
class DataInfo:
    """One dataset as a sweep read it."""

    source: str  # the folder (or "sample") the files came from
    train: int  # training images used
    test: int  # test images used
    sha256: dict[str, str] = field(default_factory=dict)  # per file read: its checksum


@dataclass(frozen=True)
class TuneRun:
    """One Ray Tune run inside an experiment: the sweep's own ("."), or one `--extend` added."""

    folder: str = "."  # relative to the experiment folder; Tune's state and trial folders
    trials: list[TrialConfig] | None = None  # what Tune holds, in order; None: all the trials
    budget: Budget | None = None
    spent_s: float = 0.0  # wall-clock seconds its Tune loop ran, summed over resumes
    spent_gpu_s: float = 0.0  # GPU-seconds its trials used (as the compute table counts)
    stopped: str | None = None  # why its budget ended it, in words; None: it was not stopped

    def to_record(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "trials": None if self.trials is None else [trial_to_dict(t) for t in self.trials],
            "budget": asdict(self.budget) if self.budget else None,
            "spent_s": self.spent_s,
            "spent_gpu_s": self.spent_gpu_s,
            "stopped": self.stopped,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any], where: str = "runs[0]") -> TuneRun:
        trials, budget = record.get("trials"), record.get("budget")
        return cls(
            folder=record["folder"],
            trials=None if trials is None else [trial_from_dict(t) for t in trials],
            budget=Budget(**budget) if budget else None,
            spent_s=_seconds(record, "spent_s", where),
            spent_gpu_s=_seconds(record, "spent_gpu_s", where),
            stopped=record.get("stopped"),
        )


def _seconds(record: dict[str, Any], key: str, where: str) -> float:
    """A number of seconds a run record holds (0 when absent); one line naming it if not."""
    value = record.get(key) or 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TuneMnistError(f"{where}.{key}: expected a number of seconds, found {shown(value)}")
    return float(value)


@dataclass(frozen=True)
class ExperimentMeta:
    """What a sweep set out to run, saved before it ran: `tune_mnist.json`."""

    space: Space  # the space file as validated
    space_source: str  # the file it came from
    report: str  # which study tables: "ablation", "svm" or "comparison"
    # the trials this sweep runs, in order; a sampled search (search.py) draws its trials
    # as it runs: here, the ones at its distributions' edges that were checked before it ran
    trials: list[TrialConfig]
    settings: SweepSettings
    data: dict[str, DataInfo]  # per dataset name
    resources: dict[str, dict[str, float]]  # what each kind of trial asked Ray for
    started_at: str
    provenance: dict[str, Any] = field(default_factory=dict)  # versions, commit, host, ...
    selection: Selection | None = None  # set when only part of the space ran
    version: int = META_VERSION
    # its Tune runs, the one a resume continues last; files before version 3 had one, "."
    runs: list[TuneRun] = field(default_factory=lambda: [TuneRun()])

    @property
    def run(self) -> TuneRun:
        """The latest Tune run: the one `resume` continues."""
        return self.runs[-1]

    def run_trials(self, run: TuneRun) -> list[TrialConfig]:
        """The trials one Tune run holds."""
        return self.trials if run.trials is None else run.trials

    def run_dirs(self, experiment: str | Path) -> list[Path]:
        """Every Tune run's folder, the experiment's own first."""
        return [Path(experiment) / run.folder for run in self.runs]

    @property
    def smoke(self) -> bool:
        """Whether the sweep ran at --smoke size (a setting, kept at the top of the file too)."""
        return self.settings.smoke

    @property
    def name(self) -> str:
        """The space's name."""
        return self.space.name

    @property
    def trainable(self) -> str:
        """Which trainable the space runs: resnet, svm or custom (the space's own)."""
        return trainable_kind(self.space.trainable)

    def to_json(self) -> str:
        """The file's content; provenance keys sit at the top level, as in version 1."""
        record = {
            "version": self.version,
            "space": self.space.model_dump(),
            "space_source": self.space_source,
            "report": self.report,
            "trials": [trial_to_dict(t) for t in self.trials],
            "selection": asdict(self.selection) if self.selection else None,
            "smoke": self.smoke,
            "settings": self.settings.saved(),
            "data": {name: asdict(info) for name, info in self.data.items()},
            "resources": self.resources,
            "started_at": self.started_at,
            "runs": [run.to_record() for run in self.runs],
            **self.provenance,
        }
        return json.dumps(record, indent=2, default=str)

    @classmethod
    def from_record(cls, record: Any, where: str = META_FILE) -> ExperimentMeta:
        """Read a parsed tune_mnist.json; one line naming the problem if it is not one."""
        if not isinstance(record, dict):
            raise TuneMnistError(f"{where}: expected a JSON object, found {type(record).__name__}")
        version = record.get("version", 1)
        if not isinstance(version, int) or not 1 <= version <= META_VERSION:
            raise TuneMnistError(
                f"{where}: metadata version {version!r} is not one this tune-mnist reads "
                f"(1 to {META_VERSION}): upgrade tune-mnist to read it"
            )
        try:
            selection = record.get("selection")
            return cls(
                space=Space.model_validate(record["space"]),
                space_source=record["space_source"],
                report=record["report"],
                trials=[trial_from_dict(t) for t in record["trials"]],
                settings=SweepSettings.from_saved(
                    {**(record.get("settings") or {}), "smoke": bool(record["smoke"])}
                ),
                data={n: DataInfo(**d) for n, d in record["data"].items()},
                resources=record.get("resources") or {},
                started_at=record.get("started_at", ""),
                provenance={k: record.get(k) for k in SWEEP_KEYS if k in record},
                selection=Selection(**selection) if selection else None,
                version=version,
                runs=[
                    TuneRun.from_record(r, f"{where}: runs[{i}]")
                    for i, r in enumerate(record.get("runs") or [{"folder": "."}])
                ],
            )
        except (KeyError, TypeError, AttributeError, ValueError, ValidationError) as e:
            problem = shown(e)  # a field's value can be anything: cut to a few hundred chars
            raise TuneMnistError(f"{where}: not a tune-mnist metadata file ({problem})") from None


def new_meta(
    spec,
    settings: SweepSettings,
    data: dict[str, DataInfo],
    resources,
    runs: list[TuneRun] | None = None,
    version: int = META_VERSION,
) -> ExperimentMeta:
    """The metadata of a sweep about to start, with this process's provenance."""
    from tune_mnist.store.provenance import provenance

    return ExperimentMeta(
        space=spec.space,
        space_source=spec.source,
        report=spec.report,
        trials=list(spec.trials),
        settings=settings,
        data=data,
        resources=resources,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        # a sweep of SVMs only imports no torch in the driver (seconds of q1b's wall time)
        provenance=provenance(with_torch=any(t.trainable != "svm" for t in spec.trials)),
        selection=spec.selection,
        version=version,
        runs=runs or [TuneRun()],
    )


def write_meta(experiment: str | Path, meta: ExperimentMeta) -> Path:
    """Save an experiment's metadata atomically."""
    path = Path(experiment) / META_FILE
    write_atomic(path, meta.to_json())
    return path


def update_meta(
    experiment: str | Path, change: Callable[[ExperimentMeta], ExperimentMeta]
) -> ExperimentMeta:
    """Read the metadata, change it and write it back (the writer holds the lock)."""
    meta = change(read_meta(experiment))
    write_meta(experiment, meta)
    return meta


def read_meta(experiment: str | Path) -> ExperimentMeta:
    """An experiment's metadata; a clear error when the folder holds none."""
    path = Path(experiment) / META_FILE
    if not Path(experiment).is_dir():
        raise TuneMnistError(f"{experiment}: no such experiment folder")
    if not path.is_file():
        raise TuneMnistError(f"{experiment}: not a tune-mnist experiment (no {META_FILE})")
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TuneMnistError(f"{path}: unreadable ({e})") from None
    return ExperimentMeta.from_record(record, str(path))
