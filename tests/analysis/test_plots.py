"""Figures of an experiment: what is drawn, per dataset, and where the ink goes."""

from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from tune_mnist.analysis.plots import (
    confusion_figure,
    draw_confusion,
    draw_effects,
    draw_learning_curves,
    draw_pareto,
    effects_figure,
    learning_curves_figure,
    pareto_front,
    plot_experiment,
    scale_of,
    with_rows,
)
from tune_mnist.spec.spaces import load_space
from tune_mnist.store.results import load_experiment

from ..conftest import write_space
from ..experiments import COMPARE, make_experiment


def assert_png_with_ink(path: Path) -> None:
    """A PNG file whose pixels are not all one colour."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)[..., :3].reshape(-1, 3)
    assert pixels.std() > 0 and len(np.unique(pixels, axis=0)) > 20


def trials(rows: list[tuple]) -> pd.DataFrame:
    """Finished trials from (row, dataset, model, seed, accuracy %, train seconds)."""
    frame = pd.DataFrame(
        rows, columns=["row", "dataset", "model", "seed", "test_accuracy", "seconds"]
    )
    return frame.assign(
        status="finished", train_time_ms=frame["seconds"] * 1000, label=frame.index.astype(str)
    ).drop(columns="seconds")


def per_epoch(final: pd.DataFrame, epochs: dict[int, int]) -> pd.DataFrame:
    """Epoch reports rising linearly to each trial's accuracy; `epochs` per row."""
    reports = [
        {**trial, "epoch": e, "test_accuracy": trial["test_accuracy"] * e / epochs[trial["row"]]}
        for trial in final.to_dict("records")
        for e in range(1, epochs[trial["row"]] + 1)
    ]
    return pd.DataFrame(reports)


TWO_DATASETS = trials(
    [
        (1, "mnist", "resnet18", 0, 98.0, 10.0),
        (1, "mnist", "resnet18", 1, 98.4, 11.0),
        (2, "mnist", "resnet50", 0, 99.0, 30.0),
        (3, "mnist", "resnet50", 0, 97.0, 40.0),  # slower and worse: off the front
        (4, "fashion-mnist", "resnet18", 0, 90.0, 12.0),
        (5, "fashion-mnist", "resnet50", 0, 91.0, 35.0),
    ]
)


@pytest.fixture
def one_epoch_smoke(tmp_path):
    """A smoke run of the comparison: every trial trained one epoch."""
    spec = load_space(
        write_space(tmp_path, name="cmp", **{**COMPARE, "fixed": {**COMPARE["fixed"], "epochs": 1}})
    )
    return make_experiment(tmp_path / "exp", spec, lambda t: 90.0 + t.seed, smoke=True)


def test_experiment_figures_are_written_next_to_the_tables(repeated):
    paths = plot_experiment(repeated)
    assert [p.name for p in paths] == ["cmp-accuracy-vs-time.png", "cmp-learning-curves.png"]
    for path in paths:
        assert path.parent == repeated / "report"
        assert_png_with_ink(path)


def test_effects_and_confusion_figures_when_given(repeated):
    levels = pd.DataFrame(
        {
            "factor": ["model", "model"],
            "level": ["resnet18", "resnet50"],
            "estimate": [91.0, 80.5],
            "ci_low": [89.0, 79.0],
            "ci_high": [93.0, 82.0],
        }
    )
    matrices = {"1: ResNet-18": np.eye(10) * 50 + 1, "2: ResNet-50": np.eye(10) * 40 + 2}
    paths = plot_experiment(
        repeated, effects={"fashion-mnist": levels}, confusion={"fashion-mnist": matrices}
    )
    names = [p.name for p in paths]
    assert names[2:] == ["cmp-effects.png", "cmp-confusion-fashion-mnist.png"]
    for path in paths[2:]:
        assert_png_with_ink(path)


def test_one_epoch_draws_no_learning_curves_and_says_smoke(one_epoch_smoke):
    paths = plot_experiment(one_epoch_smoke)
    assert [p.name for p in paths] == ["cmp-accuracy-vs-time.png"]
    assert not (one_epoch_smoke / "report" / "cmp-learning-curves.png").exists()
    loaded = load_experiment(one_epoch_smoke)
    assert scale_of(loaded.meta, loaded.results) == "smoke run: 100 train images, 1 epoch"


def test_pareto_is_a_staircase_per_dataset_labelled_by_row():
    figure = draw_pareto(TWO_DATASETS, "cmp: accuracy against train time")
    axes = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["MNIST", "Fashion-MNIST"]
    mnist, fashion = axes
    for ax in axes:
        steps = [line for line in ax.get_lines() if line.get_drawstyle() == "steps-post"]
        assert len(steps) == 1
        assert ax.get_xlabel().startswith("train time (s)")
        assert ax.get_ylabel().startswith("test accuracy (%)")
    (mnist_front,) = [line for line in mnist.get_lines() if line.get_drawstyle() == "steps-post"]
    # row 1 is the mean of its two repeats; row 3 is dominated; the step runs on to 40 s
    assert mnist_front.get_xdata().tolist() == [10.5, 30.0, 40.0]
    assert mnist_front.get_ydata().tolist() == [98.2, 99.0, 99.0]
    # one label per row, repeats included once; the datasets never share a point
    assert sorted(t.get_text() for t in mnist.texts) == ["1", "2", "3"]
    assert sorted(t.get_text() for t in fashion.texts) == ["4", "5"]


def test_no_learning_curves_when_nothing_trained_two_epochs(tmp_path):
    epochs = per_epoch(TWO_DATASETS, dict.fromkeys(range(1, 6), 1))
    assert draw_learning_curves(epochs, "t") is None
    assert learning_curves_figure(epochs, "t", tmp_path / "curves.png") is None
    assert not (tmp_path / "curves.png").exists()


def test_learning_curves_keep_multi_epoch_rows_with_the_legend_outside():
    many = trials(
        [
            (r, "mnist", "resnet18" if r % 2 else "resnet50", s, 90.0 + r / 10, r)
            for r in range(1, 25)
            for s in (0, 1)
        ]
    )
    many["batch_size"] = [16 * (1 + r % 3) for r in many["row"]]
    epochs = per_epoch(many, {r: 1 if r == 24 else 3 for r in range(1, 25)})
    figure = draw_learning_curves(epochs, "t")
    (ax,) = figure.axes
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert len(labels) == 23 and "24" not in {label.split(":")[0] for label in labels}
    assert labels[0] == "1: ResNet-18 bs 32"
    assert len(ax.collections) == 23  # a seed band per configuration (two seeds each)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legend_box = ax.get_legend().get_window_extent(renderer)
    assert not legend_box.overlaps(ax.get_window_extent(renderer))
    assert legend_box.x0 > ax.get_window_extent(renderer).x1


def test_single_seed_curves_have_no_band():
    epochs = per_epoch(TWO_DATASETS[TWO_DATASETS["seed"] == 0], dict.fromkeys(range(1, 6), 2))
    figure = draw_learning_curves(epochs, "t")
    assert [ax.get_title() for ax in figure.axes] == ["MNIST", "Fashion-MNIST"]
    assert all(len(ax.collections) == 0 for ax in figure.axes)


def test_effects_keep_the_frame_level_order_per_dataset(tmp_path):
    def levels(factor_levels):
        rows = [
            (f, level, 90.0 + i, 89.0 + i, 91.0 + i)
            for f, ls in factor_levels
            for i, level in enumerate(ls)
        ]
        return pd.DataFrame(rows, columns=["factor", "level", "estimate", "ci_low", "ci_high"])

    frames = {
        "mnist": levels([("batch_size", [64, 16, 32]), ("optimizer", ["sgd", "adam"])]),
        "fashion-mnist": levels([("optimizer", ["adam", "sgd"])]),
    }
    figure = draw_effects(frames, "t")
    shown = [ax for ax in figure.axes if ax.get_visible()]
    ticks = [[t.get_text() for t in ax.get_xticklabels()] for ax in shown]
    assert ticks == [["64", "16", "32"], ["SGD", "Adam"], ["Adam", "SGD"]]
    assert [ax.get_title() for ax in shown] == ["batch size", "optimizer", "optimizer"]
    assert shown[0].get_ylabel().startswith("MNIST") and shown[2].get_ylabel().startswith(
        "Fashion-MNIST"
    )
    assert effects_figure({"mnist": frames["mnist"].iloc[:0]}, "t", tmp_path / "e.png") is None
    assert_png_with_ink(effects_figure(frames, "t", tmp_path / "e.png"))


def test_confusion_panels_are_row_normalized_with_counts(tmp_path):
    matrix = np.array([[8, 2], [0, 5]])
    figure = draw_confusion({"1: ResNet-18": matrix, "2: ResNet-50": matrix * 2}, ["a", "b"], "t")
    first, second = (ax for ax in figure.axes if ax.images)
    np.testing.assert_allclose(first.images[0].get_array(), [[0.8, 0.2], [0.0, 1.0]])
    assert sorted(t.get_text() for t in second.texts) == ["10", "16", "4"]
    assert [first.get_title(), second.get_title()] == ["1: ResNet-18", "2: ResNet-50"]
    path = confusion_figure({"1": matrix}, ["a", "b"], "t", tmp_path / "c.png")
    assert_png_with_ink(path)


def test_rows_fall_back_to_one_number_per_configuration():
    frame = TWO_DATASETS.drop(columns="row")
    assert with_rows(frame)["row"].tolist() == [1, 1, 2, 2, 3, 4]  # seeds share a row


def test_pareto_front():
    frame = pd.DataFrame({"s": [1, 2, 3, 4], "acc": [50, 40, 70, 60]})
    assert pareto_front(frame, "s", "acc")["s"].tolist() == [1, 3]


def test_single_seed_curves_promise_no_band():
    """Issue 28 item 16: a caption promised min-max bands for one seed."""
    epochs = per_epoch(TWO_DATASETS[TWO_DATASETS["seed"] == 0], dict.fromkeys(range(1, 6), 2))
    assert "band" not in draw_learning_curves(epochs, "t")._suptitle.get_text()
    both = per_epoch(TWO_DATASETS, dict.fromkeys(range(1, 6), 2))
    assert "band: min-max over seeds" in draw_learning_curves(both, "t")._suptitle.get_text()


def test_an_effect_of_two_test_images_is_not_drawn_as_a_slope():
    """Issue 28 item 13: a y-axis spanning 0.02 points presented an effect; the axis spans
    at least a point, and a figure without intervals does not promise bars."""
    levels = pd.DataFrame(
        {
            "factor": ["lr", "lr"],
            "level": [0.0001, 0.001],
            "estimate": [99.40, 99.42],
            "ci_low": [np.nan, np.nan],
            "ci_high": [np.nan, np.nan],
        }
    )
    figure = draw_effects({"mnist": levels}, "t")
    low, high = figure.axes[0].get_ylim()
    assert high - low >= 1.0
    assert "bars" not in figure._suptitle.get_text()


def test_the_front_is_drawn_over_uncontended_times_only():
    """Issue 28 item 8: a time taken beside other trials cannot put a row on the front."""
    results = TWO_DATASETS[TWO_DATASETS["dataset"] == "mnist"].assign(
        shared_node_fraction=[0.0, 0.0, 0.0, 0.9]  # row 3 (40 s) was contended
    )
    results.loc[results["row"] == 3, "test_accuracy"] = 99.9  # best, but its time is void
    figure = draw_pareto(results, "t")
    (ax,) = [a for a in figure.axes if a.get_visible()]
    (front,) = [line for line in ax.get_lines() if line.get_drawstyle() == "steps-post"]
    assert front.get_xdata().tolist() == [10.5, 30.0, 30.0]
    assert any("contended" in t.get_text() for t in ax.get_legend().get_texts())


def test_every_figure_on_the_page_says_what_to_read_from_it(repeated):
    from tune_mnist.analysis.html import _caption

    for stem in ("q-accuracy-vs-time", "q-learning-curves", "q-effects", "q-confusion-mnist"):
        caption = _caption(Path(f"{stem}.png"))
        assert caption.endswith(f"({stem}.png)") and len(caption.split(".")[0]) > 40
