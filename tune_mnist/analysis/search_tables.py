"""The report's tables for a space that searches, holds out a validation split or stops
early: the ranking by the selection metric, the chosen configuration, the trials stopped."""

from __future__ import annotations

import pandas as pd

from tune_mnist.analysis.best import SHOWN, find_best, rank, search_of
from tune_mnist.analysis.table import Table
from tune_mnist.store.results import STOPPED_EARLY, numbers


def search_tables(run) -> list:
    """The ranking a search (or a grid with a validation split) chose from, and the trials
    stopped early with the compute stopping saved; none for a plain grid."""
    meta, results = run.meta, run.results
    if search_of(meta) is None:
        return []
    tables = []
    ranked, metric, mode = rank(results, meta, run.predictions)
    name = meta.name
    if not ranked.empty:
        best = find_best(results, meta, run.predictions)
        frame = _ranking_frame(ranked, results)
        chooser = "validation" if metric == "validation_accuracy" else "test"
        notes = [
            f"Ranked on {chooser} accuracy ({mode}), mean over each configuration's seeds; "
            f"the best of {len(ranked)} is #{best.row}, shown first."
        ]
        if chooser == "validation":
            notes.append(
                f"Validation: {best.validation_images:,} training images held out by each "
                "trial's seed and never trained on; the test accuracy is reported, not used "
                "to choose."
            )
        else:
            notes.append(
                "Chosen on the test set it is scored on: its accuracy is optimistic "
                "(hold out a validation split with `validation:` in the space)."
            )
        notes += best.notes
        title = f"{name}: best configuration (chosen on {chooser} accuracy)"
        tables.append(Table(f"{name}-best", title, frame, notes))
    stopped = stopped_table(run)
    if stopped is not None:
        tables.append(stopped)
    return tables


def _ranking_frame(ranked: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    shown = ranked.head(SHOWN)
    config = pd.DataFrame(list(shown["config"]))
    varied = [k for k in config if results[k].astype(str).nunique() > 1] if len(config) else []
    frame = pd.concat([shown[["row"]].rename(columns={"row": "#"}), config[varied]], axis=1)
    for key in varied:
        if pd.api.types.is_float_dtype(frame[key]):
            frame[key] = frame[key].map(lambda v: float(f"{v:.4g}"))
    if shown["validation"].notna().any():
        frame["validation accuracy (%)"] = shown["validation"].astype(float).round(2)
    frame["test accuracy (%)"] = shown["test"].round(2)
    frame["95% CI (test)"] = [
        "—" if pd.isna(lo) else f"[{lo:.2f}, {hi:.2f}]"
        for lo, hi in zip(shown["ci_low"], shown["ci_high"], strict=True)
    ]
    frame["n"] = shown["n"]
    frame["chosen"] = ["best"] + [""] * (len(shown) - 1)
    return frame


def stopped_table(run):
    """The trials stopped early: epochs trained, compute used, and the compute stopping
    saved (an estimate); None when none was stopped."""
    results, meta = run.results, run.meta
    stopped = results[results["status"] == STOPPED_EARLY]
    if stopped.empty:
        return None
    cap = meta.settings.max_epochs
    configured = numbers(stopped, "epochs").clip(upper=cap) if cap else numbers(stopped, "epochs")
    trained = numbers(stopped, "epoch")
    per_epoch = numbers(stopped, "train_time_ms") / 1000 / trained
    left = (configured - trained).clip(lower=0)
    frame = pd.DataFrame(
        {
            "trial": stopped["label"],
            "epochs trained": trained.astype("Int64"),
            "of": configured.astype("Int64"),
            "test accuracy (%)": numbers(stopped, "test_accuracy").round(2),
            "GPU-seconds": numbers(stopped, "gpu_seconds").round(3),
            "GPU-seconds saved (est.)": (left * per_epoch * numbers(stopped, "assigned_gpus")),
            "CPU-seconds saved (est.)": (left * per_epoch * numbers(stopped, "assigned_cpus")),
        }
    )
    if "validation_accuracy" in stopped:
        frame.insert(3, "validation accuracy (%)", numbers(stopped, "validation_accuracy").round(2))
    saved_gpu, saved_cpu = (frame[c].sum() for c in frame.columns if "saved" in c)
    total = {"trial": "all", "epochs trained": trained.sum(), "of": configured.sum()}
    total |= {"GPU-seconds": frame["GPU-seconds"].sum()}
    total |= {"GPU-seconds saved (est.)": saved_gpu, "CPU-seconds saved (est.)": saved_cpu}
    frame = pd.concat([frame, pd.DataFrame([total])], ignore_index=True).round(3)
    notes = [
        f"{len(stopped)} trial(s) stopped early by ASHA: left out of every other table's "
        "accuracies, effects and comparisons; their compute is counted in the compute table.",
        f"Stopping saved an estimated {saved_gpu:,.1f} GPU-seconds ({saved_cpu:,.1f} "
        "CPU-seconds): for each stopped trial, (configured epochs - epochs trained) x its "
        "mean seconds per epoch x the GPU (CPU) fraction it held. An estimate: the epochs "
        "not trained were never timed.",
    ]
    name = meta.name
    return Table(f"{name}-stopped", f"{name}: trials stopped early", frame, notes)
