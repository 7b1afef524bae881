"""Honest numbers from repeats: mean, std, n, t-intervals, comparisons, factor effects.

Every interval here is a Student t-interval at 95%; the comparisons say which test they
use. With n = 1 nothing is claimed: single runs cannot be told apart from seed noise.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95


def t_interval(values) -> tuple[float, float]:
    """95% Student t-interval of the mean; (nan, nan) below two values."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) < 2:
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


def versus_best(summary: pd.DataFrame) -> pd.Series:
    """Per row: `best`, `lower` (its interval lies below the best's), or `tie` (overlap).

    Without intervals (n < 2) every row is `n<2`: no claim can be made.
    """
    if summary.empty or summary["mean"].isna().all():
        return pd.Series("—", index=summary.index)
    best = summary["mean"].idxmax()
    best_low = summary.loc[best, "ci_low"]

    def mark(row):
        if row.name == best:
            return "best"
        if math.isnan(row["ci_high"]) or math.isnan(best_low):
            return "n<2"
        return "lower" if row["ci_high"] < best_low else "tie"

    return summary.apply(mark, axis=1)


def paired_difference(a, b) -> dict[str, float]:
    """b - a over paired repeats (same seeds): mean difference, its 95% interval, paired t p."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    diff = b[keep] - a[keep]
    low, high = t_interval(diff)
    if len(diff) < 2:
        p = math.nan
    elif np.all(diff == diff[0]):  # no spread: the t statistic is undefined
        p = 0.0 if diff[0] != 0 else 1.0
    else:
        p = float(stats.ttest_rel(b[keep], a[keep]).pvalue)
    return {
        "diff": diff.mean() if len(diff) else math.nan,
        "ci_low": low,
        "ci_high": high,
        "p": p,
        "pairs": len(diff),
    }


def aliased_factors(design: pd.DataFrame) -> tuple[list[str], list[str]]:
    """What a design cannot separate: (factors to drop, one line per finding).

    Two factors whose levels always come together are one factor (the second is dropped).
    Three two-level factors each equal to the interaction of the other two (a half
    fraction) have main effects confounded with those interactions.
    """
    design = design.drop_duplicates()
    factors = [c for c in design if design[c].nunique() > 1]
    dropped, found = [], []
    for a, b in itertools.combinations(factors, 2):
        if a in dropped or b in dropped:
            continue
        pairs = design[[a, b]].drop_duplicates()
        if len(pairs) == design[a].nunique() == design[b].nunique():
            dropped.append(b)
            found.append(f"{a} and {b} always change together: one effect, reported as {a}")
    two_level = [f for f in factors if f not in dropped and design[f].nunique() == 2]
    coded = {
        f: np.where(design[f] == sorted(design[f].unique(), key=str)[0], -1, 1) for f in two_level
    }
    for f, g, h in itertools.combinations(two_level, 3):
        product = coded[g] * coded[h]
        if np.array_equal(coded[f], product) or np.array_equal(coded[f], -product):
            found.append(
                f"{f}, {g} and {h}: each main effect is confounded with the "
                "interaction of the other two"
            )
    return dropped, found


def main_effects(frame: pd.DataFrame, factors: list[str], values: list[str]) -> pd.DataFrame:
    """Per factor and level: mean of each value; per factor: the difference between its
    two levels (last - first, in sorted order) with a Welch 95% interval over trials."""
    rows = []
    for factor in factors:
        levels = sorted(frame[factor].dropna().unique(), key=str)
        if len(levels) < 2:
            continue
        for level in levels:
            part = frame[frame[factor] == level]
            rows.append(
                {
                    "factor": factor,
                    "level": str(level),
                    "trials": len(part),
                    **{f"mean {v}": part[v].mean() for v in values},
                }
            )
        if len(levels) == 2:
            low, high = (frame.loc[frame[factor] == lv, values[0]].dropna() for lv in levels)
            diff, ci = high.mean() - low.mean(), welch_interval(low, high)
            rows.append(
                {
                    "factor": factor,
                    "level": f"{levels[1]} - {levels[0]}",
                    "trials": len(low) + len(high),
                    f"mean {values[0]}": diff,
                    "95% CI": f"[{ci[0]:.2f}, {ci[1]:.2f}]",
                }
            )
    return pd.DataFrame(rows)


def welch_interval(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """95% Welch t-interval of mean(b) - mean(a)."""
    if len(a) < 2 or len(b) < 2:
        return (math.nan, math.nan)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return (b.mean() - a.mean(),) * 2
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, dof) * se
    return (b.mean() - a.mean() - half, b.mean() - a.mean() + half)
