"""compare on real sweeps: SVMs at C = 1 and C = 10, and two seeds of a ResNet sweep; the
paired tests checked against statsmodels' mcnemar on the predictions the trials saved."""

import json

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar
from typer.testing import CliRunner

from tune_mnist import load_results
from tune_mnist.cli.main import app
from tune_mnist.store.experiment import read_predictions

from ..conftest import TINY_RESNET, TINY_SVM, write_space


def sweep(tmp_path, tiny_data, name, **space) -> str:
    path = write_space(tmp_path, name=name, **space)
    storage = tmp_path / "runs"
    args = ["sweep", str(path), "--data-dir", str(tiny_data), "--storage-path", str(storage)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return str(storage / name)


def expected_p(a: str, b: str, **match) -> float:
    """statsmodels' exact McNemar p of the two trials that match, from their predictions."""
    rows = []
    for experiment in (a, b):
        results = load_results(experiment)
        for key, value in match.items():
            results = results[results[key] == value]
        rows.append(read_predictions(results["trial_dir"].iloc[0]).correct)
    right_a, right_b = rows
    table = [
        [np.sum(right_a & right_b), np.sum(right_a & ~right_b)],
        [np.sum(~right_a & right_b), np.sum(~right_a & ~right_b)],
    ]
    return mcnemar(table, exact=True).pvalue


def compared(a: str, b: str) -> dict:
    result = CliRunner().invoke(app, ["compare", a, b, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_svms_at_two_values_of_c_are_paired_image_by_image(tmp_path, tiny_data):
    space = {**TINY_SVM, "grid": {"dataset": ["mnist"], "kernel": ["rbf", "poly"]}}
    a = sweep(tmp_path, tiny_data, "c1", **{**space, "fixed": {**space["fixed"], "C": 1.0}})
    b = sweep(tmp_path, tiny_data, "c10", **{**space, "fixed": {**space["fixed"], "C": 10.0}})
    found = compared(a, b)
    assert found["settings"] == {"C": [1.0, 10.0]}
    for row in found["configurations"]:
        assert row["test"] == "exact McNemar (paired)"
        assert row["p"] == pytest.approx(expected_p(a, b, kernel=row["kernel"]))


def test_two_seeds_of_a_resnet_sweep_are_paired_image_by_image(tmp_path, tiny_data):
    space = {**TINY_RESNET, "grid": {"dataset": ["mnist"], "batch_size": [32], "epochs": [1]}}
    a = sweep(tmp_path, tiny_data, "s0", **{**space, "fixed": {**space["fixed"], "seed": 0}})
    b = sweep(tmp_path, tiny_data, "s1", **{**space, "fixed": {**space["fixed"], "seed": 1}})
    (row,) = compared(a, b)["configurations"]
    assert row["test"] == "exact McNemar (paired)"
    assert row["p"] == pytest.approx(expected_p(a, b))
