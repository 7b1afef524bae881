"""Figures of an experiment."""

import pandas as pd

from tune_mnist.plots import pareto_front, plot_experiment


def test_plots_are_pngs_with_the_space_name(repeated):
    paths = plot_experiment(repeated)
    assert [p.name for p in paths] == [
        "cmp-accuracy-vs-time.png",
        "cmp-learning-curves.png",
        "cmp-main-effects.png",
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_pareto_front():
    frame = pd.DataFrame({"s": [1, 2, 3, 4], "acc": [50, 40, 70, 60]})
    assert pareto_front(frame, "s", "acc")["s"].tolist() == [1, 3]
