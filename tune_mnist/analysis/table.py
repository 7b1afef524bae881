"""The report's table type and the words it is written in: display names, column labels,
the factors, the notes every interval table carries, and small number formats."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from tune_mnist.spec.configs import is_reference, short_model
from tune_mnist.spec.schema import Space
from tune_mnist.store.experiment import ExperimentMeta, Predictions
from tune_mnist.store.results import numbers


class _ModelNames(dict):
    """Display names of models: the built-ins' own, a file reference by its file's name
    (`nets.py:build`, not the absolute path trials keep), anything else the default."""

    def get(self, model, default=None):
        if model in self:
            return self[model]
        return short_model(model) if isinstance(model, str) and is_reference(model) else default


MODEL_NAMES = _ModelNames(resnet18="ResNet-18", resnet34="ResNet-34", resnet50="ResNet-50")


DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}


LEVEL_NAMES = {
    "model": MODEL_NAMES,
    "optimizer": {"sgd": "SGD", "adam": "Adam"},
    "kernel": {"rbf": "RBF", "poly": "Poly", "linear": "linear", "sigmoid": "sigmoid"},
    "function": MODEL_NAMES,  # a custom trainable: its file's name, not its whole path
}


LABELS = {
    "dataset": "dataset",
    "model": "model",
    "batch_size": "batch size",
    "optimizer": "optimizer",
    "lr": "LR",
    "epochs": "epochs",
    "pin_memory": "pin_memory",
    "kernel": "kernel",
    "train_samples": "train samples",
    "function": "trainable",
    "image_size": "image size",
}


FACTORS = ["model", "batch_size", "optimizer", "lr", "epochs", "pin_memory", "image_size"]


# Shown even when constant in a table: the study's own columns.
DEFAULT_SHOWN = {*FACTORS, "kernel", "train_samples", "dataset"}


CONTENDED = 0.1  # a trial that shared its node with others this much of its time


REPEAT_NOTE = (
    "Mean ± std over n seeds; 95% CI: Student t-interval of the mean over seeds. vs best: "
    "Dunnett's test of each configuration against the one with the highest mean, "
    "family-wise 5%; the best is picked on the same test set it is scored on."
)


SINGLE_NOTE = (
    "One run per configuration: its 95% CI is the test-sampling (Wilson) interval of its "
    "accuracy on the test images, not seed-to-seed variation, which one run cannot show."
)
# An SVC fit has no randomness (SVC's seed acts only with probability=True): no seeds.
SVM_NOTE = (
    "One fit per configuration: its 95% CI is the test-sampling (Wilson) interval of its "
    "accuracy on the test images. An SVC fit has no seed: fitting again gives the same model."
)


def single_note(trainable: str) -> str:
    """What the interval of a single run means, for this kind of trial."""
    return SVM_NOTE if trainable == "svm" else SINGLE_NOTE


MCNEMAR_NOTE = (
    "vs best: exact McNemar test of each configuration against the best on the same test "
    "images, Holm-adjusted; the best is picked on the same test set it is scored on."
)


@dataclass
class Table:
    """One table of a report."""

    name: str  # file stem, e.g. "q1a-mnist"
    title: str
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def shown(self) -> pd.DataFrame:
        """The frame as every view prints it (Markdown, HTML, terminal, LaTeX): one
        precision per kind of column, so that 99.00 never stands beside 99.02 and LR reads
        the same everywhere; the CSV, JSON and Parquet exports keep the numbers."""
        out = self.frame.copy()
        for column in out.columns:
            if pd.api.types.is_float_dtype(out[column]):
                text = _float_text(str(column))
                out[column] = out[column].map(lambda v, t=text: "—" if pd.isna(v) else t(v))
        return out

    def to_markdown(self) -> str:
        notes = "".join(f"\n{note}\n" for note in self.notes)
        body = self.shown().to_markdown(index=False, missingval="—", disable_numparse=True)
        return f"## {self.title}\n\n{body}\n{notes}"


def _float_text(column: str):
    """How a float column is printed, by what its name says it holds."""
    if column.endswith(("(%)", "(pp)", "± std")) or column in ("estimate", "mean", "std"):
        return "{:.2f}".format  # accuracies and their differences: to the hundredth
    if column == "p" or column.startswith("p ("):
        from tune_mnist.analysis.stats import p_text

        return lambda v: p_text(v).removeprefix("= ")
    if "seconds" in column or column.endswith("(s)"):
        return "{:,.1f}".format
    return _number_text


def _number_text(value: float) -> str:
    """A count as a count (900,000, not 900000.0); anything else to 4 significant digits."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


@dataclass(frozen=True)
class Run:
    """What the tables of one experiment are built from."""

    meta: ExperimentMeta
    results: pd.DataFrame  # one row per trial (results.load_results)
    predictions: dict[str, Predictions] = field(default_factory=dict)  # by trial label
    inert: dict[str, str] = field(default_factory=dict)  # factor -> why it could not act

    @property
    def space(self) -> Space:
        return self.meta.space


def sgd_momentum(results: pd.DataFrame) -> float | None:
    """The momentum SGD trials ran with, when one nonzero value: a setting the study does
    not state, shown where the numbers are."""
    if "momentum" not in results or "optimizer" not in results:
        return None
    used = numbers(results[results["optimizer"] == "sgd"], "momentum").dropna().unique()
    return float(used[0]) if len(used) == 1 and used[0] != 0 else None


def metric(results: pd.DataFrame, name: str) -> pd.Series:
    """A metric of finished trials as numbers; NaN for unfinished ones or when absent."""
    return numbers(results, name).where(results["status"] == "finished")


def display_frame(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The configuration columns `keys` of `frame` as tables print them: level names,
    column labels, and no momentum for Adam rows (Adam takes none)."""
    shown = frame[keys].copy()
    if "momentum" in shown and "optimizer" in frame:
        shown["momentum"] = shown["momentum"].astype(float).where(frame["optimizer"] != "adam")
    for key, names in (*LEVEL_NAMES.items(), ("dataset", DATASET_NAMES)):
        if key in shown:
            shown[key] = shown[key].map(lambda v, n=names: n.get(v, v))
    return shown.rename(columns=LABELS)


def interval_text(low: float, high: float) -> str:
    return "—" if pd.isna(low) or pd.isna(high) else f"[{low:.2f}, {high:.2f}]"


def ms_text(value: float, contended: bool = False) -> str:
    """Milliseconds as the study prints them (thousands separators), * if contended."""
    if pd.isna(value):
        return "—"
    return f"{round(value):,}" + (" *" if contended else "")
