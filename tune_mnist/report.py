"""Results DataFrame -> the study's tables, as DataFrames and as Markdown and CSV files.

Three table kinds, named by a space's `report` key:
- ablation (q1a): one table per dataset, the design rows, one accuracy column per model;
- svm (q1b): dataset, kernel, train samples, test accuracy, training time;
- comparison (q2): one row per configuration with accuracy, train time, FLOPs, params.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .results import load_results, read_meta, write_atomic

MODEL_NAMES = {"resnet18": "ResNet-18", "resnet34": "ResNet-34", "resnet50": "ResNet-50"}
DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
DESIGN_COLUMNS = {
    "batch_size": "batch size",
    "optimizer": "optimizer",
    "lr": "lr",
    "epochs": "epochs",
    "pin_memory": "pin_memory",
}
REPORT_DIR = "report"


@dataclass
class Table:
    """One table of a report."""

    name: str  # file stem, e.g. "q1a-mnist"
    title: str
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        notes = "".join(f"\n{note}\n" for note in self.notes)
        body = self.frame.to_markdown(index=False, floatfmt="", missingval="—")
        return f"## {self.title}\n\n{body}\n{notes}"


@dataclass
class Summary:
    """The tables of one experiment, and what is missing from it."""

    experiment: Path
    tables: list[Table]
    results: pd.DataFrame
    incomplete: pd.DataFrame  # trials not finished: label, status, error
    files: list[Path] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.incomplete.empty


def _finished(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["status"] == "finished"]


def ablation_tables(results: pd.DataFrame, space: dict) -> list[Table]:
    """q1a: per dataset, one row per design row, one test-accuracy column per model."""
    row_keys = [k for k in DESIGN_COLUMNS if any(k in row for row in space["rows"])]
    tables = []
    for dataset, part in results.groupby("dataset", sort=False):
        done = _finished(part)
        wide = (
            done.pivot_table(
                index=row_keys, columns="model", values="test_accuracy", aggfunc="mean", sort=False
            )
            if not done.empty
            else None
        )
        design = part[row_keys].drop_duplicates().reset_index(drop=True)
        frame = design.rename(columns=DESIGN_COLUMNS)
        for model in dict.fromkeys(part["model"]):
            column = f"{MODEL_NAMES[model]} acc (%)"
            if wide is not None and model in wide:
                values = design.merge(wide[model].reset_index(), how="left", on=row_keys)[model]
                frame[column] = values.round(2).to_numpy()
            else:
                frame[column] = float("nan")
        name = DATASET_NAMES[dataset]
        tables.append(Table(f"{space['name']}-{dataset}", f"{space['name']}: {name}", frame))
    return tables


def svm_table(results: pd.DataFrame, space: dict) -> list[Table]:
    """q1b: dataset, kernel, train samples, test accuracy (%), training time (ms)."""
    frame = pd.DataFrame(
        {
            "dataset": results["dataset"].map(DATASET_NAMES),
            "kernel": results["kernel"].str.upper().replace({"POLY": "Poly", "LINEAR": "Linear"}),
            "train samples": results.get("train_samples"),
            "test accuracy (%)": _column(results, "test_accuracy").round(2),
            "training time (ms)": _column(results, "train_time_ms").round().astype("Int64"),
        }
    )
    return [Table(space["name"], f"{space['name']}: SVM baselines", frame)]


def comparison_table(results: pd.DataFrame, space: dict) -> list[Table]:
    """q2: one row per configuration with accuracy, train time, FLOPs and params."""
    frame = pd.DataFrame(
        {
            "model": results["model"].map(MODEL_NAMES),
            "batch size": results["batch_size"],
            "optimizer": results["optimizer"].map({"sgd": "SGD", "adam": "Adam"}),
            "LR": results["lr"],
            "epochs": results["epochs"],
            "pin_memory": results["pin_memory"],
            "test accuracy (%)": _column(results, "test_accuracy").round(2),
            "train time (ms)": _column(results, "train_time_ms").round().astype("Int64"),
            "FLOPs (GFLOPs)": _column(results, "gflops").round(4),
            "params (M)": _column(results, "params_m").round(2),
        }
    )
    if results["dataset"].nunique() > 1:
        frame.insert(0, "dataset", results["dataset"].map(DATASET_NAMES))
    return [Table(space["name"], f"{space['name']}: model comparison", frame)]


def _column(results: pd.DataFrame, name: str) -> pd.Series:
    """A metric of finished trials; NaN for the others (and when no trial reported it)."""
    if name not in results:
        return pd.Series(float("nan"), index=results.index)
    values = pd.to_numeric(results[name], errors="coerce")
    return values.where(results["status"] == "finished")


BUILDERS = {"ablation": ablation_tables, "svm": svm_table, "comparison": comparison_table}


def build_tables(results: pd.DataFrame, meta: dict) -> list[Table]:
    """The study's tables for an experiment's results, titled and footnoted."""
    tables = BUILDERS[meta["report"]](results, meta["space"])
    scale = _scale_note(meta)
    if meta["report"] == "svm":
        scale = (
            scale.split(";")[0]
            + "; SVC fit on the first train_samples images, tested on the whole test set."
        )
    for table in tables:
        if meta["smoke"]:
            table.title += " (SMOKE RUN: not the study's numbers)"
        table.notes.append(scale)
    return tables


def _scale_note(meta: dict) -> str:
    data = ", ".join(
        f"{DATASET_NAMES.get(n, n)} {d['train']:,} train / {d['test']:,} test"
        for n, d in meta["data"].items()
    )
    epochs = "1 epoch per trial (--smoke)" if meta["smoke"] else "epochs as listed"
    return f"Data: {data}; {epochs}. Accuracy on the whole test set after the last epoch."


def summarize(experiment: str | Path, write: bool = True) -> Summary:
    """Load an experiment, build its tables, and (by default) write them to `report/`.

    Works on interrupted or partly failed experiments: unfinished trials are left out of
    the numbers and listed in `Summary.incomplete`.
    """
    experiment = Path(experiment)
    meta = read_meta(experiment)
    results = load_results(experiment)
    tables = build_tables(results, meta)
    incomplete = results.loc[results["status"] != "finished", ["label", "status", "error"]]
    summary = Summary(experiment, tables, results, incomplete.reset_index(drop=True))
    if write:
        summary.files = write_tables(experiment / REPORT_DIR, tables, incomplete)
    return summary


def write_tables(folder: Path, tables: list[Table], incomplete: pd.DataFrame) -> list[Path]:
    """Markdown (all tables in one file) and one CSV per table, each written atomically."""
    markdown = "\n".join(t.to_markdown() for t in tables)
    if not incomplete.empty:
        listing = incomplete.to_markdown(index=False, missingval="")
        markdown += f"\n## Incomplete trials ({len(incomplete)})\n\n{listing}\n"
    files = [folder / "tables.md"]
    write_atomic(files[0], markdown)
    for table in tables:
        files.append(folder / f"{table.name}.csv")
        write_atomic(files[-1], table.frame.to_csv(index=False))
    return files
