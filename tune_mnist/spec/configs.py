"""Typed contracts between modules: what one trial trains, and how it runs.

Space files are validated by spaces.py (pydantic); past validation a trial is one of the
frozen dataclasses below, which is what train.py, svm.py, trainables.py, results.py and
the benchmarks take. This module imports nothing beyond the standard library, so a bare
GPU machine without pydantic, pandas or Ray can build trials and train them.

At the Ray boundary (Tune's param_space, `params.json`, `tune_mnist.json`) a trial is the
plain dict of `trial_to_dict`, which `trial_from_dict` turns back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

DATASETS = ("mnist", "fashion-mnist")
MODELS = ("resnet18", "resnet34", "resnet50")
# Third-party packages add models under this entry-point group: name = "pkg.mod:build",
# `build(channels, height, width, classes) -> nn.Module` (see models.py).
MODEL_ENTRY_POINTS = "tune_mnist.models"
BUILTIN_SHAPE, BUILTIN_CLASSES = (1, 28, 28), 10  # every built-in dataset's images, classes
SHIPPED_ENV = "TUNE_MNIST_SHIPPED"  # set by jobs.submit for the files it sends with a job
DATA_KINDS = ("npz", "idx", "torchvision")  # the kinds a space may declare (see data.py)
OPTIMIZERS = ("sgd", "adam")
KERNELS = ("rbf", "poly", "linear", "sigmoid")
# see svm.py: auto runs precomputed when it fits the memory budget, else libsvm; precomputed
# gives plain SVC's predictions, faster; intelex is another solver
SVM_BACKENDS = ("auto", "precomputed", "libsvm", "intelex")
DEFAULT_SVM_BACKEND = "auto"
SMOKE_EPOCHS = 1  # a --smoke run trains every ResNet for this many epochs


@dataclass(frozen=True)
class ResNetConfig:
    """One ResNet training run: what train.train_resnet needs, nothing else."""

    trainable: ClassVar[str] = "resnet"
    dataset: str
    model: str
    batch_size: int
    optimizer: str  # "sgd" or "adam"
    lr: float  # learning rate
    epochs: int  # as configured; a cap (--smoke, TrainOptions.max_epochs) may train fewer
    pin_memory: bool = False
    momentum: float = 0.0  # SGD only; 0 is torch's default
    weight_decay: float = 0.0
    seed: int = 0
    # images resized (bilinear, on the device) to image_size x image_size before the
    # model; None: the data's own size. Left out of a trial's dict when None, so that the
    # identity of every trial written before the field existed stays what it was.
    image_size: int | None = None

    @property
    def label(self) -> str:
        """A short human name, e.g. `fashion-mnist/resnet18/bs16/adam/lr0.001/e5/pin/s0`
        (`.../56px/s0` when its images are resized)."""
        pin = "pin" if self.pin_memory else "nopin"
        size = f"/{self.image_size}px" if self.image_size else ""
        return (
            f"{self.dataset}/{short_model(self.model)}/bs{self.batch_size}/{self.optimizer}"
            f"/lr{self.lr:g}/e{self.epochs}/{pin}{size}/s{self.seed}"
        )

    def input_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The (channels, height, width) the model sees, given the data's."""
        return (shape[0], self.image_size, self.image_size) if self.image_size else tuple(shape)

    @property
    def cost_key(self) -> tuple[str, str, int | None]:
        """What a model's FLOPs and parameters depend on: (model, dataset, image_size)."""
        return self.model, self.dataset, self.image_size

    def epochs_to_train(self, max_epochs: int | None) -> int:
        """The configured epochs, capped by `max_epochs` when one is set."""
        return min(self.epochs, max_epochs) if max_epochs else self.epochs


@dataclass(frozen=True)
class SVMConfig:
    """One scikit-learn SVC fit: SVC's defaults unless the space says otherwise."""

    trainable: ClassVar[str] = "svm"
    dataset: str
    kernel: str
    train_samples: int = 10_000  # the first N training images, file order
    C: float = 1.0
    gamma: str | float = "scale"  # "scale", "auto" or a number, as SVC takes it
    degree: int = 3
    seed: int = 0

    @property
    def label(self) -> str:
        """A short human name, e.g. `mnist/svm-rbf/n10000`."""
        return f"{self.dataset}/svm-{self.kernel}/n{self.train_samples}"


# An epoch whose mean training loss is above this many times an untrained classifier's
# (ln of the class count) has diverged: train/resnet.diverged decides it, and the results
# say it with the same number.
DIVERGED_FACTOR = 10

# A configuration's fields: a trial's identity but its seed, in declaration order. The one
# list the tables, the study's reference tables and the results read configurations by.
CONFIG_FIELDS = {
    kind.trainable: [f.name for f in fields(kind) if f.name != "seed"]
    for kind in (ResNetConfig, SVMConfig)
}
# Every field of either kind, once, the ResNet's first.
ALL_CONFIG_FIELDS = tuple(dict.fromkeys([*CONFIG_FIELDS["resnet"], *CONFIG_FIELDS["svm"]]))


@dataclass(frozen=True)
class CustomConfig:
    """One run of a space's own trainable (`trainable: pkg.mod:train` or `FILE.py:train`):
    the dataset, the function, and whatever else the space sets, passed to it as is."""

    trainable: ClassVar[str] = "custom"
    dataset: str
    function: str  # the trainable's reference; a file's absolute path once loaded
    params: dict[str, Any] = field(default_factory=dict)  # every other key of the space
    seed: int = 0

    @property
    def label(self) -> str:
        """A short human name, e.g. `shapes/loop.py:train/lr0.1/s0`."""
        parts = [self.dataset, short_model(self.function)]
        # a path by its last part: labels name folders and table rows
        parts += [f"{k}{_show(v).rpartition('/')[2]}" for k, v in self.params.items()]
        return "/".join([*parts, f"s{self.seed}"])

    def config(self) -> dict[str, Any]:
        """What the trainable gets: the space's keys for this trial, dataset and seed too."""
        return {"dataset": self.dataset, **self.params, "seed": self.seed}


TrialConfig = ResNetConfig | SVMConfig | CustomConfig
CONFIGS: dict[str, type[ResNetConfig] | type[SVMConfig] | type[CustomConfig]] = {
    "resnet": ResNetConfig,
    "svm": SVMConfig,
    "custom": CustomConfig,
}


def trainable_kind(trainable: str) -> str:
    """resnet, svm, or custom for a space's `trainable` given by reference."""
    return trainable if trainable in ("resnet", "svm") else "custom"


def trial_to_dict(trial: TrialConfig) -> dict[str, Any]:
    """A trial as the plain dict Ray and the experiment files hold (with `trainable`).

    A custom trial's params are flat keys beside its fields, so filters, tables and
    searches see them as they see a ResNet's lr."""
    if isinstance(trial, CustomConfig):
        fixed = {"dataset": trial.dataset, "function": trial.function, "seed": trial.seed}
        return {"trainable": trial.trainable, **fixed, **trial.params}
    config = {"trainable": trial.trainable, **asdict(trial)}
    if config.get("image_size", 0) is None:  # as trials were before the field (ResNetConfig)
        del config["image_size"]
    return config


def trial_from_dict(data: Mapping[str, Any]) -> TrialConfig:
    """The typed trial of a dict written by trial_to_dict."""
    kind = CONFIGS[data["trainable"]]
    if kind is CustomConfig:
        params = {k: v for k, v in data.items() if k not in CUSTOM_KEYS}
        return CustomConfig(data["dataset"], data["function"], params, data.get("seed", 0))
    return kind(**known_fields(kind, data))


CUSTOM_KEYS = {"trainable", "dataset", "function", "seed"}


def known_fields(kind: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `data` that are fields of the dataclass `kind`: what an older or
    newer file holds beyond them is left out rather than refused."""
    names = {f.name for f in fields(kind)}
    return {k: v for k, v in data.items() if k in names}


def with_seed(trial: TrialConfig, seed: int) -> TrialConfig:
    """The same trial with another seed."""
    return replace(trial, seed=seed)


@dataclass(frozen=True)
class TrainOptions:
    """How a ResNet trial runs, as opposed to what it trains (its ResNetConfig)."""

    device: str = "auto"  # "auto": cuda when available, else cpu
    amp: bool | None = None  # bf16 autocast; None: on for cuda, off for cpu
    channels_last: bool | None = None  # None: on for cuda, off for cpu (measured slower)
    # skip 3x3 kernel taps that only see padding (exact; models.PaddingSkippingConv2d).
    # None: on for cpu (a ResNet-18 step 1.9x faster), off for cuda (not measured there)
    skip_padding_taps: bool | None = None
    preload: bool = False  # keep the whole dataset on the device; pin_memory is then moot
    # torch.compile mode ("default", "reduce-overhead": CUDA graphs, "max-autotune");
    # None: eager; on this project's CPU compiling was no faster (benchmarks/RESULTS.md)
    compile: str | None = None
    eval_batch_size: int = 1000  # images per forward pass when testing
    max_epochs: int | None = None  # cap on epochs (--smoke uses SMOKE_EPOCHS)
    # On CUDA, the share of the GPU's memory this process may allocate (its Ray GPU
    # fraction): a trial that outgrows its share fails alone instead of starving neighbours.
    memory_fraction: float | None = None

    def resolved(self, device: str) -> TrainOptions:
        """These options with every 'auto' decided for a device ("cpu", "cuda:0", ...)."""
        on_cuda = device.split(":")[0] == "cuda"
        return replace(
            self,
            device=device,
            amp=on_cuda if self.amp is None else self.amp,
            channels_last=on_cuda if self.channels_last is None else self.channels_last,
            skip_padding_taps=(
                not on_cuda if self.skip_padding_taps is None else self.skip_padding_taps
            ),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainOptions:
        """Options saved with asdict; keys this version does not know are ignored."""
        return cls(**known_fields(cls, data))


@dataclass(frozen=True)
class Selection:
    """The part of a space a sweep runs: `--where KEY=VALUE` filters and `--trial N` numbers.

    Filters on one key are alternatives (any value matches), filters on different keys must
    all match; numbers are the 1-based positions `tune-mnist show` prints, counted over
    the whole space (repeats included).
    """

    where: dict[str, list[Any]]
    numbers: list[int]  # the requested --trial numbers; empty: no such filter
    chosen: list[int]  # the 1-based numbers of the trials that matched
    of: int  # how many trials the whole space has

    def describe(self) -> str:
        """The filter in words, e.g. `model=resnet18; epochs=5 or 15; trials 1, 4`."""
        parts = [
            f"{key}={' or '.join(_show(v) for v in values)}" for key, values in self.where.items()
        ]
        if self.numbers:
            parts.append("trials " + ", ".join(map(str, self.numbers)))
        return "; ".join(parts)


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else f"{value}"


@cache
def model_names() -> tuple[str, ...]:
    """The models a space may name without a reference: the built-in ResNets, then those
    packages register under MODEL_ENTRY_POINTS (a built-in name cannot be taken over)."""
    added = sorted({ep.name for ep in entry_points(group=MODEL_ENTRY_POINTS)} - set(MODELS))
    return (*MODELS, *added)


def is_reference(model: str) -> bool:
    """True for `package.module:callable` and `path/to/file.py:callable`, not for names."""
    return ":" in model


def is_file_reference(model: str) -> bool:
    """True for a reference whose left side is a Python file rather than a module."""
    where = model.rpartition(":")[0]
    return where.endswith(".py") or "/" in where or os.sep in where


def resolve_model(model: str, base: Path) -> str:
    """A model as trials store it: a file reference made absolute (relative to `base`, the
    space file's folder) so that any worker can import it; names and modules unchanged."""
    if not is_reference(model) or not is_file_reference(model):
        return model
    where, _, name = model.rpartition(":")
    return f"{(base / Path(where).expanduser()).absolute()}:{name}"


def short_model(model: str) -> str:
    """A model's short name for labels and tables: `nets.py:build` for a file reference."""
    if is_reference(model) and is_file_reference(model):
        where, _, name = model.rpartition(":")
        return f"{Path(where).name}:{name}"
    return model


@dataclass(frozen=True)
class DataSource:
    """A dataset a space declares (`datasets: {NAME: {npz: FILE}}` or `{idx: FOLDER}`)."""

    kind: str  # one of DATA_KINDS
    path: str  # absolute once the space is loaded; torchvision: the class name, e.g. KMNIST
    origin: str = ""  # where the space declared it, e.g. `own.yaml: datasets.shapes.npz`
    split: str = ""  # torchvision's split argument where the class needs one (EMNIST)


def trial_key(trial: TrialConfig | dict) -> str:
    """A trial's identity in Tune's results and the experiment's files: its config as JSON
    with sorted keys. The one definition; every module that matches trials uses it."""
    config = trial if isinstance(trial, dict) else trial_to_dict(trial)
    return json.dumps(config, sort_keys=True)
