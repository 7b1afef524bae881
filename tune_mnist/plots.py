"""Figures of an experiment, as PNGs next to its tables (matplotlib, no display needed).

- accuracy against train time per trial, the Pareto front marked;
- learning curves: test accuracy per epoch per configuration, repeats as a band;
- main effects: mean accuracy per level of each factor, with 95% t-intervals.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt
import pandas as pd

from . import stats
from .experiment import ExperimentMeta, report_dir, write_atomic
from .results import Experiment, load_experiment
from .tables import CONFIG_KEYS, FACTORS, metric


def pareto_front(frame: pd.DataFrame, cost: str, value: str) -> pd.DataFrame:
    """Rows no other row beats on both: lower `cost` and higher `value`."""
    ordered = frame.sort_values([cost, value], ascending=[True, False])
    best_so_far = ordered[value].astype(float).cummax().shift(fill_value=float("-inf"))
    return ordered[ordered[value] > best_so_far]


def _title(meta: ExperimentMeta, what: str) -> str:
    return f"{meta.name}: {what}" + (" (smoke run)" if meta.smoke else "")


def _save(figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    write_atomic(path, buffer.getvalue())
    return path


def accuracy_vs_time(results: pd.DataFrame, meta: ExperimentMeta, path: Path) -> Path:
    """Scatter of test accuracy (%) against train time (s), one colour per dataset/model."""
    done = results.assign(
        seconds=metric(results, "train_time_ms") / 1000,
        test_accuracy=metric(results, "test_accuracy"),
    )
    done = done[done["status"] == "finished"]
    group = ["dataset", "model" if "model" in done else "kernel"]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, part in done.groupby(group):
        axes.scatter(part["seconds"], part["test_accuracy"], label=" / ".join(name), alpha=0.75)
    front = pareto_front(done, "seconds", "test_accuracy")
    axes.plot(front["seconds"], front["test_accuracy"], "k--", lw=1, label="Pareto front")
    axes.set(
        xlabel="train time (s)",
        ylabel="test accuracy (%)",
        title=_title(meta, "accuracy against train time, one point per trial"),
    )
    axes.legend(fontsize=8)
    return _save(figure, path)


def learning_curves(epochs: pd.DataFrame, meta: ExperimentMeta, path: Path) -> Path:
    """Test accuracy per epoch for each configuration; mean line, min-max band over seeds."""
    keys = [k for k in CONFIG_KEYS["resnet"] if k in epochs and epochs[k].nunique() > 1]
    figure, axes = plt.subplots(figsize=(8, 5))
    for config, part in epochs.groupby(keys or ["dataset"], sort=False):
        curve = part.groupby("epoch")["test_accuracy"].agg(["mean", "min", "max"])
        label = " ".join(str(c) for c in (config if isinstance(config, tuple) else (config,)))
        (line,) = axes.plot(curve.index, curve["mean"], marker="o", ms=3, lw=1, label=label)
        axes.fill_between(
            curve.index, curve["min"], curve["max"], alpha=0.2, color=line.get_color()
        )
    axes.set(
        xlabel="epoch",
        ylabel="test accuracy (%)",
        title=_title(meta, "learning curves (band: min-max over seeds)"),
    )
    axes.legend(fontsize=6, ncol=2)
    return _save(figure, path)


def main_effects_plot(results: pd.DataFrame, meta: ExperimentMeta, path: Path) -> Path:
    """Mean accuracy per level of each varied factor, with 95% t-intervals over trials."""
    done = results.assign(test_accuracy=metric(results, "test_accuracy"))
    done = done[done["status"] == "finished"]
    factors = [f for f in FACTORS if f in done and done[f].nunique() > 1]
    figure, axes = plt.subplots(
        1,
        max(len(factors), 1),
        figsize=(2.6 * max(len(factors), 1), 3.5),
        sharey=True,
        squeeze=False,
    )
    for ax, factor in zip(axes[0], factors, strict=False):
        summary = stats.aggregate(done, [factor], "test_accuracy")
        summary["label"] = summary[factor].astype(str)
        errors = [summary["mean"] - summary["ci_low"], summary["ci_high"] - summary["mean"]]
        ax.errorbar(summary["label"], summary["mean"], yerr=errors, marker="o", capsize=3)
        ax.set(xlabel=factor)
    axes[0][0].set_ylabel("mean test accuracy (%)")
    figure.suptitle(_title(meta, "main effects (bars: 95% t-interval over trials)"))
    return _save(figure, path)


def plot_experiment(experiment: str | Path, loaded: Experiment | None = None) -> list[Path]:
    """Write the experiment's figures into its report/ folder; return their paths.

    `loaded` is the experiment already read (report.summarize passes it), else it is read.
    """
    loaded = loaded or load_experiment(experiment)
    meta, results, epochs = loaded.meta, loaded.results, loaded.epochs
    folder = report_dir(experiment)
    name = meta.name
    paths = [accuracy_vs_time(results, meta, folder / f"{name}-accuracy-vs-time.png")]
    if meta.trainable == "resnet":
        if not epochs.empty:
            paths.append(learning_curves(epochs, meta, folder / f"{name}-learning-curves.png"))
        paths.append(main_effects_plot(results, meta, folder / f"{name}-main-effects.png"))
    return paths
