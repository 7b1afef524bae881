"""Statistics on hand-made numbers with known answers."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from tune_mnist import stats


def test_t_interval_matches_the_textbook():
    # mean 10, sd 2, n 4: half-width = t(0.975, 3) * 2 / sqrt(4) = 3.182446 * 1
    values = [8, 10, 10, 12]
    sd = np.std(values, ddof=1)
    low, high = stats.t_interval(values)
    half = scipy_stats.t.ppf(0.975, 3) * sd / 2
    assert (low, high) == pytest.approx((10 - half, 10 + half))
    assert half == pytest.approx(3.182446 * sd / 2, rel=1e-6)


def test_t_interval_needs_two_values():
    assert all(math.isnan(v) for v in stats.t_interval([5.0]))
    assert stats.describe([5.0]) == {
        "mean": 5.0,
        "std": pytest.approx(float("nan"), nan_ok=True),
        "n": 1,
        "ci_low": pytest.approx(float("nan"), nan_ok=True),
        "ci_high": pytest.approx(float("nan"), nan_ok=True),
    }


def test_aggregate_groups_repeats():
    frame = pd.DataFrame({"model": ["a", "a", "a", "b", "b"], "acc": [1.0, 2.0, 3.0, 5.0, 7.0]})
    summary = stats.aggregate(frame, ["model"], "acc").set_index("model")
    assert summary.loc["a", "mean"] == 2.0 and summary.loc["a", "std"] == 1.0
    assert summary.loc["a", "n"] == 3 and summary.loc["b", "n"] == 2
    assert summary.loc["b", "ci_high"] - summary.loc["b", "mean"] == pytest.approx(
        scipy_stats.t.ppf(0.975, 1) * math.sqrt(2) / math.sqrt(2)
    )


def test_versus_best_marks_separated_and_overlapping_rows():
    summary = pd.DataFrame(
        {
            "mean": [90.0, 80.0, 89.0],
            "ci_low": [89.0, 79.0, 87.0],
            "ci_high": [91.0, 81.0, 89.5],
        }
    )
    assert stats.versus_best(summary).tolist() == ["best", "lower", "tie"]


def test_versus_best_makes_no_claim_from_single_runs():
    summary = pd.DataFrame(
        {"mean": [90.0, 80.0], "ci_low": [math.nan] * 2, "ci_high": [math.nan] * 2}
    )
    assert stats.versus_best(summary).tolist() == ["best", "n<2"]


def test_paired_difference_equals_a_paired_t_test():
    a, b = [90.0, 91.0, 89.5, 90.5], [91.0, 91.5, 90.5, 91.5]
    result = stats.paired_difference(a, b)
    assert result["diff"] == pytest.approx(0.875)
    assert result["p"] == pytest.approx(scipy_stats.ttest_rel(b, a).pvalue)
    low, high = stats.t_interval(np.subtract(b, a))
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((low, high))
    assert result["pairs"] == 4


def test_q1a_design_aliases_lr_with_epochs_and_a_half_fraction():
    design = pd.DataFrame(
        [
            (16, "sgd", 0.001, 5, False),
            (16, "sgd", 0.0001, 15, True),
            (16, "adam", 0.001, 5, True),
            (16, "adam", 0.0001, 15, False),
        ]
        * 2,
        columns=["batch_size", "optimizer", "lr", "epochs", "pin_memory"],
    )
    design.loc[4:, "batch_size"] = 32
    dropped, found = stats.aliased_factors(design)
    assert dropped == ["epochs"]
    assert found == [
        "lr and epochs always change together: one effect, reported as lr",
        "optimizer, lr and pin_memory: each main effect is confounded with the interaction of the other two",
    ]


def test_full_factorial_has_no_aliases():
    grid = pd.MultiIndex.from_product([[16, 32], ["sgd", "adam"], [0.1, 0.01]]).to_frame(
        index=False
    )
    assert stats.aliased_factors(grid) == ([], [])


def test_main_effects_difference_and_welch_interval():
    frame = pd.DataFrame({"opt": ["sgd"] * 3 + ["adam"] * 3, "acc": [80.0, 82, 84, 90, 91, 92]})
    effects = stats.main_effects(frame, ["opt"], ["acc"])
    assert effects["level"].tolist() == ["adam", "sgd", "sgd - adam"]
    assert effects["mean acc"].tolist() == pytest.approx([91.0, 82.0, -9.0])
    welch = scipy_stats.ttest_ind([80, 82, 84], [90, 91, 92], equal_var=False)
    low, high = stats.welch_interval(pd.Series([90.0, 91, 92]), pd.Series([80.0, 82, 84]))
    assert (low + high) / 2 == pytest.approx(-9.0)
    # the interval excludes 0 exactly when Welch's test rejects at 5%
    assert (high < 0) == (welch.pvalue < 0.05)
