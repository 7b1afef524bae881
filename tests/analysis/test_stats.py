"""Statistics on hand-made numbers with known answers."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from tune_mnist.analysis import stats


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


def summary_of(samples):
    return pd.DataFrame([stats.describe(sample) for sample in samples])


def test_versus_best_with_repeats_is_dunnett_against_the_best():
    best = [90.0, 90.5, 89.5, 90.2]
    worse = [80.0, 80.4, 79.6, 80.1]
    near = [89.8, 90.3, 89.3, 90.0]  # the best's spread, 0.2 lower
    samples = [worse, best, near]
    marks = stats.versus_best(summary_of(samples), samples=samples)
    expected = scipy_stats.dunnett(worse, near, control=best, rng=stats.DUNNETT_SEED).pvalue
    assert marks["p"].iloc[[0, 2]].tolist() == pytest.approx(expected.tolist())
    assert marks["mark"].tolist() == [
        f"worse (p {'< 0.001' if expected[0] < 0.001 else f'= {expected[0]:.3f}'})",
        "best",
        f"not distinguishable from the best (p = {expected[1]:.2f})",
    ]
    assert marks["test"].iloc[0] == "Dunnett vs best"


def test_versus_best_makes_no_claim_from_single_runs_or_no_spread_and_says_why():
    """Issue 28 item 7: "no claim" without its reason."""
    single = [[90.0], [80.0]]
    marks = stats.versus_best(summary_of(single), samples=single)
    no_pair = "no test: one run, no saved predictions to pair"
    assert marks["mark"].tolist() == ["best", no_pair]
    assert math.isnan(marks["p"].iloc[1])
    flat = [[90.0, 90.0], [80.0, 80.0]]  # deterministic repeats: no spread, no test
    assert stats.versus_best(summary_of(flat), samples=flat)["mark"].tolist() == [
        "best",
        "no test: the seeds' accuracies do not vary",
    ]
    assert stats.versus_best(summary_of(single))["mark"].tolist() == ["best", no_pair]


def correctness(both: int, only_a: int, only_b: int, neither: int):
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return np.array(a), np.array(b)


def test_versus_best_with_single_runs_is_mcnemar_with_holm():
    best = np.arange(1000) < 960  # right on the first 960 test images

    def flip(right_to_wrong: int, wrong_to_right: int):
        other = best.copy()
        other[:right_to_wrong] = False
        other[960 : 960 + wrong_to_right] = True
        return other

    clearly, barely = flip(60, 10), flip(8, 5)
    correct = [clearly, best, barely]
    summary = pd.DataFrame({"mean": [c.mean() * 100 for c in correct]})
    marks = stats.versus_best(summary, correct=correct)
    small = scipy_stats.binomtest(10, 70).pvalue  # the best alone right on 60, clearly on 10
    large = scipy_stats.binomtest(5, 13).pvalue
    holm = [min(1, 2 * small), max(min(1, 2 * small), large)]  # Holm by hand: small first
    assert marks["p"].iloc[[0, 2]].tolist() == pytest.approx(holm)
    assert marks["mark"].iloc[0].startswith("worse (p < 0.001")
    assert marks["mark"].iloc[2] == f"not distinguishable from the best (p = {holm[1]:.2f})"
    assert marks["test"].iloc[2] == "exact McNemar vs best, Holm"


def test_versus_best_does_not_rank_the_same_computation():
    samples = [[90.0, 90.5, 89.5], [90.0, 90.5, 89.5], [80.0, 81.0, 79.0]]
    marks = stats.versus_best(summary_of(samples), samples, same_as_best=[False, True, False])
    assert marks["mark"].iloc[:2].tolist() == ["best", "same computation as best"]
    assert marks["mark"].iloc[2].startswith("worse")
    expected = scipy_stats.dunnett(samples[2], control=samples[0], rng=stats.DUNNETT_SEED)
    assert marks["p"].iloc[2] == pytest.approx(expected.pvalue[0])


def test_wilson_interval_in_percent():
    low, high = stats.wilson_interval(9594, 10000)
    ci = scipy_stats.binomtest(9594, 10000).proportion_ci(method="wilson")
    assert (low, high) == pytest.approx((100 * ci.low, 100 * ci.high))
    # the textbook formula, z = 1.959964
    z, n, p = scipy_stats.norm.ppf(0.975), 10000, 0.9594
    center = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert (low, high) == pytest.approx((100 * (center - half), 100 * (center + half)))
    assert all(math.isnan(v) for v in stats.wilson_interval(0, 0))


def test_mcnemar_exact_is_a_binomial_test_on_the_discordant_images():
    a, b = correctness(50, 2, 10, 8)
    result = stats.mcnemar_exact(a, b)
    assert (result.only_a, result.only_b) == (2, 10)
    assert result.p == pytest.approx(scipy_stats.binomtest(2, 12, 0.5).pvalue)
    same = stats.mcnemar_exact(a, a)
    assert (same.only_a, same.only_b, same.p) == (0, 0, 1.0)
    with pytest.raises(ValueError):
        stats.mcnemar_exact(a, b[:-1])


def test_paired_difference_equals_a_paired_t_test():
    a, b = [90.0, 91.0, 89.5, 90.5], [91.0, 91.5, 90.5, 91.5]
    result = stats.paired_difference(a, b)
    assert result["diff"] == pytest.approx(0.875)
    assert result["p"] == pytest.approx(scipy_stats.ttest_rel(b, a).pvalue)
    low, high = stats.t_interval(np.subtract(b, a))
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((low, high))
    assert result["pairs"] == 4


def test_no_spread_claims_nothing():
    result = stats.paired_difference([90.0, 91.0, 92.0], [91.0, 92.0, 93.0])
    assert result["diff"] == 1.0
    assert all(math.isnan(result[k]) for k in ("p", "ci_low", "ci_high"))
    assert all(math.isnan(v) for v in stats.t_interval([0.1, 0.1, 0.1]))
    same = pd.Series([90.0, 90.0, 90.0])
    assert all(math.isnan(v) for v in stats.welch_interval(same, same + 1))


def test_dunnett_only_when_the_variances_are_comparable():
    """Issue 28 item 14: one configuration's seeds spread far more than the others' (SD 13.5
    against at most 4): Dunnett's pooled variance would be dominated by it; pairwise Welch
    t-tests against the best, Holm-adjusted, instead (checked with scipy and statsmodels)."""
    from scipy.stats import levene, ttest_ind
    from statsmodels.stats.multitest import multipletests

    best = np.array([90.0, 91.0, 92.0, 90.5])
    calm = np.array([85.0, 86.0, 85.5, 86.5])
    wild = np.array([60.0, 85.0, 70.0, 88.0])  # SD about 13
    summary = pd.DataFrame({"mean": [g.mean() for g in (best, calm, wild)]})
    found = stats.versus_best(summary, samples=[best, calm, wild])
    assert levene(best, calm, wild).pvalue < 0.05
    assert found["test"].iloc[1].startswith("Welch t vs best, Holm (variances differ")
    raw = [ttest_ind(g, best, equal_var=False).pvalue for g in (calm, wild)]
    assert list(found["p"].iloc[1:]) == pytest.approx(multipletests(raw, method="holm")[1])

    even = np.array([80.0, 81.0, 82.0, 80.5])
    summary = pd.DataFrame({"mean": [g.mean() for g in (best, calm, even)]})
    assert (
        stats.versus_best(summary, samples=[best, calm, even])["test"].iloc[1] == "Dunnett vs best"
    )


@pytest.mark.parametrize("only_a, only_b", [(12, 4), (9, 2), (30, 10), (5, 5), (0, 0), (7, 0)])
def test_the_paired_interval_holds_zero_exactly_when_mcnemar_is_not_significant(only_a, only_b):
    """The answer printed a Wald interval [0.03, 6.37] beside an exact p = 0.064: the two
    disagreed. The interval is now the exact test's own binomial (Clopper-Pearson)."""
    total = 500
    low, high = stats.mcnemar_interval(only_a, only_b, total)
    assert low <= 100 * (only_a - only_b) / total <= high
    if only_a + only_b:
        a, b = correctness(total - only_a - only_b - 10, only_a, only_b, 10)
        p = stats.mcnemar_exact(a, b).p
        assert (low > 0 or high < 0) == (p < 0.05)
