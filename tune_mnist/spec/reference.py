"""Published numbers to set beside a run: the reference tables of the built-in spaces (in
`search_spaces/reference/`, package `tune_mnist.search_spaces`) or a space's own, read
into one long format.

One row per configuration, config columns as the spaces spell them (`resnet18`, `adam`,
`rbf`, `fashion-mnist`) and `study_accuracy` (%), plus `study_train_time_ms`,
`study_gflops` and `study_params_m` where the table has them. A space file naming a table
is checked by loading it (spaces.py); the report sets it beside the run (analysis/study.py).
"""

from __future__ import annotations

import math
import re
from importlib import resources
from pathlib import Path

import pandas as pd

from tune_mnist.errors import TuneMnistError, first_line
from tune_mnist.spec.configs import ALL_CONFIG_FIELDS, DATASETS, KERNELS, MODELS, OPTIMIZERS

DATASET_NOTE = (
    "The study does not state the dataset of its q1a rows; their values (all above 99%) "
    "are MNIST-level, so they are compared with MNIST."
)

# Built-in space -> its reference table; q2-full reuses the rows of q2 that it contains.
BUILTIN = {
    "q1a": "q1a.csv",
    "q1b": "q1b.csv",
    "q1b-full": "fashion-benchmark.csv",
    "q2": "q2.csv",
    "q2-full": "q2.csv",
}
# The dataset of a built-in table that has no dataset column.
BUILTIN_DATASET = {"q2": "fashion-mnist", "q2-full": "fashion-mnist"}

NAMES = {"dataset": DATASETS, "model": MODELS, "optimizer": OPTIMIZERS, "kernel": KERNELS}
INTS = ("batch_size", "epochs", "train_samples", "degree")
FLOATS = ("lr", "momentum", "weight_decay", "C")
# A table's metric column -> its name in the long format.
METRICS = {
    "test_accuracy": "study_accuracy",
    "train_time_ms": "study_train_time_ms",
    "gflops": "study_gflops",
    "params_m": "study_params_m",
}


def reference_path(space_name: str) -> Path | None:
    """The packaged reference table of a built-in space, or None when it has none."""
    name = BUILTIN.get(space_name)
    if name is None:
        return None
    path = Path(str(resources.files("tune_mnist.search_spaces") / "reference" / name))
    return path if path.is_file() else None


def builtin_reference(space_name: str) -> pd.DataFrame | None:
    """The reference of a built-in space in long format, or None when it has none."""
    path = reference_path(space_name)
    return None if path is None else load_reference(path, BUILTIN_DATASET.get(space_name))


def load_reference(path: str | Path, dataset: str | None = None) -> pd.DataFrame:
    """Read a reference CSV into long format (see the module docstring).

    Long tables have a `model` (or `kernel`) column and `test_accuracy`; wide tables, like
    q1a's, have a `<model>_test_accuracy` column per model and become one row per model.
    `dataset` is used when the table has no dataset column; a wide table without either
    is taken as MNIST, with a note in `attrs["notes"]`. A malformed table raises
    TuneMnistError with one line naming the file, the line and the column.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise TuneMnistError(f"{path}: cannot read the reference table: {first_line(e)}") from e
    raw.columns = [str(c).strip() for c in raw.columns]
    if raw.empty:
        raise TuneMnistError(f"{path}: the reference table has no rows")
    wide = {
        c: (m, metric)
        for c in raw.columns
        for m in MODELS
        for metric in METRICS
        if c == f"{m}_{metric}"
    }
    known = set(ALL_CONFIG_FIELDS) | set(METRICS) | set(METRICS.values()) | set(wide)
    if unknown := [c for c in raw.columns if c not in known]:
        raise TuneMnistError(
            f"{path}: unknown column {unknown[0]!r}; expected config columns "
            f"({', '.join(ALL_CONFIG_FIELDS)}), test_accuracy or <model>_test_accuracy"
        )
    notes: list[str] = []
    raw = raw.rename(columns={v: k for k, v in METRICS.items()})  # study_x -> x
    if raw.columns.duplicated().any():
        twice = raw.columns[raw.columns.duplicated()][0]
        raise TuneMnistError(f"{path}: {twice} is given twice (also as study_...)")
    raw.insert(0, "_line", range(2, len(raw) + 2))  # header is line 1
    if wide:
        raw = _wide_to_long(path, raw, wide)
    if "test_accuracy" not in raw:
        raise TuneMnistError(
            f"{path}: no accuracy column: expected test_accuracy or <model>_test_accuracy"
        )
    if "dataset" not in raw:
        if dataset is None and not wide:
            raise TuneMnistError(f"{path}: no dataset column, and no dataset was named for it")
        if dataset is None:
            dataset = "mnist"
            notes.append(DATASET_NOTE)
        raw.insert(1, "dataset", dataset)
    frame = pd.DataFrame(
        {
            c: [_parse(path, line, c, v) for line, v in zip(raw["_line"], raw[c], strict=True)]
            for c in raw
        }
    )
    configs = [c for c in ALL_CONFIG_FIELDS if c in frame]
    duplicated = frame.duplicated(configs, keep=False)
    if duplicated.any():
        lines = frame.loc[duplicated, "_line"].tolist()
        raise TuneMnistError(f"{path}: lines {lines[0]} and {lines[1]} repeat one configuration")
    frame = frame.rename(columns=METRICS)
    frame = frame[configs + [m for m in METRICS.values() if m in frame]]
    frame.attrs["notes"] = notes
    return frame.reset_index(drop=True)


def _wide_to_long(path: Path, raw: pd.DataFrame, wide: dict) -> pd.DataFrame:
    if "model" in raw or any(m in raw for m in METRICS):
        raise TuneMnistError(f"{path}: mixes per-model columns with a model or metric column")
    models = list(dict.fromkeys(m for m, _ in wide.values()))
    if missing := [m for m in models if f"{m}_test_accuracy" not in raw]:
        raise TuneMnistError(f"{path}: no {missing[0]}_test_accuracy column")
    design = [c for c in raw if c not in wide]
    parts = []
    for model in models:
        columns = {c: metric for c, (m, metric) in wide.items() if m == model}
        part = raw[design + list(columns)].rename(columns=columns)
        parts.append(part.assign(model=model))
    # design row by design row, each model in the table's order
    return pd.concat(parts).sort_values("_line", kind="stable").reset_index(drop=True)


def _parse(path: Path, line: int, column: str, value):
    if column == "_line":
        return value
    text = str(value).strip()
    where = f"{path}: line {line}: {column}"
    if text == "":
        if column in METRICS and column != "test_accuracy":
            return math.nan
        raise TuneMnistError(f"{where} is empty")
    if column in NAMES:
        allowed = {squash(v): v for v in NAMES[column]}
        if squash(text) not in allowed:
            raise TuneMnistError(f"{where}: {text!r} is not one of {', '.join(NAMES[column])}")
        return allowed[squash(text)]
    if column == "pin_memory":
        flags = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
        if text.lower() not in flags:
            raise TuneMnistError(f"{where}: expected true or false, not {text!r}")
        return flags[text.lower()]
    if column == "gamma":
        return text.lower() if text.lower() in ("scale", "auto") else _number(where, text)
    number = _number(where, text)
    if column in INTS:
        if number != int(number) or number < 1:
            raise TuneMnistError(f"{where}: expected a positive whole number, not {text!r}")
        return int(number)
    if column == "test_accuracy" and not 0 <= number <= 100:
        raise TuneMnistError(f"{where}: expected a percentage between 0 and 100, not {text!r}")
    if column in ("lr", "C") and number <= 0:
        raise TuneMnistError(f"{where}: expected a positive number, not {text!r}")
    return number


def _number(where: str, text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise TuneMnistError(f"{where}: expected a number, not {text!r}") from None
    if not math.isfinite(number):
        raise TuneMnistError(f"{where}: expected a finite number, not {text!r}")
    return number


def squash(name: str) -> str:
    # 'ResNet-18', 'Fashion_MNIST' and 'FashionMNIST' read as resnet18 and fashion-mnist
    return re.sub(r"[^a-z0-9]", "", name.lower())


# ---------------------------------------------------------------- side by side
