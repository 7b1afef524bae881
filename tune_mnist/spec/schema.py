"""What a space file may say: its blocks as strict pydantic models (unknown keys refused,
types exact), and a validation error said as one line naming the file and the key."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from tune_mnist.errors import shown
from tune_mnist.spec.configs import (
    CUSTOM_KEYS,
    DATA_KINDS,
    DATASETS,
    KERNELS,
    OPTIMIZERS,
    is_file_reference,
    is_reference,
    model_names,
)
from tune_mnist.spec.search import (
    SchedulerBlock,
    SearchBlock,
)

# NaN and infinity are never a learning rate, a C or a GPU fraction.
_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

MAX_EPOCHS, MAX_BATCH_SIZE, MAX_REPEATS = 10_000, 1_000_000, 1_000
# What the libraries take: scikit-learn's random_state and numpy seeds end at 2**32 - 1
# (torch's at 2**64 - 1); a repeat adds one to the seed per repeat (spaces.repeat).
MAX_SEED = 2**32 - 1
# Far past any setting that trains (a diverging lr is still a result: the trial says so),
# short of the overflow that makes the first step's numbers inf.
MAX_LR, MAX_WEIGHT_DECAY, MAX_C, MAX_GAMMA, MAX_DEGREE = 1e6, 1e3, 1e10, 1e6, 10
# Inputs resized for the model: from 8 pixels (a ResNet's stem, a stride-2 convolution and
# a stride-2 max-pool, leaves a 2 x 2 map) to 1024 (past ImageNet's 224 and any study here).
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 1024


DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # it goes into folder names


MODULE_REFERENCE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


def _one_of(choices) -> str:
    """Choices as pydantic's literal errors list them: `'a', 'b' or 'c'`."""
    quoted = [repr(c) for c in choices]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _known_dataset(value: str, info: ValidationInfo) -> str:
    """A built-in dataset or one the space declares (validation context `datasets`)."""
    names = (*DATASETS, *((info.context or {}).get("datasets", ())))
    if value not in names:
        raise PydanticCustomError(
            "literal_error", "Input should be {expected}", {"expected": _one_of(names)}
        )
    return value


def _known_model(value: str) -> str:
    """A model name (built-in or entry point) or a well-formed reference."""
    if is_reference(value):
        where, _, name = value.rpartition(":")
        if is_file_reference(value):
            if not where.endswith(".py") or not name.isidentifier():
                raise PydanticCustomError("reference", "a file reference is FILE.py:callable")
        elif not MODULE_REFERENCE.fullmatch(value):
            raise PydanticCustomError(
                "reference", "a model reference is package.module:callable or FILE.py:callable"
            )
        return value
    if value not in model_names():
        raise PydanticCustomError(
            "literal_error", "Input should be {expected}", {"expected": _one_of(model_names())}
        )
    return value


class ResNetFields(BaseModel):
    """The keys of a ResNet trial as a space file may write them (see configs.ResNetConfig)."""

    model_config = _STRICT
    dataset: str  # a built-in or one the space declares under `datasets`
    model: str  # a built-in or registered name, or a reference (module:callable, FILE.py:callable)
    batch_size: int = Field(ge=1, le=MAX_BATCH_SIZE)  # and at most the training images
    optimizer: Literal[OPTIMIZERS]
    lr: float = Field(gt=0, le=MAX_LR)  # learning rate
    epochs: int = Field(ge=1, le=MAX_EPOCHS)
    pin_memory: bool = False
    momentum: float = Field(0.0, ge=0, lt=1)  # SGD only; 0 is torch's default
    weight_decay: float = Field(0.0, ge=0, le=MAX_WEIGHT_DECAY)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    # images resized to N x N on the device before the model; None: the data's own size
    image_size: int | None = Field(None, ge=MIN_IMAGE_SIZE, le=MAX_IMAGE_SIZE)

    check_dataset = field_validator("dataset")(_known_dataset)
    check_model = field_validator("model")(_known_model)


class SVMFields(BaseModel):
    """The keys of an SVM trial as a space file may write them (see configs.SVMConfig)."""

    model_config = _STRICT
    dataset: str  # a built-in or one the space declares under `datasets`
    kernel: Literal[KERNELS]
    train_samples: int = Field(10_000, ge=1)  # the first N training images, file order
    C: float = Field(1.0, gt=0, le=MAX_C)
    gamma: Literal["scale", "auto"] | float = "scale"
    degree: int = Field(3, ge=1, le=MAX_DEGREE)
    seed: int = Field(0, ge=0, le=MAX_SEED)

    check_dataset = field_validator("dataset")(_known_dataset)

    @field_validator("gamma")
    @classmethod
    def _gamma_in_range(cls, value):
        if isinstance(value, float) and not 0 < value <= MAX_GAMMA:
            raise PydanticCustomError(
                "gamma",
                "expected 'scale', 'auto' or a number above 0, at most {top}",
                {"top": f"{MAX_GAMMA:g}"},  # pydantic fills {name}, without a format spec
            )
        return value


class CustomFields(BaseModel):
    """The keys of a trial of the space's own trainable: a dataset, a seed, and any other
    keys with plain values (numbers, strings, booleans), passed to it as is."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)
    dataset: str
    seed: int = Field(0, ge=0, le=MAX_SEED)

    check_dataset = field_validator("dataset")(_known_dataset)

    @model_validator(mode="after")
    def _plain_values(self) -> CustomFields:
        for key, value in (self.model_extra or {}).items():
            if not isinstance(value, str | int | float | bool):
                raise PydanticCustomError(
                    "plain", "{key}: expected a number, string or boolean", {"key": key}
                )
            if key in CUSTOM_KEYS:
                raise PydanticCustomError("reserved", "{key}: a reserved key", {"key": key})
        return self


DEFAULT_REPORT = {"resnet": "comparison", "svm": "svm", "custom": "custom"}


class Resources(BaseModel):
    """What one trial asks Ray for: a GPU fraction on GPU clusters, CPUs otherwise."""

    model_config = _STRICT
    gpu: float = Field(0.25, gt=0, le=1)  # fraction of one GPU per ResNet trial
    cpu: float = Field(1.0, gt=0)  # CPUs per trial when it runs on CPU


class DatasetFiles(BaseModel):
    """Where a space's own dataset lies: exactly one of `npz` (a file holding x_train,
    y_train, x_test, y_test), `idx` (a folder of the four IDX files, any image size) or
    `torchvision` (a class name such as KMNIST, with `split` where it needs one)."""

    model_config = _STRICT
    npz: str | None = None
    idx: str | None = None
    torchvision: str | None = None
    split: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DatasetFiles:
        if sum(v is not None for v in (self.npz, self.idx, self.torchvision)) != 1:
            raise PydanticCustomError(
                "one_source",
                "expected exactly one of npz: FILE, idx: FOLDER or torchvision: CLASS",
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in DATA_KINDS if getattr(self, k) is not None)

    @property
    def path(self) -> str:
        return getattr(self, self.kind)


FIELDS: dict[str, type[BaseModel]] = {
    "resnet": ResNetFields,
    "svm": SVMFields,
    "custom": CustomFields,
}


class Space(BaseModel):
    """The file as written, before expansion."""

    model_config = _STRICT
    name: str = Field(min_length=1)
    description: str = ""
    # resnet, svm, or your own function: package.module:train or FILE.py:train (custom.py)
    trainable: str
    report: Literal["ablation", "svm", "comparison", "custom"] | None = None
    # custom trainables: the reported key the tables show, and whether higher is better
    metric: str | None = None
    mode: Literal["max", "min"] = "max"
    resources: Resources = Resources()
    repeats: int = Field(1, ge=1, le=MAX_REPEATS)  # seeds per configuration: seed, seed + 1, ...
    fixed: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    rows: list[dict[str, Any]] = []
    # a CSV of published numbers to set beside this run's (reference.load_reference); relative
    # to the space file, made absolute when the file is loaded
    reference: str | None = None
    # the space's own datasets by name; paths relative to the space file, made absolute
    datasets: dict[str, DatasetFiles] = {}
    # training images held out to choose on (split.py): N images, or a fraction 0 < f < 1
    validation: int | float | None = None
    search: SearchBlock | None = None  # how the space is searched (search.py); None: grid
    scheduler: SchedulerBlock | None = None  # early stopping (search.py)

    @field_validator("validation")
    @classmethod
    def _validation_size(cls, value: int | float | None) -> int | float | None:
        if isinstance(value, float) and not 0 < value < 1:
            raise PydanticCustomError("validation", "a fraction is between 0 and 1")
        if isinstance(value, int) and value < 1:
            raise PydanticCustomError("validation", "expected at least 1 image")
        return value


def _describe(error: ValidationError, source: str, where: dict[str, str] | None = None) -> str:
    """The first validation error as `file: place.key: what was expected (got value)`."""
    # A wrong or unknown key says more than the missing keys that often come with it.
    first = min(error.errors(), key=lambda e: e["type"] == "missing")
    loc = [str(part) for part in first["loc"]]
    key = loc[0] if loc else ""
    place = f"{where[key]}.{key}" if where and key in where else ".".join(loc)
    if first["type"] == "extra_forbidden":
        model = {m.__name__: m for m in FIELDS.values()}.get(error.title, Space)
        if loc[0] == "resources":
            model = Resources
        if loc[0] == "datasets":
            model = DatasetFiles
        if loc[0] in ("search", "scheduler"):
            model = _block_model(loc)
        return f"{source}: {place}: unknown key (expected one of: {', '.join(model.model_fields)})"
    if first["type"] == "missing":
        return f"{source}: {place}: required key is missing"
    return f"{source}: {place}: {first['msg']} (got {shown(first.get('input'))})"


def _block_model(loc: list[str]) -> type[BaseModel]:
    """The model whose keys an unknown key in the search or scheduler block is among."""
    from tune_mnist.spec.search import AshaBlock

    if loc[0] == "search":
        return SearchBlock
    return AshaBlock if len(loc) > 2 else SchedulerBlock
