"""A sweep's settings: everything about a run that is not in the space file.

Defined and validated once, here: the CLI builds a SweepSettings from its options, the
library rejects a bad value when the settings are made (not inside a trial), and the
experiment's metadata saves them so `resume` runs with the same ones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.configs import (
    DEFAULT_SVM_BACKEND,
    SMOKE_EPOCHS,
    SVM_BACKENDS,
    TrainOptions,
    known_fields,
)
from tune_mnist.store import storage

RESULTS_ENV, DEFAULT_RESULTS = "TUNE_MNIST_RESULTS", "ray_results"
# Not saved with an experiment: they say how this one process runs, not what it ran.
_PER_RUN = ("address", "resume", "verbose", "trust", "dashboard")
MAX_NAME = 100  # characters in an experiment name: well inside any filesystem's limit


@dataclass(frozen=True)
class SweepSettings:
    """Everything about a sweep that is not in the space file."""

    data_dir: str | None = None  # else $TUNE_MNIST_DATA, the cache, or (smoke) the sample
    smoke: bool = False  # ~1,000/500 images per dataset and 1 epoch per trial
    address: str | None = None  # a running cluster; else $RAY_ADDRESS; else a local Ray
    storage_path: str | None = None  # experiments live in <storage_path>/<name>
    name: str | None = None  # default: the space's name, "-smoke" added for smoke runs
    gpus_per_trial: float | None = None  # GPU fraction per ResNet trial; else the space's
    svm_cpus: float = 1.0  # CPUs per SVM trial
    svm_resource: str = "svm_worker"  # custom resource marking CPU workers for SVM trials
    svm_backend: str = DEFAULT_SVM_BACKEND  # one of configs.SVM_BACKENDS
    max_failures: int = 2  # retries of a trial whose worker dies, from its last checkpoint
    resume: bool = False  # continue the experiment at <storage_path>/<name>
    verbose: bool = False  # Ray's own logs and progress tables
    # a local Ray's dashboard: off unless asked, since its processes cost about 1 s of Ray's
    # start and CPU beside the trials on a small machine (a joined cluster keeps its own)
    dashboard: bool = False
    trust: bool = False  # resume an experiment this user's key did not sign (trust.py)
    mlflow: str | None = None  # an MLflow tracking URI: log the sweep there (tracking.py)
    options: TrainOptions = field(default_factory=TrainOptions)

    def __post_init__(self) -> None:
        if self.name is not None:
            check_name(self.name)
        if self.svm_backend not in SVM_BACKENDS:
            raise TuneMnistError(
                f"--svm-backend {self.svm_backend}: expected one of {', '.join(SVM_BACKENDS)}"
            )
        if self.gpus_per_trial is not None and not self.gpus_per_trial > 0:
            raise TuneMnistError(f"--gpus-per-trial {self.gpus_per_trial:g}: expected more than 0")
        if not self.svm_cpus > 0:
            raise TuneMnistError(f"--svm-cpus {self.svm_cpus:g}: expected more than 0")
        if self.max_failures < 0:
            raise TuneMnistError(f"--max-failures {self.max_failures}: expected 0 or more")

    @property
    def max_epochs(self) -> int | None:
        """The cap on every ResNet trial's epochs: 1 for --smoke, else the options' cap."""
        return SMOKE_EPOCHS if self.smoke else self.options.max_epochs

    def experiment_dir(self, space_name: str) -> Path:
        """Absolute path of this sweep's experiment (Ray rejects relative storage paths);
        for a storage URI (storage.py), the folder of its local copy."""
        if uri := self.experiment_uri(space_name):
            return storage.cache_dir(uri)
        root = str(self._root()).removeprefix("file://")
        return Path(root).expanduser().absolute() / self._name(space_name)

    def experiment_uri(self, space_name: str) -> str | None:
        """The experiment's URI when the storage path is object storage (s3://...), else None."""
        root = self._root()
        if not storage.is_uri(root):
            return None
        return storage.join(storage.check_uri(root), self._name(space_name))

    def _root(self) -> str:
        return self.storage_path or os.environ.get(RESULTS_ENV, DEFAULT_RESULTS)

    def _name(self, space_name: str) -> str:
        name = self.name or (f"{space_name}-smoke" if self.smoke else space_name)
        check_name(name, "--name" if self.name else "the space's name")
        return name

    def saved(self) -> dict[str, Any]:
        """The settings an experiment keeps (absolute data folder; no per-run switches)."""
        kept = {k: v for k, v in asdict(self).items() if k not in _PER_RUN}
        kept["data_dir"] = str(Path(self.data_dir).absolute()) if self.data_dir else None
        return kept

    @classmethod
    def from_saved(cls, saved: Mapping[str, Any], **overrides: Any) -> SweepSettings:
        """Settings read back from an experiment; keys missing from older files get defaults."""
        options = TrainOptions.from_dict(saved.get("options") or {})
        kept = {**known_fields(cls, saved), "options": options}
        # files without the key were run before `auto` existed, with precomputed
        kept.setdefault("svm_backend", "precomputed")
        return replace(cls(**kept), **overrides)


def check_name(name: str, what: str = "--name") -> None:
    """An experiment name must be one folder inside the storage path, never a way out of it."""
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or len(name) > MAX_NAME
    ):
        shown = name if len(name) <= 40 else name[:37] + "..."
        raise TuneMnistError(
            f"{what} {shown!r}: expected one folder name (no '/', not '.' or '..', "
            f"at most {MAX_NAME} characters)"
        )
