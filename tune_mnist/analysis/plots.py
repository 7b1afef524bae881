"""Figures of an experiment, as PNGs next to its tables (matplotlib, no display needed).

Each figure is drawn per dataset (MNIST and Fashion-MNIST never share an axis) and names
points by their row number in the report's tables (the results' `row` column):

- Pareto staircase: test accuracy against train time, one point per row (mean and std
  over repeats), the front as a step function;
- learning curves: test accuracy per epoch, only for rows trained two epochs or more;
- effects: estimated accuracy per level of each factor with 95% intervals, from a
  model-based effects frame (columns factor, level, estimate, ci_low, ci_high);
- confusion matrices: one panel per configuration, colours normalized per true class.

Every `draw_*` returns a matplotlib Figure (or None when there is nothing to draw) for
inspection; the matching `*_figure` saves it as a PNG and returns the path.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tune_mnist.analysis.table import (
    CLASS_NAMES,
    CONTENDED,
    DATASET_NAMES,
    LABELS,
    MODEL_NAMES,
    metric,
)
from tune_mnist.spec.configs import CONFIG_FIELDS
from tune_mnist.store.experiment import ExperimentMeta, write_atomic
from tune_mnist.store.opened import Experiment, locate
from tune_mnist.store.results import ExperimentData, load_experiment, numbers

_SHORT = {"sgd": "SGD", "adam": "Adam", "rbf": "RBF", "poly": "Poly", "linear": "linear"}
_MANY_CONFIGS = 10  # beyond this a qualitative 10-colour cycle repeats colours


def pareto_front(frame: pd.DataFrame, cost: str, value: str) -> pd.DataFrame:
    """Rows no other row beats on both: lower `cost` and higher `value`."""
    ordered = frame.sort_values([cost, value], ascending=[True, False])
    best_so_far = ordered[value].astype(float).cummax().shift(fill_value=float("-inf"))
    return ordered[ordered[value] > best_so_far]


def dataset_name(dataset: str) -> str:
    """MNIST / Fashion-MNIST, as the tables spell them."""
    return DATASET_NAMES.get(dataset, dataset)


def level_label(factor: str, level) -> str:
    """A factor's level as the tables show it: ResNet-18, Adam, 0.001, pin / no pin."""
    if factor == "pin_memory" and isinstance(level, bool | np.bool_):
        return "pin" if level else "no pin"
    if isinstance(level, float | np.floating):
        return f"{level:g}"
    return MODEL_NAMES.get(level, _SHORT.get(level, str(level)))


def with_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The results with a `row` column: kept if present, else numbered by configuration.

    The fallback numbers configurations (config keys, seed aside) 1, 2, ... in order of
    first appearance, so repeats of one configuration share a row.
    """
    if "row" in results:
        return results
    keys = [k for k in (*CONFIG_FIELDS["resnet"], *CONFIG_FIELDS["svm"]) if k in results]
    keys = list(dict.fromkeys(keys))
    if not keys:
        return results.assign(row=range(1, len(results) + 1))
    codes = results[keys].astype(str).agg("|".join, axis=1)
    return results.assign(row=pd.factorize(codes)[0] + 1)


def _span(values: pd.Series) -> str:
    """`5`, `1-5`, or empty when there is no number."""
    values = values.dropna()
    if values.empty:
        return ""
    low, high = int(values.min()), int(values.max())
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def scale_of(meta: ExperimentMeta, results: pd.DataFrame) -> str:
    """What the numbers come from, e.g. `smoke run: 1,000 train images, 1 epoch`."""
    sizes = sorted({info.train for info in meta.data.values()})
    parts = ["/".join(f"{s:,}" for s in sizes) + " train images"]
    if meta.trainable == "svm":
        finished = results["status"] == "finished"
        if fitted := _span(numbers(results, "images_seen").where(finished)):
            parts.append(f"SVC fit on {fitted} of them")
    elif epochs := _span(metric(results, "epoch")):
        parts.append(f"{epochs} epoch" + ("" if epochs == "1" else "s"))
    scale = ", ".join(parts)
    return f"smoke run: {scale}" if meta.smoke else scale


def _subplots(rows: int, columns: int, figsize, layout: str | None = None, **options):
    """A new figure and its grid of axes. A Figure of its own, not pyplot's: nothing global,
    so figures can be drawn in a thread (the report is made while Ray shuts down)."""
    figure = Figure(figsize=figsize, layout=layout)
    FigureCanvasAgg(figure)  # files only, never a window: Agg draws it
    return figure, figure.subplots(rows, columns, **options)


def _save(figure: Figure | None, path: Path) -> Path | None:
    if figure is None:
        return None
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")  # keeps outside legends
    write_atomic(path, buffer.getvalue())
    return path


def _varied(frame: pd.DataFrame) -> list[str]:
    keys = [k for k in (*CONFIG_FIELDS["resnet"], *CONFIG_FIELDS["svm"]) if k != "dataset"]
    return [k for k in dict.fromkeys(keys) if k in frame and frame[k].nunique(dropna=True) > 1]


def _short_config(config: pd.Series, keys: list[str]) -> str:
    prefix = {"batch_size": "bs ", "lr": "lr ", "epochs": "ep ", "train_samples": "n="}
    parts = []
    for key in keys:
        value = config[key]
        if key == "model" or key == "kernel" or key == "optimizer" or key == "pin_memory":
            parts.append(level_label(key, value))
        elif pd.notna(value):
            parts.append(f"{prefix.get(key, key + ' ')}{level_label(key, value)}")
    return " ".join(parts)


def _finished(results: pd.DataFrame) -> pd.DataFrame:
    done = with_rows(results).assign(
        seconds=metric(results, "train_time_ms") / 1000,
        accuracy=metric(results, "test_accuracy"),
        contended=numbers(results, "shared_node_fraction") > CONTENDED,
    )
    return done[(done["status"] == "finished") & done["accuracy"].notna()]


def draw_pareto(results: pd.DataFrame, title: str) -> Figure | None:
    """Per dataset: accuracy (%) against train time (s), one point per row, the front
    as a staircase; None when no trial finished."""
    done = _finished(results)
    if done.empty:
        return None
    datasets = list(dict.fromkeys(done["dataset"]))
    figure, axes = _subplots(
        1, len(datasets), figsize=(6.2 * len(datasets), 5.2), squeeze=False, layout="constrained"
    )
    group = "model" if "model" in done else "kernel"
    for ax, dataset in zip(axes[0], datasets, strict=True):
        part = done[done["dataset"] == dataset]
        per_row = part.groupby("row", sort=True).agg(
            seconds=("seconds", "mean"),
            seconds_std=("seconds", "std"),
            accuracy=("accuracy", "mean"),
            accuracy_std=("accuracy", "std"),
            group=(group, "first"),
            contended=("contended", "any"),
        )
        for name, points in per_row.groupby("group", sort=False):
            ax.errorbar(
                points["seconds"],
                points["accuracy"],
                xerr=points["seconds_std"],
                yerr=points["accuracy_std"],
                fmt="o",
                capsize=3,
                alpha=0.85,
                label=level_label(group, name),
            )
        # a time taken beside other trials is no speed figure: such rows are drawn, crossed,
        # but the front is drawn over the others only
        timed = per_row[~per_row["contended"]]
        shared = per_row[per_row["contended"]]
        if len(shared):
            ax.scatter(
                shared["seconds"],
                shared["accuracy"],
                marker="x",
                s=90,
                color="grey",
                label="time contended (not on the front)",
            )
        if len(timed):
            front = pareto_front(timed, "seconds", "accuracy")
            # The staircase runs on to the slowest row: at any time budget it reads the best
            # accuracy reached within it.
            xs = [*front["seconds"], timed["seconds"].max()]
            ys = [*front["accuracy"], front["accuracy"].iloc[-1]]
            ax.step(xs, ys, where="post", color="black", lw=1.2, label="Pareto front")
            ax.scatter(
                front["seconds"], front["accuracy"], s=130, facecolors="none", edgecolors="black"
            )
        for row, point in per_row.iterrows():
            ax.annotate(
                str(row),
                (point["seconds"], point["accuracy"]),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=8,
            )
        ax.set(title=dataset_name(dataset), xlabel="train time (s)", ylabel="test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.14), ncol=3, fontsize=8, frameon=False)
    repeated = done.groupby("row").size().max() > 1
    note = "labels: table row" + ("; points: mean, bars: std over repeats" if repeated else "")
    figure.suptitle(f"{title}\n({note})")
    return figure


def pareto_figure(results: pd.DataFrame, title: str, path: Path) -> Path | None:
    """Save draw_pareto as a PNG; None when nothing finished."""
    return _save(draw_pareto(results, title), path)


def _colours(n: int) -> list:
    cmap = matplotlib.colormaps["tab20" if n > _MANY_CONFIGS else "tab10"]
    return [cmap(i % cmap.N) for i in range(n)]


def draw_learning_curves(epochs: pd.DataFrame, title: str) -> Figure | None:
    """Per dataset: test accuracy (%) per epoch for every row trained two epochs or more,
    a min-max band over seeds, the legend right of the axes; None if no row has 2 epochs."""
    if epochs.empty or "row" not in epochs:
        return None
    trained = epochs.groupby(["dataset", "row"])["epoch"].transform("nunique")
    curves = epochs[trained >= 2]
    if curves.empty:
        return None  # one epoch is a column of points, not a curve
    datasets = list(dict.fromkeys(curves["dataset"]))
    figure, axes = _subplots(
        len(datasets), 1, figsize=(10, 4.2 * len(datasets)), squeeze=False, layout="constrained"
    )
    banded = False
    for ax, dataset in zip(axes[:, 0], datasets, strict=True):
        part = curves[curves["dataset"] == dataset]
        keys = _varied(part)
        rows = sorted(part["row"].unique())
        for row, colour in zip(rows, _colours(len(rows)), strict=True):
            config = part[part["row"] == row]
            curve = config.groupby("epoch")["test_accuracy"].agg(["mean", "min", "max"])
            short = _short_config(config.iloc[0], keys)
            label = f"{row}: {short}" if short else str(row)
            ax.plot(curve.index, curve["mean"], marker="o", ms=3, lw=1.2, color=colour, label=label)
            seeds = config["seed"].nunique() if "seed" in config else 1
            if seeds > 1:
                banded = True
                ax.fill_between(curve.index, curve["min"], curve["max"], alpha=0.2, color=colour)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(title=dataset_name(dataset), xlabel="epoch", ylabel="test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(
            title="row: config",
            loc="upper left",
            bbox_to_anchor=(1.02, 1),
            borderaxespad=0,
            fontsize=7,
            title_fontsize=8,
            ncol=1 + (len(rows) - 1) // 20,
        )
    said = "line: mean over seeds; band: min-max over seeds" if banded else "one seed each"
    figure.suptitle(f"{title}\n({said})")
    return figure


def learning_curves_figure(epochs: pd.DataFrame, title: str, path: Path) -> Path | None:
    """Save draw_learning_curves as a PNG; None (no file) when no row has 2 epochs."""
    return _save(draw_learning_curves(epochs, title), path)


MIN_SPAN = 1.0  # points of accuracy: the least height of an effects panel's axis


def draw_effects(
    levels_by_dataset: dict[str, pd.DataFrame],
    title: str,
    ylabel: str = "test accuracy (%)",
) -> Figure | None:
    """One row of panels per dataset, one panel per factor: each level's estimate with its
    95% interval, levels in the frame's order; None when no dataset has a level."""
    frames = {d: f for d, f in levels_by_dataset.items() if f is not None and not f.empty}
    if not frames:
        return None
    columns = max(f["factor"].nunique() for f in frames.values())
    figure, axes = _subplots(
        len(frames),
        columns,
        figsize=(2.8 * columns + 0.8, 3.4 * len(frames)),
        squeeze=False,
        layout="constrained",
        sharey="row",
    )
    for axes_row, (dataset, frame) in zip(axes, frames.items(), strict=True):
        factors = list(dict.fromkeys(frame["factor"]))
        for ax, factor in zip(axes_row, factors, strict=False):
            levels = frame[frame["factor"] == factor]
            x = np.arange(len(levels))
            estimate = levels["estimate"].to_numpy(float)
            errors = [estimate - levels["ci_low"], levels["ci_high"] - estimate]
            ax.errorbar(x, estimate, yerr=np.abs(errors), fmt="o", capsize=4, ms=5)
            ax.set_xticks(x, [level_label(factor, level) for level in levels["level"]])
            ax.set_xlim(-0.5, len(levels) - 0.5)
            ax.set_title(LABELS.get(factor, factor), fontsize=10)
            ax.grid(axis="y", alpha=0.3)
        for ax in axes_row[len(factors) :]:
            ax.set_visible(False)
        axes_row[0].set_ylabel(f"{dataset_name(dataset)}\n{ylabel}")
        # a span of a few test images is no effect: never drawn taller than MIN_SPAN points
        values = frame[["estimate", "ci_low", "ci_high"]].to_numpy(float)
        low, high = np.nanmin(values), np.nanmax(values)
        if high - low < MIN_SPAN:
            middle = (low + high) / 2
            axes_row[0].set_ylim(middle - MIN_SPAN / 2, middle + MIN_SPAN / 2)
    drawn = any(f[["ci_low", "ci_high"]].notna().all(axis=1).any() for f in frames.values())
    said = "bars: 95% interval" if drawn else "no intervals: nothing left to estimate them from"
    figure.suptitle(f"{title}\n({said})")
    return figure


def effects_figure(
    levels_by_dataset: dict[str, pd.DataFrame], title: str, path: Path
) -> Path | None:
    """Save draw_effects as a PNG; None when there are no levels to show."""
    return _save(draw_effects(levels_by_dataset, title), path)


def draw_confusion(matrices: dict[str, np.ndarray], class_names: list[str], title: str) -> Figure:
    """Small multiples: one confusion matrix per configuration label, colours normalized
    per true class (row), counts printed when the cells are large enough to read."""
    n = len(matrices)
    columns = min(n, 4)
    rows = math.ceil(n / columns)
    figure, axes = _subplots(
        rows,
        columns,
        figsize=(3.6 * columns + 1, 3.6 * rows + 0.6),
        squeeze=False,
        layout="constrained",
    )
    readable = len(class_names) <= 12 and columns <= 4
    image = None
    for index, (label, matrix) in enumerate(matrices.items()):
        ax = axes.flat[index]
        counts = np.asarray(matrix, dtype=float)
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        image = ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
        if readable:
            for (i, j), count in np.ndenumerate(counts):
                if count:
                    colour = "white" if share[i, j] > 0.5 else "black"
                    ax.text(
                        j,
                        i,
                        f"{count:.0f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color=colour,
                        in_layout=False,  # inside their cells: no need to lay them out
                    )
        ticks = np.arange(len(class_names))
        ax.set_xticks(ticks, class_names, rotation=90, fontsize=7)
        ax.set_yticks(ticks, class_names, fontsize=7)
        ax.set(title=label, xlabel="predicted class")
        if index % columns == 0:  # one label per row of panels: the rest is repetition
            ax.set_ylabel("true class")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    figure.suptitle(f"{title}\n(colour: share of the true class; numbers: test images)")
    if image is not None:
        figure.colorbar(image, ax=axes, shrink=0.8, label="share of the true class")
    return figure


def confusion_figure(
    matrices: dict[str, np.ndarray], class_names: list[str], title: str, path: Path
) -> Path:
    """Save draw_confusion (one dataset's configurations) as a PNG."""
    return _save(draw_confusion(matrices, class_names, title), path)


def plot_experiment(
    experiment: str | Path | Experiment,
    loaded: ExperimentData | None = None,
    *,
    effects: dict[str, pd.DataFrame] | None = None,
    confusion: dict[str, dict[str, np.ndarray]] | None = None,
) -> list[Path]:
    """Write the experiment's figures into its report/ folder; return their paths.

    `loaded` is the experiment already read (report.summarize passes it), else it is read.
    `effects`: per dataset, an effects-levels frame (factor, level, estimate, ci_low,
    ci_high); `confusion`: per dataset, a confusion matrix per configuration label. The
    figures of either are drawn only when given.
    """
    opened = experiment if isinstance(experiment, Experiment) else locate(experiment)
    loaded = loaded or load_experiment(opened)
    meta = loaded.meta
    if meta.trainable == "custom":  # no test accuracy to draw: its metric is in the tables
        return []
    results = with_rows(loaded.results)
    folder, name = opened.report, meta.name
    scale = scale_of(meta, results)

    def title(what: str) -> str:
        return f"{name}: {what}\n({scale})"

    drawn = [
        pareto_figure(
            results, title("accuracy against train time"), folder / f"{name}-accuracy-vs-time.png"
        )
    ]
    if not loaded.epochs.empty:
        epochs = loaded.epochs  # results.load_experiment numbers their rows
        if "row" not in epochs:  # an ExperimentData made by hand
            rows = results.drop_duplicates("label").set_index("label")["row"]
            epochs = epochs.assign(row=epochs["label"].map(rows))
        path = folder / f"{name}-learning-curves.png"
        drawn.append(learning_curves_figure(epochs, title("learning curves"), path))
    if effects:
        path = folder / f"{name}-effects.png"
        drawn.append(effects_figure(effects, title("factor effects"), path))
    for dataset, matrices in (confusion or {}).items():
        if matrices:
            classes = CLASS_NAMES.get(dataset, [str(i) for i in range(10)])
            what = f"confusion matrices, {dataset_name(dataset)}"
            path = folder / f"{name}-confusion-{dataset}.png"
            drawn.append(confusion_figure(matrices, classes, title(what), path))
    return [path for path in drawn if path is not None]
