"""Repeats planned from a pilot's seeds, checked against statsmodels' power analysis."""

import math

import numpy as np
import pytest
from statsmodels.stats.power import TTestIndPower
from typer.testing import CliRunner

from tests.experiments import make_experiment
from tune_mnist.analysis.planning import plan_repeats
from tune_mnist.cli.main import app
from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.spaces import parse_space

SEEDS = {
    ("rbf", 0): 90.0,
    ("rbf", 1): 90.6,
    ("rbf", 2): 89.7,
    ("poly", 0): 85.0,
    ("poly", 1): 85.9,
    ("poly", 2): 85.2,
}


def pilot(tmp_path, repeats=3):
    raw = {
        "name": "p",
        "trainable": "svm",
        "fixed": {"dataset": "mnist"},
        "grid": {"kernel": ["rbf", "poly"]},
        "repeats": repeats,
    }
    spec = parse_space(raw, "p.yaml")
    return make_experiment(tmp_path / "pilot", spec, lambda t: SEEDS[t.kernel, t.seed])


def test_repeats_follow_the_pooled_spread_and_statsmodels_power(tmp_path):
    from tune_mnist.store.results import load_results

    results = load_results(pilot(tmp_path))
    (plan,) = plan_repeats(results, ["dataset", "kernel"], detect=0.5)
    rbf, poly = np.array([90.0, 90.6, 89.7]), np.array([85.0, 85.9, 85.2])
    sd = math.sqrt((rbf.var(ddof=1) * 2 + poly.var(ddof=1) * 2) / 4)
    assert plan.sd == pytest.approx(sd) and plan.df == 4 and plan.configurations == 2
    n = TTestIndPower().solve_power(effect_size=0.5 / sd, alpha=0.05, power=0.8)
    assert plan.repeats == math.ceil(n)
    assert "a rough estimate: few seeds" in plan.describe()


def test_a_pilot_of_one_seed_each_is_one_line(tmp_path):
    from tune_mnist.store.results import load_results

    results = load_results(pilot(tmp_path, repeats=1))
    with pytest.raises(TuneMnistError, match="run it with --repeats 2"):
        plan_repeats(results, ["dataset", "kernel"], detect=0.5)


def test_show_plans_from_a_pilot(tmp_path):
    folder = pilot(tmp_path)
    result = CliRunner().invoke(app, ["show", "q1b", "--plan-from", str(folder), "--detect", "1"])
    assert result.exit_code == 0, result.output
    assert f"Repeats, from {folder}: MNIST: seed-to-seed SD" in result.output
    assert "to detect 1 points between two configurations with power 0.8" in result.output
