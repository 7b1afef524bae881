"""Factor effects from a linear model of the design, and what the design cannot say.

`design_effects` fits the response on the main effects of the factors (treatment coding,
ordinary least squares), so each factor's contrast is adjusted for the others instead of
pooling every trial at a level (which, in an unbalanced design such as q2, measures other
factors). It reads from the design matrix itself what cannot be estimated:

- factors that could not act in the trials that ran (`inert`) are left out, with the reason;
- trials that are the same computation count once (their mean is one observation);
- a factor whose changes always come with other factors' changes is not estimated;
- a main effect confounded with a two-factor interaction (a half fraction) is named;
- a factor that varies only inside part of the design is compared there, and `within` says
  where (the comparison assumes it carries over to the rest of the design).

Intervals are 95% t-intervals from the model's residual variance. With no residual degrees
of freedom, or a model that fits every point exactly, nothing is claimed: estimates come with
NaN intervals and p-values. Factors with three or more levels get a joint F-test and pairwise
contrasts with Holm-adjusted p-values and Bonferroni-adjusted (simultaneous) intervals.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.tools.sm_exceptions import SingularMatrixWarning

from tune_mnist.analysis.aliasing import (
    column_name,
    estimable_factors,
    interaction_aliases,
    join_words,
    model_matrix,
)
from tune_mnist.analysis.stats import ALPHA, LackOfFit, lack_of_fit

CONFIDENCE = 0.95
CONTRAST_COLUMNS = [
    "factor",
    "contrast",
    "estimate",
    "ci_low",
    "ci_high",
    "p",
    "within",
    "confounded",
]
JOINT_COLUMNS = ["factor", "levels", "df", "F", "p"]
LEVEL_COLUMNS = ["factor", "level", "estimate", "ci_low", "ci_high"]


@dataclass(frozen=True)
class Effects:
    """Effects of a design's factors on one response.

    contrasts: one row per estimable comparison of two levels (later - earlier in sorted
    order): estimate, 95% interval, p; `within` names where the comparison was made ("" for
    the whole design), `confounded` what it cannot be told apart from ("" for nothing).
    joint: one row per estimated factor: F-test that all its levels are equal.
    levels: model-based marginal mean of each level (other factors weighted equally).
    notes: plain sentences on what was left out, aliased, nested or collapsed, and the model.
    """

    response: str
    contrasts: pd.DataFrame
    joint: pd.DataFrame
    levels: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    design_points: int = 0  # distinct settings of the modelled factors
    observations: int = 0  # distinct computations the model was fit on
    residual_df: int = 0
    lack_of_fit: LackOfFit | None = None  # the additive model against pure error
    cells: pd.DataFrame | None = None  # mean, std, n per design point, when factors interact


def design_effects(
    frame: pd.DataFrame,
    factors: list[str],
    response: str,
    inert: dict[str, str] | None = None,
    same_computation: list[str] | None = None,
    names: Mapping[str, Mapping[object, str]] | None = None,
) -> Effects:
    """Effects of `factors` on `response` from a main-effects linear model of the design.

    inert: factor -> why it could not act in these trials (e.g. "every trial trained on the
    CPU"); such factors are left out of the model and get no estimate.
    same_computation: columns on which equal rows are one computation (e.g. the config
    columns and the seed); inert factors are set aside first. None: every row is its own.
    names: display text of levels, e.g. {"model": {"resnet18": "ResNet-18"}}; named levels
    stand alone in `within`, others read "factor value".
    """
    inert = dict(inert or {})
    names = names or {}
    notes: list[str] = []
    data = frame[frame[response].notna()]
    if missing := len(frame) - len(data):
        notes.append(f"{missing} trial(s) without {response} left out.")
    for factor, why in inert.items():
        if factor in factors:
            notes.append(f"{factor} left out: it could not act ({why}); no effect is estimated.")
    candidates = [f for f in factors if f not in inert]
    data = _collapse(data, candidates, response, same_computation, list(inert), notes)

    active = []
    for factor in candidates:
        if data[factor].nunique(dropna=False) < 2:
            value = data[factor].iloc[0] if len(data) else "no value"
            notes.append(f"{factor} is {_label(names, factor, value)} throughout: no effect.")
        else:
            active.append(factor)
    levels = {f: _sorted_levels(data[f]) for f in active}
    points = data[active].drop_duplicates().reset_index(drop=True)
    design_points = len(points) if active else int(len(data) > 0)

    kept, confounded = estimable_factors(points, active, levels, notes)
    confounded = interaction_aliases(points, kept, levels, confounded, notes)

    X = model_matrix(data, kept, levels)
    rank = np.linalg.matrix_rank(X.to_numpy()) if len(data) else 0
    residual_df = len(data) - rank
    with warnings.catch_warnings():  # rank deficiency is handled: only estimable contrasts
        warnings.simplefilter("ignore", SingularMatrixWarning)
        fit = sm.OLS(data[response].to_numpy(float), X.to_numpy()).fit() if len(data) else None
    claims = _can_claim(fit, residual_df, data[response], notes)
    _model_note(notes, response, kept, len(data), design_points, rank, residual_df)
    point = data[active].astype(str).agg("|".join, axis=1) if active else None
    misfit = lack_of_fit(fit.ssr, rank, data[response], point) if claims and active else None
    if misfit is not None and misfit.p < ALPHA:  # main effects would average interactions
        notes.append(
            f"The additive model does not fit ({misfit.describe()}, lack of fit against the "
            "seeds' spread): the factors interact, so no main effect is reported; the cell "
            "means are shown instead."
        )
        cells = data.groupby(active, sort=True)[response].agg(["mean", "std", "count"])
        return Effects(
            response,
            pd.DataFrame(columns=CONTRAST_COLUMNS),
            pd.DataFrame(columns=JOINT_COLUMNS),
            pd.DataFrame(columns=LEVEL_COLUMNS),
            notes,
            design_points,
            len(data),
            residual_df,
            misfit,
            cells.rename(columns={"count": "n"}).reset_index(),
        )

    model = _Model(fit, claims, residual_df, X.columns.tolist(), model_matrix(points, kept, levels))
    contrasts, joint, level_rows = [], [], []
    for factor in kept:
        others = [f for f in kept if f != factor]
        rows = _contrasts(model, points, factor, others, levels, names, confounded, notes)
        complete = len(rows) == len(levels[factor]) * (len(levels[factor]) - 1) // 2
        contrasts += rows
        joint.append(_joint(model, factor, levels[factor], complete))
        level_rows += _level_means(model, factor, kept, levels, names)
    _nesting_notes(contrasts, notes)
    return Effects(
        response=response,
        contrasts=pd.DataFrame(contrasts, columns=CONTRAST_COLUMNS),
        joint=pd.DataFrame(joint, columns=JOINT_COLUMNS),
        levels=pd.DataFrame(level_rows, columns=LEVEL_COLUMNS),
        notes=notes,
        design_points=design_points,
        observations=len(data),
        residual_df=residual_df,
        lack_of_fit=misfit,
    )


@dataclass
class _Model:
    fit: object  # statsmodels RegressionResults, or None without data
    claims: bool  # intervals and p-values can be given
    residual_df: int
    columns: list[str]
    points: pd.DataFrame  # model matrix of the distinct design points, for estimability

    def estimable(self, vector: np.ndarray) -> bool:
        """Whether vector @ beta is the same for every least-squares solution."""
        base = self.points.to_numpy()
        return np.linalg.matrix_rank(np.vstack([base, vector])) == np.linalg.matrix_rank(base)

    def vector(self, weights: dict[str, float]) -> np.ndarray:
        return np.array([weights.get(c, 0.0) for c in self.columns])

    def estimate(self, vector: np.ndarray, alpha: float) -> dict[str, float]:
        """Estimate of vector @ beta, its (1 - alpha) interval and two-sided p."""
        estimate = float(vector @ self.fit.params)
        if not self.claims:
            return {"estimate": estimate, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan}
        se = float(np.sqrt(vector @ self.fit.cov_params() @ vector))
        half = stats.t.ppf(1 - alpha / 2, self.residual_df) * se
        p = float(2 * stats.t.sf(abs(estimate) / se, self.residual_df))
        return {"estimate": estimate, "ci_low": estimate - half, "ci_high": estimate + half, "p": p}


def _collapse(data, factors, response, same_computation, inert, notes) -> pd.DataFrame:
    """One row per computation: rows equal on `same_computation` (inert factors set aside)."""
    if same_computation is None or data.empty:
        return data[[*factors, response]].reset_index(drop=True)
    key = list(dict.fromkeys([c for c in same_computation if c not in inert] + factors))
    collapsed = data.groupby(key, dropna=False, sort=False)[response].mean().reset_index()
    if len(collapsed) < len(data):
        aside = [f for f in inert if f in same_computation]
        aside = f" once {join_words(aside)} are set aside" if aside else ""
        notes.append(
            f"{len(data)} trials are {len(collapsed)} distinct computations (equal on "
            f"{', '.join(key)}{aside}): each counts once, as the mean of its trials."
        )
    return collapsed[[*factors, response]]


def _sorted_levels(values: pd.Series) -> list:
    unique = list(values.drop_duplicates())
    try:
        return sorted(unique)
    except TypeError:
        return sorted(unique, key=str)


def _label(names, factor, value) -> str:
    return names.get(factor, {}).get(value, str(value))


def _setting(names, factor, value) -> str:
    """How a level reads in `within`: its display name alone, or "factor value"."""
    named = names.get(factor, {})
    return named.get(value, f"{factor} {value}")


def _can_claim(fit, residual_df, y, notes) -> bool:
    if fit is None:
        return False
    if residual_df <= 0:
        notes.append(
            "No residual degrees of freedom (as many parameters as design points): "
            "estimates only, no intervals or p-values."
        )
        return False
    spread = float(np.sum((y - y.mean()) ** 2))
    if fit.ssr <= 1e-12 * max(spread, 1e-300):
        notes.append(
            "The model fits every observation exactly (no residual spread): "
            "estimates only, no intervals or p-values."
        )
        return False
    return True


def _model_note(notes, response, kept, observations, design_points, rank, residual_df):
    if not observations:
        notes.append(f"No {response} to model.")
        return
    pure = observations - design_points
    notes.append(
        f"Model: {response} ~ main effects of {join_words(kept) or 'nothing'} (treatment coding, "
        f"least squares) on {observations} observations at {design_points} design points; "
        f"{rank} parameters, residual df {residual_df} ({pure} from repeats of a design point, "
        f"{residual_df - pure} from interactions left out of the model)."
    )


def _within(points, factor, pair, others, names) -> str:
    """Where two levels of `factor` were compared: the other factors' levels at which both
    occur, for each other factor where that is not all of its levels."""
    part = points[points[factor].isin(pair)]
    settings = []
    for other in others:
        shared = [
            level
            for level, group in part.groupby(other, dropna=False)[factor]
            if group.nunique(dropna=False) == len(pair)
        ]
        if not shared:
            settings.append(f"no common {other} (linked through the model)")
        elif len(shared) < points[other].nunique(dropna=False):
            settings.append(" or ".join(_setting(names, other, level) for level in shared))
    return " / ".join(settings)


def _contrasts(model, points, factor, others, levels, names, confounded, notes) -> list[dict]:
    pairs = list(itertools.combinations(levels[factor], 2))
    alpha = (1 - CONFIDENCE) / len(pairs)  # Bonferroni: simultaneous over the factor's pairs
    rows, left_out = [], []
    for low, high in pairs:
        weights = {column_name(factor, high): 1.0}
        if low != levels[factor][0]:
            weights[column_name(factor, low)] = -1.0
        vector = model.vector(weights)
        text = f"{_label(names, factor, high)} - {_label(names, factor, low)}"
        if not model.estimable(vector):
            left_out.append(text)
            continue
        rows.append(
            {
                "factor": factor,
                "contrast": text,
                **model.estimate(vector, alpha),
                "within": _within(points, factor, (low, high), others, names),
                "confounded": ", ".join(confounded.get(factor, [])),
            }
        )
    if left_out:
        notes.append(f"{factor}: not estimable in this design, left out: {', '.join(left_out)}.")
    if len(pairs) > 1:
        ps = [row["p"] for row in rows]
        if rows and not np.isnan(ps).any():
            for row, p in zip(rows, multipletests(ps, method="holm")[1], strict=True):
                row["p"] = float(p)
        notes.append(
            f"{factor}: pairwise contrasts of its {len(levels[factor])} levels; p Holm-adjusted, "
            "intervals Bonferroni-adjusted (together 95%); the joint F-test asks whether any "
            "level differs."
        )
    return rows


def _joint(model, factor, factor_levels, complete: bool) -> dict:
    """F-test that every level of the factor has the same effect (the others held fixed);
    NaN unless every comparison of its levels is estimable."""
    columns = [model.columns.index(column_name(factor, level)) for level in factor_levels[1:]]
    row = {"factor": factor, "levels": len(factor_levels), "df": len(columns)}
    if not (model.claims and complete):
        return {**row, "F": np.nan, "p": np.nan}
    restriction = np.zeros((len(columns), len(model.columns)))
    restriction[range(len(columns)), columns] = 1.0
    test = model.fit.f_test(restriction)
    return {**row, "F": float(np.squeeze(test.fvalue)), "p": float(test.pvalue)}


def _level_means(model, factor, kept, levels, names) -> list[dict]:
    """Marginal mean per level: the model's prediction at that level, the other factors'
    levels weighted equally."""
    base = {"const": 1.0}
    for other in kept:
        if other != factor:
            for level in levels[other][1:]:
                base[column_name(other, level)] = 1 / len(levels[other])
    rows = []
    for level in levels[factor]:
        weights = dict(base)
        if level != levels[factor][0]:
            weights[column_name(factor, level)] = 1.0
        vector = model.vector(weights)
        if model.estimable(vector):
            estimate = model.estimate(vector, 1 - CONFIDENCE)
            estimate.pop("p")
        else:
            estimate = dict.fromkeys(("estimate", "ci_low", "ci_high"), np.nan)
        rows.append({"factor": factor, "level": _label(names, factor, level), **estimate})
    return rows


def _nesting_notes(contrasts: list[dict], notes: list[str]) -> None:
    """One sentence per place where some contrasts were made only inside part of the design."""
    per_factor = pd.Series([row["factor"] for row in contrasts], dtype=object).value_counts()
    by_place: dict[str, list[str]] = {}
    for row in contrasts:
        if row["within"]:
            single = per_factor[row["factor"]] == 1
            label = row["factor"] if single else f"{row['factor']} ({row['contrast']})"
            by_place.setdefault(row["within"], []).append(label)
    for place, what in by_place.items():
        notes.append(
            f"{join_words(what)} compared only within {place}: the estimate assumes the "
            "difference is the same in the rest of the design."
        )
