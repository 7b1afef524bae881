"""Honest numbers from repeats and from single runs: intervals, tests, comparisons.

- `describe` / `aggregate`: mean, std, n and a 95% Student t-interval per configuration;
- `wilson_interval`: 95% Wilson interval of an accuracy counted over test images;
- `mcnemar_exact`: exact McNemar test of two models on the same test images;
- `versus_best`: each configuration against the best one, a real test with
  multiple-comparison control (Dunnett over repeats, or exact McNemar with Holm over
  per-image correctness of single runs);
- `paired_difference` / `welch_interval`: differences over paired or independent repeats.

Nothing is claimed from what cannot carry a claim: below two values, or with no spread at
all (identical repeats, identical differences), intervals and p-values are NaN, never a
zero-width interval or p = 0. Factor effects of a design live in `effects.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
DUNNETT_SEED = 0  # scipy's Dunnett p-values come from a randomized integration: fix it


def t_interval(values) -> tuple[float, float]:
    """95% Student t-interval of the mean; (nan, nan) below two values or with no spread."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return (math.nan, math.nan)
    if np.ptp(values) == 0:  # identical values: a zero-width interval would claim certainty
        return (math.nan, math.nan)
    mean, sem = values.mean(), values.std(ddof=1) / math.sqrt(len(values))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1) * sem
    return (mean - half, mean + half)


def describe(values) -> dict[str, float]:
    """mean, std (n-1), n, and the 95% t-interval of a sample."""
    values = pd.Series(values, dtype=float).dropna()
    low, high = t_interval(values)
    std = values.std(ddof=1) if len(values) > 1 else math.nan
    mean = values.mean() if len(values) else math.nan
    return {"mean": mean, "std": std, "n": len(values), "ci_low": low, "ci_high": high}


def aggregate(frame: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """One row per configuration (the `keys`), with `describe` of `value` over its repeats."""
    rows = []
    for config, group in frame.groupby(keys, sort=False, dropna=False):
        config = config if isinstance(config, tuple) else (config,)
        rows.append({**dict(zip(keys, config, strict=True)), **describe(group[value])})
    return pd.DataFrame(rows, columns=[*keys, "mean", "std", "n", "ci_low", "ci_high"])


def wilson_interval(
    correct: int, total: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Wilson interval of an accuracy `correct` / `total`, in percent; (nan, nan) for total 0."""
    if total <= 0:
        return (math.nan, math.nan)
    low, high = proportion_confint(correct, total, alpha=1 - confidence, method="wilson")
    return (100 * float(low), 100 * float(high))


@dataclass(frozen=True)
class McNemar:
    """Two models on the same test images: the images only one gets right, and exact p."""

    only_a: int  # right by a, wrong by b
    only_b: int  # right by b, wrong by a
    p: float  # exact two-sided: a binomial test on the discordant images


def mcnemar_exact(correct_a, correct_b) -> McNemar:
    """Exact McNemar test from two boolean arrays over the same test images.

    With no discordant image p is 1: the two runs give no evidence of any difference.
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"not the same test images: {a.shape} vs {b.shape}")
    table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
    p = float(mcnemar(table, exact=True).pvalue)
    return McNemar(only_a=table[0][1], only_b=table[1][0], p=p)


def versus_best(
    summary: pd.DataFrame,
    samples: list[np.ndarray] | None = None,
    correct: list[np.ndarray | None] | None = None,
    same_as_best=None,
) -> pd.DataFrame:
    """Each row of `summary` against the row of highest `mean`, with a real test.

    samples: per row, its repeats (e.g. accuracy over seeds): rows with n >= 2 are tested
    against the best by Dunnett's test (pooled variance, family-wise error controlled).
    correct: per row, per-image correctness of a single run on the same test images (None
    where missing): exact McNemar against the best, Holm-adjusted. Used when the repeats
    cannot carry a test.
    same_as_best: boolean mask of rows that are the same computation as the best (e.g. they
    differ only in a factor that could not act): not ranked against it.

    Returns, indexed like `summary`: `mark` ("best", "worse (p = 0.002)", "not
    distinguishable from the best (p = 0.31)", "same computation as best", or "no test:"
    and why), `p` (adjusted, NaN without a test) and `test`. The best is chosen from the same data,
    so "worse" is a claim against the observed leader, not against an unknown true best.
    """
    out = pd.DataFrame({"mark": "no claim", "p": math.nan, "test": ""}, index=summary.index)
    means = summary["mean"].to_numpy(dtype=float) if len(summary) else np.array([])
    if not len(means) or np.isnan(means).all():
        return out
    best = int(np.nanargmax(means))
    same = np.zeros(len(means), bool) if same_as_best is None else np.asarray(same_as_best, bool)
    same[best] = False
    out.iloc[best, 0] = "best"
    out.loc[same, "mark"] = "same computation as best"
    rivals = [i for i in range(len(means)) if i != best and not same[i] and not np.isnan(means[i])]
    adjusted, test = _dunnett(samples, best, rivals) if samples is not None else ({}, "")
    if not adjusted and correct is not None:
        adjusted, test = _mcnemar_holm(correct, best, rivals)
    for row in rivals:  # the rows no test reached: say why, not just "no claim"
        if row not in adjusted:
            out.iloc[row, 0] = _untested(row, best, samples, correct)
    for row, p in adjusted.items():
        worse = p < ALPHA and means[row] < means[best]
        mark = "worse" if worse else "not distinguishable from the best"
        out.iloc[row] = [f"{mark} (p {p_text(p)})", p, test]
    return out


def _untested(row, best, samples, correct) -> str:
    """Why a row has no test against the best."""
    seeds = [len(np.asarray(s)[~np.isnan(np.asarray(s, float))]) for s in (samples or [])]
    if seeds and seeds[row] >= 2 and seeds[best] >= 2:
        return "no test: the seeds' accuracies do not vary"
    if correct is None or correct[row] is None or correct[best] is None:
        return "no test: one run, no saved predictions to pair"
    return "no test: one run against several seeds"


def _dunnett(samples, best, rivals) -> tuple[dict[int, float], str]:
    clean = [np.asarray(s, dtype=float) for s in samples]
    clean = [s[~np.isnan(s)] for s in clean]
    tested = [i for i in rivals if len(clean[i]) >= 2]
    if len(clean[best]) < 2 or not tested:
        return {}, ""
    groups = [clean[best], *(clean[i] for i in tested)]
    if all(np.ptp(g) == 0 for g in groups):  # no spread anywhere: no test
        return {}, ""
    # Dunnett pools one variance: only when the configurations' variances are comparable
    spread = math.nan  # NaN where no group spreads at all: nothing to compare
    if all(len(g) >= 2 for g in groups):
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = stats.levene(*groups).pvalue
    if spread < ALPHA:
        raw = {i: stats.ttest_ind(clean[i], clean[best], equal_var=False).pvalue for i in tested}
        raw = {i: float(p) for i, p in raw.items() if not math.isnan(p)}
        if not raw:
            return {}, ""
        adjusted = multipletests(list(raw.values()), method="holm")[1]
        test = f"Welch t vs best, Holm (variances differ: Levene p {p_text(spread)})"
        return dict(zip(raw, map(float, adjusted), strict=True)), test
    result = stats.dunnett(*(clean[i] for i in tested), control=clean[best], rng=DUNNETT_SEED)
    return dict(zip(tested, map(float, result.pvalue), strict=True)), "Dunnett vs best"


def _mcnemar_holm(correct, best, rivals) -> tuple[dict[int, float], str]:
    if correct[best] is None:
        return {}, ""
    tested = [i for i in rivals if correct[i] is not None]
    if not tested:
        return {}, ""
    raw = [mcnemar_exact(correct[i], correct[best]).p for i in tested]
    adjusted = multipletests(raw, method="holm")[1]
    return dict(zip(tested, map(float, adjusted), strict=True)), "exact McNemar vs best, Holm"


def p_text(p: float) -> str:
    """A p-value as reports print it: "< 0.001", "= 0.047", "= 0.31"."""
    if p < 0.001:
        return "< 0.001"
    # three decimals below 0.1, so that a p of 0.047 never reads as 0.05
    return f"= {p:.3f}" if p < 0.1 else f"= {p:.2f}"


def mcnemar_interval(only_a: int, only_b: int, total: int) -> tuple[float, float]:
    """95% interval, in points, of accuracy(a) - accuracy(b) for two models on the same
    `total` test images, from the images only one gets right: the Clopper-Pearson interval
    of only_a / (only_a + only_b), the very binomial the exact McNemar test uses, so the
    interval holds 0 when that test is not significant."""
    discordant = only_a + only_b
    if not discordant or not total:
        return (0.0, 0.0)
    low, high = proportion_confint(only_a, discordant, alpha=1 - CONFIDENCE, method="beta")
    scale = 100 * discordant / total
    return ((2 * low - 1) * scale, (2 * high - 1) * scale)


def mcnemar_difference(correct_a, correct_b) -> tuple[float, float, float]:
    """accuracy(a) - accuracy(b) on the same test images: its exact 95% interval in points
    (mcnemar_interval) and the exact McNemar p."""
    test = mcnemar_exact(correct_a, correct_b)
    low, high = mcnemar_interval(test.only_a, test.only_b, len(correct_a))
    return low, high, test.p


def welch_difference(a, b) -> tuple[float, float, float] | None:
    """mean(b) - mean(a) of two independent samples: the Welch 95% interval and Welch's
    t-test p; None where the interval cannot be made (fewer than two values, no spread)."""
    low, high = welch_interval(pd.Series(a, dtype=float), pd.Series(b, dtype=float))
    if math.isnan(low):
        return None
    return low, high, float(stats.ttest_ind(b, a, equal_var=False).pvalue)


def paired_difference(a, b) -> dict[str, float]:
    """b - a over paired repeats (same seeds): mean difference, its 95% interval, paired t p."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    diff = b[keep] - a[keep]
    low, high = t_interval(diff)
    # with no spread (every difference equal) the t statistic is undefined: no claim
    if len(diff) < 2 or np.all(diff == diff[0]):
        p = math.nan
    else:
        p = float(stats.ttest_rel(b[keep], a[keep]).pvalue)
    return {
        "diff": diff.mean() if len(diff) else math.nan,
        "ci_low": low,
        "ci_high": high,
        "p": p,
        "pairs": len(diff),
    }


def welch_interval(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """95% Welch t-interval of mean(b) - mean(a); (nan, nan) below two values or no spread."""
    if len(a) < 2 or len(b) < 2:
        return (math.nan, math.nan)
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # no spread in either sample: no interval
        return (math.nan, math.nan)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, dof) * se
    return (b.mean() - a.mean() - half, b.mean() - a.mean() + half)


@dataclass(frozen=True)
class LackOfFit:
    """The F-test of a model's fit against the pure error of replicated design points."""

    f_value: float
    df_model: int  # lack-of-fit degrees of freedom: design points - parameters
    df_error: int  # pure-error degrees of freedom: observations - design points
    p: float

    def describe(self) -> str:
        return f"F({self.df_model}, {self.df_error}) = {self.f_value:.1f}, p {p_text(self.p)}"


def lack_of_fit(residual_ss: float, rank: int, y, groups) -> LackOfFit | None:
    """Lack-of-fit test of a linear model of rank `rank` whose residual sum of squares is
    `residual_ss`, over observations `y` at design points `groups` (labels, one per
    observation); None without replicates, or without spread among them."""
    frame = pd.DataFrame({"y": np.asarray(y, dtype=float), "g": list(groups)})
    points = frame["g"].nunique()
    df_error, df_model = len(frame) - points, points - rank
    pure = float(((frame["y"] - frame.groupby("g")["y"].transform("mean")) ** 2).sum())
    if df_error <= 0 or df_model <= 0 or pure <= 0:
        return None
    f_value = ((residual_ss - pure) / df_model) / (pure / df_error)
    p = float(stats.f.sf(f_value, df_model, df_error))
    return LackOfFit(f_value=f_value, df_model=df_model, df_error=df_error, p=p)
