"""compare A B on hand-made experiments: matching, the tests, checked against statsmodels."""

import json

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import confint_proportions_2indep
from typer.testing import CliRunner

from tests.experiments import make_experiment, write_predictions
from tune_mnist.analysis.compare import compare
from tune_mnist.cli.main import app
from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.spaces import parse_space


def svm(tmp_path, name, C, accuracy, kernels=("rbf", "poly"), **kwargs):
    raw = {"name": "s", "trainable": "svm", "fixed": {"dataset": "mnist", "C": C}}
    spec = parse_space({**raw, "grid": {"kernel": list(kernels)}, **kwargs}, "s.yaml")
    return make_experiment(tmp_path / name, spec, accuracy)


def test_single_runs_with_predictions_are_paired_by_image(tmp_path):
    a = svm(tmp_path, "a", 1.0, lambda t: 90.0)
    b = svm(tmp_path, "b", 10.0, lambda t: 80.0)
    labels = np.zeros(50, dtype=np.int64)
    right_a = np.arange(50) < 45  # A right on 0..44
    right_b = (np.arange(50) < 38) | (np.arange(50) >= 48)  # B right on 0..37 and 48, 49
    for i in range(2):
        write_predictions(a, i, (~right_a).astype(np.int64), labels)
        write_predictions(b, i, (~right_b).astype(np.int64), labels)

    found = compare(a, b)
    assert found.settings == {"C": (1.0, 10.0)} and "C" not in found.keys
    assert len(found.frame) == 2 and found.only_a == found.only_b == 0
    row = found.frame.iloc[0]
    # both right 38, only A 7, only B 2, neither 3
    assert row["p"] == pytest.approx(mcnemar([[38, 2], [7, 3]], exact=True).pvalue)
    assert row["test"] == "exact McNemar (paired)" and row["difference (pp)"] == -10.0


def test_single_runs_without_predictions_get_an_unpaired_interval(tmp_path):
    a = svm(tmp_path, "a", 1.0, lambda t: 90.0)
    b = svm(tmp_path, "b", 1.0, lambda t: 70.0)
    row = compare(a, b).frame.iloc[0]
    low, high = confint_proportions_2indep(35, 50, 45, 50, method="newcomb", compare="diff")
    assert row["95% CI"] == f"[{100 * low:.2f}, {100 * high:.2f}]"
    assert row["test"] == "two independent accuracies (Newcombe)"


def test_unmatched_configurations_are_counted_and_other_trainables_refused(tmp_path):
    a = svm(tmp_path, "a", 1.0, lambda t: 90.0, kernels=("rbf", "poly", "linear"))
    b = svm(tmp_path, "b", 1.0, lambda t: 90.0, kernels=("rbf",))
    found = compare(a, b)
    assert (len(found.frame), found.only_a, found.only_b) == (1, 2, 0)
    raw = {"name": "r", "trainable": "resnet", "grid": {"lr": [0.001]}}
    raw["fixed"] = {
        "dataset": "mnist",
        "model": "resnet18",
        "batch_size": 16,
        "optimizer": "adam",
        "epochs": 1,
    }
    resnet = make_experiment(tmp_path / "r", parse_space(raw, "r.yaml"), lambda t: 90.0)
    with pytest.raises(TuneMnistError, match="cannot compare a svm experiment with a resnet"):
        compare(a, resnet)


def test_the_command_prints_a_table_and_json(tmp_path):
    a = svm(tmp_path, "a", 1.0, lambda t: 90.0)
    b = svm(tmp_path, "b", 10.0, lambda t: 85.0)
    shown = CliRunner().invoke(app, ["compare", str(a), str(b)])
    assert shown.exit_code == 0, shown.output
    assert "C: 1.0 in A, 10.0 in B" in shown.output and "-5.00" in shown.output
    printed = CliRunner().invoke(app, ["compare", str(a), str(b), "--json"])
    record = json.loads(printed.output)
    assert record["settings"] == {"C": [1.0, 10.0]}
    assert [c["difference (pp)"] for c in record["configurations"]] == [-5.0, -5.0]
    missing = CliRunner().invoke(app, ["compare", str(a), str(tmp_path / "nothing")])
    assert missing.exit_code == 1 and "Traceback" not in missing.output
