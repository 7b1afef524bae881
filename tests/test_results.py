"""An experiment folder as DataFrames: statuses, compute, epochs."""

import pytest

from tune_mnist import load_epochs, load_results
from tune_mnist.report import summarize
from tune_mnist.spaces import load_space

from .conftest import write_space
from .experiments import COMPARE, make_experiment


def test_compute_is_accounted_per_trial_and_summed(repeated):
    results = load_results(repeated)
    first = results.iloc[0]
    assert first["gpu_seconds"] == pytest.approx(4.0 * 0.25)
    assert first["images_seen"] == 200  # 100 training images x 2 epochs
    assert first["train_pflops_est"] == pytest.approx(3 * 0.0331 * 200 / 1e6)
    compute = next(t for t in summarize(repeated, write=False).tables if t.name == "cmp-compute")
    total = compute.frame.iloc[-1]
    assert total["dataset"] == "all" and total["trials"] == 6
    assert total["GPU-seconds"] == pytest.approx(6.0)


def test_pending_trials_are_listed_not_counted(tmp_path):
    spec = load_space(write_space(tmp_path, name="cmp", **COMPARE))
    summary = summarize(make_experiment(tmp_path / "exp", spec, lambda t: 90.0, skip={0, 1}))
    assert not summary.complete and summary.incomplete["status"].tolist() == ["pending", "pending"]
    assert summary.tables[0].frame.set_index("model").loc["ResNet-18", "n"] == 1


def test_load_epochs_one_row_per_trial_and_epoch(repeated):
    epochs = load_epochs(repeated)
    assert len(epochs) == 12 and sorted(epochs["epoch"].unique()) == [1, 2]
