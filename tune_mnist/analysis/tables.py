"""An experiment's results -> the report's tables, each number with the uncertainty it has.

The study's tables (named by a space's `report` key), in the study's column order:
- ablation (q1a): per dataset, the design rows, an accuracy column per model;
- svm (q1b): dataset, kernel, train samples, test accuracy, training time;
- comparison (q2): one row per configuration: accuracy, train time, FLOPs, params.
Then, for ResNet spaces, factor effects from a linear model of the design (effects.py);
the study's published numbers beside this run's and its claims tested (study.py), when
the space has a reference; and the compute used.

Uncertainty, by what ran: repeats (seeds) give a seed-to-seed t-interval and Dunnett's test
against the best; a single run gives the test-sampling (Wilson) interval of its accuracy,
and configurations scored on the same test images are compared by exact McNemar tests.
Two configurations that were the same computation (they differ only in a factor that could
not act) are said to be so and never ranked against each other.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tune_mnist.analysis import stats
from tune_mnist.analysis.configurations import configurations
from tune_mnist.analysis.design_tables import effects_tables, study_tables
from tune_mnist.analysis.search_tables import search_tables
from tune_mnist.analysis.table import (
    CONTENDED,
    DATASET_NAMES,
    DEFAULT_SHOWN,
    FACTORS,
    LABELS,
    MCNEMAR_NOTE,
    MODEL_NAMES,
    REPEAT_NOTE,
    Run,
    Table,
    display_frame,
    interval_text,
    metric,
    ms_text,
    sgd_momentum,
    single_note,
)
from tune_mnist.spec.configs import CONFIG_FIELDS, trial_to_dict
from tune_mnist.store.experiment import ExperimentMeta, Predictions
from tune_mnist.store.results import SCORED, is_sampled, numbers


def inert_factors(results: pd.DataFrame, meta: ExperimentMeta) -> dict[str, str]:
    """The factors that could not act in the trials that ran, and why."""
    if meta.trainable != "resnet":
        return {}
    inert = {}
    if meta.settings.options.preload:
        inert["pin_memory"] = "the datasets were preloaded on the GPU (--preload)"
    elif set(results.get("device", pd.Series(dtype=str)).dropna()) == {"cpu"}:
        inert["pin_memory"] = "every trial trained on the CPU, where nothing is pinned"
    finished = results[results["status"] == "finished"]
    trained = metric(finished, "epoch").dropna()
    if finished["epochs"].nunique() > 1 and trained.nunique() == 1:
        cap = "--smoke" if meta.smoke else "a --max-epochs cap"
        inert["epochs"] = f"every trial trained {int(trained.iloc[0])} epoch(s) ({cap})"
    return inert


def _versus_best(summary: pd.DataFrame, group: list[str]) -> tuple[pd.Series, set[str]]:
    """Per row: its comparison with its group's best (see stats.versus_best); and the
    tests used."""
    marks = pd.Series("—", index=summary.index, dtype=object)
    tests: set[str] = set()
    parts = summary.groupby(group, sort=False) if group else [(None, summary)]
    for _, part in parts:
        own = part[part["same_as"].isna()]  # an identical computation is not a rival
        found = stats.versus_best(own, samples=list(own["samples"]), correct=list(own["correct"]))
        marks[own.index] = found["mark"]
        tests |= set(found["test"]) - {""}
        best = own.index[found["mark"] == "best"]
        best_row = part.loc[best[0], "row"] if len(best) else None
        for i in part.index[part["same_as"].notna()]:
            same = int(part.loc[i, "same_as"])
            marks[i] = f"same computation as #{same}" + (" (best)" if same == best_row else "")
    return marks, tests


def config_table(run: Run, keys: list[str], extra: dict[str, str]) -> tuple[pd.DataFrame, list]:
    """One row per configuration in the study's columns, then the statistics columns."""
    summary = configurations(run, keys)
    if summary.empty:
        return pd.DataFrame(columns=["#"]), []
    shown_keys = [k for k in keys if run.results[k].nunique() > 1 or k in DEFAULT_SHOWN]
    frame = pd.concat(
        [summary[["row"]].rename(columns={"row": "#"}), display_frame(summary, shown_keys)], axis=1
    )
    if "epochs" in keys and (summary["epochs_trained"] != summary["epochs"].astype(str)).any():
        frame.insert(
            frame.columns.get_loc("epochs") + 1, "epochs trained", summary["epochs_trained"]
        )
    frame["test accuracy (%)"] = summary["mean"].round(2)
    for key, label in extra.items():
        if key == "train_time_ms":
            frame[label] = [
                ms_text(t, c) for t, c in zip(summary["time_ms"], summary["contended"], strict=True)
            ]
        elif key in summary:
            frame[label] = summary[key].round(4 if key == "gflops" else 2)
    repeated = summary["n"].max() > 1
    if repeated:
        frame["± std"] = summary["std"].round(2)
        frame["n"] = summary["n"]
    frame["95% CI"] = [
        interval_text(lo, hi) for lo, hi in zip(summary["ci_low"], summary["ci_high"], strict=True)
    ]
    if repeated and "train_time_ms" in extra:
        frame["time ± std (ms)"] = summary["time_std"].map(ms_text)
    group = ["dataset"] if "dataset" in keys else []
    has_test = repeated or summary["correct"].map(lambda c: c is not None).any()
    tests: set[str] = set()
    if has_test or summary["same_as"].notna().any():
        frame["vs best"], tests = _versus_best(summary, group)
    notes = [REPEAT_NOTE if repeated else single_note(run.meta.trainable)]
    if welch := sorted(t for t in tests if t.startswith("Welch")):
        notes.append(
            f"vs best: {'; '.join(welch)}, instead of Dunnett's pooled variance, where the "
            "configurations' seed-to-seed spreads differ."
        )
    if repeated and (summary["n"] == 1).any():
        notes.append("Rows with one finished seed: the Wilson interval, as for single runs.")
    if not repeated and has_test:
        notes.append(MCNEMAR_NOTE)
    if summary["same_as"].notna().any():
        notes.append(
            "same computation as #k: the configuration differs from row k only in factors that "
            f"could not act here ({', '.join(run.inert) or 'none'}); it is one result shown twice."
        )
    if summary["contended"].any():
        notes.append(
            f"* train time taken while other trials ran on the same node for more than "
            f"{CONTENDED:.0%} of it: not a speed figure."
        )
    return frame, notes


def comparison_tables(run: Run) -> list[Table]:
    """q2: one row per configuration with accuracy, train time, FLOPs and params."""
    keys = [  # image_size is there when a trial set it
        k
        for k in CONFIG_FIELDS["resnet"]
        if k in run.results and (k != "dataset" or run.results[k].nunique() > 1)
    ]
    extra = {
        "train_time_ms": "train time (ms)",
        "gflops": "FLOPs (GFLOPs)",
        "params_m": "params (M)",
    }
    frame, notes = config_table(run, keys, extra)
    from tune_mnist.train.models import (
        FLOPS_CONVENTION,  # here: an SVM report or sweep never loads torch
    )

    convention = FLOPS_CONVENTION
    if "image_size" in run.results:  # counted at the size the model saw
        convention = convention.replace(
            "one 1x28x28 image", "one image at its row's image size (resized before the model)"
        )
    elif run.space.datasets:  # a space's own data: each model counted at its images' shape
        convention = convention.replace("one 1x28x28 image", "one image of its dataset")
    notes.append(f"FLOPs: {convention}.")
    return [Table(run.space.name, f"{run.space.name}: model comparison", frame, notes)]


def svm_tables(run: Run) -> list[Table]:
    """q1b: dataset, kernel, train samples, test accuracy (%), training time (ms)."""
    keys = CONFIG_FIELDS["svm"]  # C, gamma and degree too: a grid over them is configurations
    frame, notes = config_table(run, keys, {"train_time_ms": "training time (ms)"})
    if run.results["seed"].nunique() > 1:
        notes.append("SVC has no randomness: its repeats are the same computation.")
    return [Table(run.space.name, f"{run.space.name}: SVM baselines", frame, notes)]


def ablation_tables(run: Run) -> list[Table]:
    """q1a: per dataset, one row per design row, one accuracy column (and CI) per model."""
    space = run.space
    row_keys = [
        k for k in FACTORS if k != "model" and (any(k in r for r in space.rows) or k in space.grid)
    ]
    if "optimizer" in row_keys and sgd_momentum(run.results) is not None:
        row_keys.insert(row_keys.index("optimizer") + 1, "momentum")  # SGD's, said
    keys = ["dataset", "model", *row_keys]
    summary = configurations(run, keys)
    models = list(dict.fromkeys(run.results["model"]))
    tables = []
    for dataset, part in summary.groupby("dataset", sort=False) if len(summary) else []:
        design = part[row_keys].drop_duplicates().reset_index(drop=True)
        frame = display_frame(design, row_keys)
        if "epochs" in row_keys and (part["epochs_trained"] != part["epochs"].astype(str)).any():
            # smoke or --max-epochs: what the trials trained, beside what the row asks
            trained = part.groupby(row_keys, sort=False, dropna=False)["epochs_trained"].agg(
                lambda v: " / ".join(dict.fromkeys(v))
            )
            frame.insert(
                frame.columns.get_loc(LABELS["epochs"]) + 1,
                "epochs trained",
                design.merge(trained.reset_index(), on=row_keys, how="left")["epochs_trained"],
            )
        notes = [
            REPEAT_NOTE.split(" vs best")[0]
            if part["n"].max() > 1
            else single_note(run.meta.trainable)
        ]
        by_model = {}
        for model in models:
            cells = design.merge(part[part["model"] == model], on=row_keys, how="left")
            by_model[model] = cells
            name = MODEL_NAMES.get(model, model)
            # the row numbers the figures, confusion matrices and per-class tables use
            frame[f"{name} #"] = cells["row"].astype("Int64").to_numpy()
            frame[f"{name} acc (%)"] = cells["mean"].round(2).to_numpy()
            if cells["n"].max() > 1:
                frame[f"{name} ± std"] = cells["std"].round(2).to_numpy()
            frame[f"{name} 95% CI"] = [
                interval_text(lo, hi)
                for lo, hi in zip(cells["ci_low"], cells["ci_high"], strict=True)
            ]
        if len(models) == 2:
            notes.append(_model_difference(frame, *(by_model[m] for m in models), models))
        title = f"{run.space.name}: {DATASET_NAMES.get(dataset, dataset)}"
        tables.append(Table(f"{run.space.name}-{dataset}", title, frame, notes))
    return tables


def _model_difference(frame, a: pd.DataFrame, b: pd.DataFrame, models) -> str:
    """Second model minus first, per design row: paired over seeds, else McNemar."""
    label = (
        f"{MODEL_NAMES.get(models[1], models[1])} - {MODEL_NAMES.get(models[0], models[0])} (pp)"
    )
    frame[label] = (b["mean"] - a["mean"]).round(2).to_numpy()
    if max(a["n"].max(), b["n"].max()) > 1:
        diffs = [
            stats.paired_difference(x, y)
            if isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
            else {}
            for x, y in zip(a["samples"], b["samples"], strict=True)
        ]
        frame["p (paired t)"] = [d.get("p", math.nan) for d in diffs]
        return (
            f"{label}: mean over seeds of the paired difference (same seed), paired t-test "
            "p; a p of — means no spread to test."
        )
    p = []
    for x, y in zip(a["correct"], b["correct"], strict=True):
        ok = isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.shape == y.shape
        p.append(stats.mcnemar_exact(x, y).p if ok else math.nan)
    frame["p (McNemar)"] = p
    return (
        f"{label}: single runs on the same test images; p: exact McNemar test per row (not "
        "adjusted for the number of rows)."
    )


def compute_table(run: Run) -> Table:
    """GPU- and CPU-seconds, images and training FLOPs, per dataset and model (or kernel)."""
    results = run.results
    by = ["dataset", next(k for k in ("model", "kernel", "function") if k in results)]
    # a trial stopped early used what it trained: counted here, though in no other numbers
    done = results[results["status"].isin(SCORED)]
    columns = {
        "gpu_seconds": "GPU-seconds",
        "cpu_seconds": "CPU-seconds",
        "images_seen": "train images",
        "train_pflops_est": "train PFLOPs (est.)",
    }
    present = [c for c in columns if c in done and done[c].notna().any()]
    frame = (
        done.groupby(by, sort=False)[present].sum().reset_index()
        if len(done)
        else pd.DataFrame(columns=by + present)
    )
    frame.insert(
        len(by), "trials", done.groupby(by, sort=False).size().to_numpy() if len(done) else []
    )
    frame = display_frame(frame, by).join(frame.drop(columns=by))
    total = {
        **dict.fromkeys((LABELS[b] for b in by), "—"),
        "trials": len(done),
        **done[present].sum().to_dict(),
    }
    total[LABELS[by[0]]] = "all"
    frame = pd.concat([frame, pd.DataFrame([total])], ignore_index=True)
    frame = frame.rename(columns=columns).round(3)
    note = (
        "GPU-seconds: train time x the GPU fraction held; CPU-seconds likewise with CPUs. "
        "Train PFLOPs: an estimate, 3 x forward FLOPs x images trained."
    )
    name = run.space.name
    return Table(f"{name}-compute", f"{name}: compute used", frame, [note])


def custom_tables(run: Run) -> list[Table]:
    """A space's own trainable: one row per configuration with the last value of the
    space's metric (mean and std over seeds), the epochs it reported and its train time."""
    metric, results = run.space.metric, run.results
    keys = [
        k
        for k in dict.fromkeys(k for t in run.meta.trials for k in trial_to_dict(t))
        if k not in ("trainable", "seed")
        and (k == "dataset" or results[k].nunique(dropna=False) > 1)
    ]
    done = results[results["status"] == "finished"].assign(
        value=lambda f: numbers(f, metric),
        contended=lambda f: f["shared_node_fraction"] > CONTENDED,
    )
    groups = done.groupby("row", sort=True)
    frame = groups.first()[keys].reset_index().rename(columns={"row": "#"})
    frame = pd.concat([frame[["#"]], display_frame(frame, keys)], axis=1)
    frame[metric] = groups["value"].mean().round(4).to_numpy()
    repeated = len(done) and groups.size().max() > 1
    if repeated:
        frame["± std"] = groups["value"].std().round(4).to_numpy()
        frame["n"] = groups.size().to_numpy()
    frame["epochs"] = groups["epoch"].max().to_numpy()
    times = zip(groups["train_time_ms"].mean(), groups["contended"].any(), strict=True)
    frame["train time (ms)"] = [ms_text(t, c) for t, c in times]
    better, best_word = ("higher", "highest") if run.space.mode == "max" else ("lower", "lowest")
    notes = [
        f"{metric}: the last value each trial reported ({better} is better)"
        + ("; mean ± std over n seeds." if repeated else "; one run per configuration.")
        + " No interval: what the metric's sampling error is, only its trainable knows."
    ]
    if frame[metric].notna().any():
        extreme = frame[metric].max() if run.space.mode == "max" else frame[metric].min()
        rows = ", ".join(f"#{n}" for n in frame.loc[frame[metric] == extreme, "#"])
        tie = " (a tie)" if "," in rows else ""
        notes.append(f"The {best_word} mean {metric}, {extreme:g}: row {rows}{tie}.")
    if done["contended"].any():
        notes.append(
            f"* train time taken while other trials ran on the same node for more than "
            f"{CONTENDED:.0%} of it: not a speed figure."
        )
    return [Table(run.space.name, f"{run.space.name}: {metric} by configuration", frame, notes)]


STUDY_TABLES = {
    "ablation": ablation_tables,
    "svm": svm_tables,
    "comparison": comparison_tables,
    "custom": custom_tables,
}


def build_tables(
    results: pd.DataFrame, meta: ExperimentMeta, predictions: dict[str, Predictions] | None = None
) -> tuple[list[Table], dict[str, pd.DataFrame]]:
    """The study's tables for an experiment, then effects (ResNets), the study beside this
    run, and compute; and the effects' level means per dataset (for the effects figure)."""
    run = Run(meta, results, predictions or {}, inert_factors(results, meta))
    tables = STUDY_TABLES[meta.report](run)
    levels: dict[str, pd.DataFrame] = {}
    if meta.trainable == "resnet" and not is_sampled(meta):  # sampled values are no design
        effects, levels = effects_tables(run)
        tables += effects
    tables += study_tables(run)
    tables += search_tables(run)
    tables.append(compute_table(run))
    for table in tables:
        if meta.smoke:
            table.title += " (SMOKE RUN: not the study's numbers)"
    # what holds for the whole experiment, said once, under its first table
    tables[0].notes += [f"{factor} could not act: {why}." for factor, why in run.inert.items()]
    tables[0].notes.append(scale_note(meta))
    if partial := selection_note(meta):
        tables[0].notes.append(partial)
    return tables, levels


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


def scale_note(meta: ExperimentMeta) -> str:
    """What data and how many epochs the numbers come from."""
    data = ", ".join(
        f"{DATASET_NAMES.get(n, n)} {d.train:,} train / {d.test:,} test"
        for n, d in meta.data.items()
    )
    if meta.report == "svm":
        return f"Data: {data}; SVC fit on the first train_samples images, whole test set."
    if meta.trainable == "custom":
        return f"Data: {data}; what each trial trains and scores on is its trainable's own."
    epochs = "1 epoch per trial (--smoke)" if meta.smoke else "epochs as listed"
    return f"Data: {data}; {epochs}. Accuracy on the whole test set after the last epoch."
