"""Results DataFrame -> the study's tables, with repeats summarized honestly.

Three study tables, named by a space's `report` key:
- ablation (q1a): per dataset, the design rows, an accuracy column per model, and with two
  models and repeats their paired difference;
- svm (q1b): dataset, kernel, train samples, test accuracy, training time;
- comparison (q2): one row per configuration: accuracy, train time, FLOPs, params.
Plus, for ResNet spaces, main effects of each factor (aliased factors flagged), and for
every space the compute it used. With one seed per configuration the study tables look
like the study's; with repeats they add std, n, a 95% t-interval and a comparison mark.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from . import stats
from .experiment import ExperimentMeta
from .results import numbers
from .spaces import Space

MODEL_NAMES = {"resnet18": "ResNet-18", "resnet34": "ResNet-34", "resnet50": "ResNet-50"}
DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
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
}
FACTORS = ["model", "batch_size", "optimizer", "lr", "epochs", "pin_memory"]
CONFIG_KEYS = {
    "resnet": ["dataset", *FACTORS, "momentum", "weight_decay"],
    "svm": ["dataset", "kernel", "train_samples", "C", "gamma", "degree"],
}
# Shown even when constant in a table: the study's own columns.
DEFAULT_SHOWN = {
    "model",
    "batch_size",
    "optimizer",
    "lr",
    "epochs",
    "pin_memory",
    "kernel",
    "train_samples",
    "dataset",
}
REPEAT_NOTE = (
    "Mean ± std over n seeds; 95% CI: Student t-interval of the mean. vs best: `lower` = "
    "the row's CI lies below the best row's CI, `tie` = the intervals overlap."
)
SINGLE_NOTE = "One seed per configuration: differences cannot be told from seed-to-seed noise."


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


def metric(results: pd.DataFrame, name: str) -> pd.Series:
    """A metric of finished trials as numbers; NaN for unfinished ones or when absent."""
    return numbers(results, name).where(results["status"] == "finished")


def _ci(summary: pd.DataFrame) -> pd.Series:
    return summary.apply(
        lambda r: "—" if pd.isna(r["ci_low"]) else f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]",
        axis=1,
    )


def _display(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    shown = frame[keys].copy()
    if "model" in shown:
        shown["model"] = shown["model"].map(MODEL_NAMES)
    if "dataset" in shown:
        shown["dataset"] = shown["dataset"].map(DATASET_NAMES)
    if "optimizer" in shown:
        shown["optimizer"] = shown["optimizer"].map({"sgd": "SGD", "adam": "Adam"})
    if "kernel" in shown:
        shown["kernel"] = (
            shown["kernel"].map({"rbf": "RBF", "poly": "Poly"}).fillna(shown["kernel"])
        )
    return shown.rename(columns=LABELS)


def config_table(results: pd.DataFrame, keys: list[str], extra: dict[str, str]) -> pd.DataFrame:
    """One row per configuration: accuracy over repeats, then the mean of each `extra`."""
    frame = results.assign(
        _acc=metric(results, "test_accuracy"), **{f"_{k}": metric(results, k) for k in extra}
    )
    summary = stats.aggregate(frame, keys, "_acc")
    means = frame.groupby(keys, sort=False, dropna=False)[[f"_{k}" for k in extra]].mean()
    summary = summary.merge(means.reset_index(), on=keys, how="left")
    shown = _display(summary, [k for k in keys if results[k].nunique() > 1 or k in DEFAULT_SHOWN])
    shown["test accuracy (%)"] = summary["mean"].round(2)
    if summary["n"].max() > 1:
        shown["± std"] = summary["std"].round(2)
        shown["n"] = summary["n"]
        shown["95% CI"] = _ci(summary)
        group = [k for k in ("dataset",) if k in keys]
        marks = (
            summary.groupby(group, sort=False, group_keys=False).apply(stats.versus_best)
            if group
            else stats.versus_best(summary)
        )
        shown["vs best"] = marks.reindex(summary.index)
    for key, label in extra.items():
        values = summary[f"_{key}"]
        shown[label] = (
            values.round().astype("Int64")
            if key.endswith("_ms")
            else values.round(4 if key == "gflops" else 2)
        )
    return shown


def comparison_tables(results: pd.DataFrame, space: Space) -> list[Table]:
    """q2: one row per configuration with accuracy, train time, FLOPs and params."""
    keys = [k for k in CONFIG_KEYS["resnet"] if k != "dataset" or results[k].nunique() > 1]
    frame = config_table(
        results,
        keys,
        {"train_time_ms": "train time (ms)", "gflops": "FLOPs (GFLOPs)", "params_m": "params (M)"},
    )
    return [Table(space.name, f"{space.name}: model comparison", frame)]


def svm_tables(results: pd.DataFrame, space: Space) -> list[Table]:
    """q1b: dataset, kernel, train samples, test accuracy (%), training time (ms)."""
    frame = config_table(
        results, ["dataset", "kernel", "train_samples"], {"train_time_ms": "training time (ms)"}
    )
    return [Table(space.name, f"{space.name}: SVM baselines", frame)]


def ablation_tables(results: pd.DataFrame, space: Space) -> list[Table]:
    """q1a: per dataset, one row per design row, one accuracy column per model."""
    row_keys = [k for k in FACTORS if k != "model" and any(k in row for row in space.rows)]
    models = list(dict.fromkeys(results["model"]))
    tables = []
    for dataset, part in results.groupby("dataset", sort=False):
        part = part.assign(_acc=metric(part, "test_accuracy"))
        frame = _display(part[row_keys].drop_duplicates().reset_index(drop=True), row_keys)
        design = part[row_keys].drop_duplicates().reset_index(drop=True)
        for model in models:
            summary = stats.aggregate(part[part["model"] == model], row_keys, "_acc")
            summary = design.merge(summary, on=row_keys, how="left")
            frame[f"{MODEL_NAMES[model]} acc (%)"] = summary["mean"].round(2).to_numpy()
            if summary["n"].max() > 1:
                frame[f"{MODEL_NAMES[model]} ± std"] = summary["std"].round(2).to_numpy()
        notes = []
        if len(models) == 2 and part.groupby([*row_keys, "model"])["seed"].nunique().max() > 1:
            frame, note = _paired_columns(frame, part, design, row_keys, models)
            notes.append(note)
        title = f"{space.name}: {DATASET_NAMES[dataset]}"
        tables.append(Table(f"{space.name}-{dataset}", title, frame, notes))
    return tables


def _paired_columns(frame, part, design, row_keys, models):
    a, b = models
    diffs = []
    for _, row in design.iterrows():
        mask = (part[row_keys] == row.to_numpy()).all(axis=1)
        pairs = part[mask].pivot_table(index="seed", columns="model", values="_acc")
        diffs.append(stats.paired_difference(pairs.get(a, []), pairs.get(b, [])))
    diffs = pd.DataFrame(diffs)
    label = f"{MODEL_NAMES[b]} - {MODEL_NAMES[a]} (pp)"
    frame[label] = diffs["diff"].round(2)
    frame["diff 95% CI"] = _ci(diffs)
    frame["p (paired t)"] = diffs["p"].round(3)
    note = (
        f"{label}: per design row, the mean over seeds of the paired difference (same seed, "
        "both models), its 95% t-interval and a paired t-test p-value."
    )
    return frame, note


def effects_tables(results: pd.DataFrame, space: Space) -> list[Table]:
    """Main effects of each design factor on accuracy and train time, per dataset."""
    tables = []
    for dataset, part in results.groupby("dataset", sort=False):
        part = part.assign(
            test_accuracy=metric(part, "test_accuracy"), train_time_ms=metric(part, "train_time_ms")
        )
        design = part[[f for f in FACTORS if part[f].nunique() > 1]]
        hidden, aliases = stats.aliased_factors(design)
        factors = [f for f in design if f not in hidden]
        frame = stats.main_effects(part, factors, ["test_accuracy", "train_time_ms"])
        if frame.empty:
            continue
        frame = frame.rename(
            columns={
                "mean test_accuracy": "mean test accuracy (%)",
                "mean train_time_ms": "mean train time (ms)",
            }
        )
        frame["mean test accuracy (%)"] = frame["mean test accuracy (%)"].round(2)
        frame["mean train time (ms)"] = frame["mean train time (ms)"].round()
        notes = [
            "Levels: mean over every finished trial at that level. The `A - B` rows: "
            "difference of the two levels' means with a Welch 95% t-interval over trials "
            "(other factors vary inside each level, so the interval is conservative; in an "
            "unbalanced design such as q2 a level's mean also carries other factors' effects)."
        ]
        notes += [f"Aliased in this design: {line}." for line in aliases]
        title = f"{space.name}: main effects, {DATASET_NAMES[dataset]}"
        tables.append(Table(f"{space.name}-effects-{dataset}", title, frame, notes))
    return tables


def compute_table(results: pd.DataFrame, space: Space) -> Table:
    """GPU- and CPU-seconds, images and training FLOPs, per dataset and model (or kernel)."""
    by = ["dataset", "model" if "model" in results else "kernel"]
    done = results[results["status"] == "finished"]
    columns = {
        "gpu_seconds": "GPU-seconds",
        "cpu_seconds": "CPU-seconds",
        "images_seen": "train images",
        "train_pflops_est": "train PFLOPs (est.)",
    }
    present = [c for c in columns if c in done]
    frame = (
        done.groupby(by, sort=False)[present].sum().reset_index()
        if len(done)
        else pd.DataFrame(columns=by + present)
    )
    frame.insert(
        len(by), "trials", done.groupby(by, sort=False).size().to_numpy() if len(done) else []
    )
    frame = _display(frame, by).join(frame.drop(columns=by))
    total = {
        **dict.fromkeys(LABELS[b] for b in by),
        "trials": len(done),
        **done[present].sum().to_dict(),
    }
    total[LABELS[by[0]]] = "all"
    frame = pd.concat([frame, pd.DataFrame([total])], ignore_index=True)
    frame = frame.rename(columns=columns).round(3)
    note = (
        "GPU-seconds: train time x the GPU fraction held; CPU-seconds likewise with CPUs. "
        "Train PFLOPs: an estimate, 3 x forward FLOPs (fvcore) x images trained."
    )
    return Table(f"{space.name}-compute", f"{space.name}: compute used", frame, [note])


STUDY_TABLES = {"ablation": ablation_tables, "svm": svm_tables, "comparison": comparison_tables}


def build_tables(results: pd.DataFrame, meta: ExperimentMeta) -> list[Table]:
    """The study's tables for an experiment, then effects (ResNets) and compute."""
    space = meta.space
    tables = STUDY_TABLES[meta.report](results, space)
    repeated = results.groupby(CONFIG_KEYS[space.trainable], dropna=False).size().max() > 1
    for table in tables:
        table.notes.append(REPEAT_NOTE if repeated else SINGLE_NOTE)
    if space.trainable == "resnet":
        tables += effects_tables(results, space)
        pinning = pin_memory_note(results, meta)
        for table in tables if pinning else []:
            table.notes.append(pinning)
    tables.append(compute_table(results, space))
    for table in tables:
        if meta.smoke:
            table.title += " (SMOKE RUN: not the study's numbers)"
        table.notes.append(scale_note(meta))
        if partial := selection_note(meta):
            table.notes.append(partial)
    return tables


def selection_note(meta: ExperimentMeta) -> str | None:
    """Which part of the space ran, when a sweep ran only part of it (--where, --trial)."""
    selection = meta.selection
    if selection is None:
        return None
    rows = ", ".join(map(str, selection.chosen))
    return (
        f"Partial study: {len(selection.chosen)} of the {selection.of} trials of "
        f"{meta.name} ran ({selection.describe()}): trials {rows} of "
        f"`tune-mnist show {meta.name}`."
    )


def pin_memory_note(results: pd.DataFrame, meta: ExperimentMeta) -> str | None:
    """Why pin_memory could change nothing in this run, if it could not."""
    if meta.settings.options.preload:
        return "pin_memory had no effect: the datasets were preloaded on the GPU (--preload)."
    devices = set(results["device"].dropna()) if "device" in results else set()
    if devices == {"cpu"}:
        return "pin_memory had no effect: every trial trained on the CPU, where nothing is pinned."
    return None


def scale_note(meta: ExperimentMeta) -> str:
    """What data and how many epochs the numbers come from."""
    data = ", ".join(
        f"{DATASET_NAMES.get(n, n)} {d.train:,} train / {d.test:,} test"
        for n, d in meta.data.items()
    )
    if meta.report == "svm":
        return f"Data: {data}; SVC fit on the first train_samples images, whole test set."
    epochs = "1 epoch per trial (--smoke)" if meta.smoke else "epochs as listed"
    return f"Data: {data}; {epochs}. Accuracy on the whole test set after the last epoch."
