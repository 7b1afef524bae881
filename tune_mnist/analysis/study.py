"""The study's published numbers beside a run, and the study's claims tested on the run.

The study published one run per configuration, one seed, on its own machine; its tables
(or a space's own) are read by spec/reference.py into one long format.

A run is described by one row per configuration with the config columns and `mean`, `n`,
`ci_low`, `ci_high` (accuracy %, a 95% interval the caller computed) and `interval` (its
kind); `correct` may hold per-image correctness (boolean numpy arrays) for paired tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.configs import ALL_CONFIG_FIELDS, DATASETS
from tune_mnist.spec.reference import squash

STUDY_NOTE = "Study: the published number, one run with one seed on the study's own machine."

# "cannot tell" is followed by its reason in the evidence (the scale, the CPU, the design,
# a p just above alpha): never "at this scale" where the scale is not the reason
SUPPORTED, CONTRADICTED, CANNOT_TELL = "supported", "contradicted", "cannot tell"
CLAIMS = (
    "On MNIST every ResNet configuration is above 99% test accuracy.",
    "pin_memory has minimal effect on accuracy.",
    "ResNet-50 gives no significant advantage over ResNet-18.",
    "RBF beats Poly on both datasets (SVM).",
    "On Fashion-MNIST ResNet-18 gives the best accuracy-to-cost balance; deeper models do "
    "not consistently beat it.",
)


@dataclass(frozen=True)
class Claim:
    """One of the study's claims, judged on a run."""

    text: str
    verdict: str  # SUPPORTED, CONTRADICTED or CANNOT_TELL
    evidence: str  # the numbers the verdict rests on


def study_vs_run(reference: pd.DataFrame, run: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The study's accuracy beside this run's, for the configurations both have.

    Rows follow `run`; reference rows the run lacks are left out (the caller says when a
    run is partial). Keys match robustly: 0.001 equals 1e-3, 'Adam' equals 'adam'.
    Columns: the keys, `study (%)`, `this run (%)`, `difference (pp)` (run - study),
    `95% CI` (this run's), `difference 95% CI` (run - study: the study's one published
    number against this run's interval) and `consistent with the study` ("yes" when the
    difference's interval holds 0, "no", or "—" without an interval).
    """
    if missing := [k for k in keys if k not in reference]:
        raise TuneMnistError(f"the reference table has no {missing[0]!r} column to match on")
    match = [f"_match_{k}" for k in keys]
    ref = reference.assign(
        **{m: reference[k].map(match_value) for m, k in zip(match, keys, strict=True)}
    )
    if ref.duplicated(match).any():
        raise TuneMnistError(
            f"the reference table has several rows for one configuration of {', '.join(keys)}"
        )
    runs = run.assign(**{m: run[k].map(match_value) for m, k in zip(match, keys, strict=True)})
    both = runs.merge(ref[[*match, "study_accuracy"]], on=match, how="inner", sort=False)
    out = both[keys].copy()
    study, mean = both["study_accuracy"].astype(float), both["mean"].astype(float)
    low, high = both["ci_low"].astype(float), both["ci_high"].astype(float)
    out["study (%)"] = study.round(2)
    out["this run (%)"] = mean.round(2)
    out["difference (pp)"] = (mean - study).round(2)
    has_ci = low.notna() & high.notna()
    out["95% CI"] = [
        f"[{lo:.2f}, {hi:.2f}]" if ok else "—" for lo, hi, ok in zip(low, high, has_ci, strict=True)
    ]
    out["difference 95% CI"] = [
        f"[{lo - st:+.2f}, {hi - st:+.2f}]" if ok else "—"
        for lo, hi, st, ok in zip(low, high, study, has_ci, strict=True)
    ]
    inside = (low <= study) & (study <= high)
    out["consistent with the study"] = np.where(has_ci, np.where(inside, "yes", "no"), "—")
    notes = [STUDY_NOTE, *reference.attrs.get("notes", [])]
    if "interval" in both and both["interval"].notna().any():
        kinds = ", ".join(dict.fromkeys(both["interval"].dropna().astype(str)))
        notes.append(f"95% CI of this run: {kinds}.")
    out.attrs["notes"] = notes
    return out.reset_index(drop=True)


def match_value(value) -> str:
    """One spelling per value, for matching configurations: floats by their value
    (0.001 == 1e-3), names lowercased."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return "none"
    if isinstance(value, (bool, np.bool_)):
        return f"bool:{bool(value)}"
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return f"bool:{text == 'true'}"
    try:
        return f"num:{float(text):.10g}"
    except ValueError:
        return f"str:{squash(text)}"


# ---------------------------------------------------------------- the study's claims


def check_claims(
    run: pd.DataFrame,
    *,
    smoke: bool = False,
    inert: set[str] | frozenset[str] = frozenset(),
    alpha: float = 0.05,
    minimal_pp: float = 1.0,
) -> list[Claim]:
    """The study's claims that this run can speak to, each with a verdict and its numbers.

    A claim is left out when the run lacks what it is about (its datasets, models or
    kernels were not run). `inert`: factors that could not act in this run (e.g.
    pin_memory on CPU). `smoke`: a --smoke run (1,000 images, 1 epoch), where no claim
    about the study's scale can be told; the numbers are still quoted. Two rows differ
    significantly by an exact McNemar test when both have `correct` vectors, else when
    their 95% intervals do not overlap (stricter than p < 0.05, so it counts as
    significant at every level used here). Where one claim compares many rows, a row
    contradicts it only after a Bonferroni correction, and supports it only when no row
    is significant before one. `minimal_pp`: the largest effect of pin_memory on
    accuracy that counts as minimal.
    """
    judged = [
        _claim_saturation(run),
        _claim_pin_memory(run, inert, minimal_pp),
        _claim_resnet50(run, alpha),
        _claim_kernels(run, alpha),
        _claim_balance(run, alpha),
    ]
    claims = [c for c in judged if c is not None]
    if smoke:
        claims = [
            Claim(
                c.text,
                CANNOT_TELL,
                "Smoke run (a small sample, 1 epoch per trial), not the study's "
                f"scale. {c.evidence}",
            )
            for c in claims
        ]
    return claims


@dataclass(frozen=True)
class _Versus:
    """Row a against row b: a - b in points, and whether the difference is significant."""

    diff: float
    p: float  # McNemar's; 0 or 1 for separate or overlapping intervals; nan: no test
    text: str
    sign: float  # which is better: the sign of diff, or of McNemar's discordant counts

    def better(self, alpha: float) -> bool:
        return self.p < alpha and self.sign > 0

    def worse(self, alpha: float) -> bool:
        return self.p < alpha and self.sign < 0


def mcnemar_exact(a, b) -> tuple[int, int, float]:
    """Exact McNemar test of two classifiers on the same test images.

    Returns (images only `a` got right, images only `b` got right, two-sided p).
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"correctness vectors differ in length: {a.size} and {b.size}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return only_a, only_b, 1.0
    table = [[int((a & b).sum()), only_a], [only_b, int((~a & ~b).sum())]]
    try:
        from statsmodels.stats.contingency_tables import mcnemar
    except ImportError:  # statsmodels is optional: the exact test is a binomial test
        from scipy.stats import binomtest

        return only_a, only_b, float(binomtest(only_a, only_a + only_b).pvalue)
    return only_a, only_b, float(mcnemar(table, exact=True).pvalue)


def _correct(row: pd.Series):
    value = row.get("correct")
    return value if isinstance(value, (np.ndarray, list, tuple)) else None


def _has_ci(row: pd.Series) -> bool:
    return not (pd.isna(row.get("ci_low")) or pd.isna(row.get("ci_high")))


def _versus(a: pd.Series, b: pd.Series) -> _Versus:
    diff = float(a["mean"]) - float(b["mean"])
    ca, cb = _correct(a), _correct(b)
    if ca is not None and cb is not None:
        only_a, only_b, p = mcnemar_exact(ca, cb)
        text = f"McNemar exact p={p:.2g}, {only_a} vs {only_b} images right in one only"
        return _Versus(diff, p, text, float(only_a - only_b))
    if _has_ci(a) and _has_ci(b):
        apart = a["ci_low"] > b["ci_high"] or b["ci_low"] > a["ci_high"]
        text = "95% CIs " + ("apart" if apart else "overlap")
        return _Versus(diff, 0.0 if apart else 1.0, text, diff)
    return _Versus(diff, math.nan, "no interval", diff)


def _label(row: pd.Series) -> str:
    # e.g. mnist/resnet50/bs16/sgd/lr0.001/e5/pin
    forms = {"batch_size": "bs{}", "lr": "lr{}", "epochs": "e{}", "train_samples": "n{}"}
    parts = []
    for key in ALL_CONFIG_FIELDS:
        value = row.get(key)
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            continue
        if key == "pin_memory":
            parts.append("pin" if value else "nopin")
        elif key in ("momentum", "weight_decay"):
            parts += [f"{key[0]}{_number_text(value)}"] if value else []
        elif key not in ("C", "gamma", "degree"):  # SVC's defaults in every study table
            parts.append(forms.get(key, "{}").format(_number_text(value)))
    return "/".join(parts)


def _number_text(value) -> str:
    # a frame mixing SVM and ResNet rows holds batch sizes as floats: 16.0 reads as 16
    if isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value)) if float(value).is_integer() else f"{value:g}"
    return str(value)


def _acc(row: pd.Series) -> str:
    ci = f" [{row['ci_low']:.2f}, {row['ci_high']:.2f}]" if _has_ci(row) else ""
    return f"{_label(row)} {row['mean']:.2f}%{ci}"


def _rows(run: pd.DataFrame, column: str) -> pd.DataFrame:
    return run[run[column].notna()] if column in run else run.iloc[0:0]


def _pairs(frame: pd.DataFrame, factor: str, a, b) -> list[tuple[pd.Series, pd.Series]]:
    """Rows with factor == a beside rows with factor == b that agree on every other key."""
    others = [c for c in ALL_CONFIG_FIELDS if c in frame and c != factor]
    key = frame[others].map(match_value).apply(tuple, axis=1) if others else None
    pairs = []
    for i in frame.index[frame[factor].map(match_value) == match_value(a)]:
        for j in frame.index[frame[factor].map(match_value) == match_value(b)]:
            if key is None or key[i] == key[j]:
                pairs.append((frame.loc[i], frame.loc[j]))
    return pairs


def _claim_saturation(run: pd.DataFrame) -> Claim | None:
    rows = _rows(run, "model")
    rows = rows[rows["dataset"] == "mnist"] if "dataset" in rows else rows.iloc[0:0]
    if rows.empty:
        return None
    n = len(rows)
    below = rows[rows["ci_high"] < 99]
    no_ci = rows[rows["ci_low"].isna() | rows["ci_high"].isna()]
    lowest = rows.loc[rows["ci_low"].fillna(rows["mean"]).idxmin()]
    if not below.empty:
        shown = "; ".join(_acc(r) for _, r in below.head(3).iterrows())
        return Claim(
            CLAIMS[0],
            CONTRADICTED,
            f"{len(below)} of {n} MNIST configurations have a 95% CI wholly below 99%: {shown}",
        )
    if not no_ci.empty:
        return Claim(
            CLAIMS[0],
            CANNOT_TELL,
            f"{len(no_ci)} of {n} MNIST configurations have no interval; lowest point "
            f"{_acc(rows.loc[rows['mean'].idxmin()])}",
        )
    if (rows["ci_low"] > 99).all():
        return Claim(
            CLAIMS[0],
            SUPPORTED,
            f"all {n} MNIST configurations have a 95% CI above 99%; lowest: {_acc(lowest)}",
        )
    reach = int((rows["ci_low"] <= 99).sum())
    return Claim(
        CLAIMS[0],
        CANNOT_TELL,
        f"{reach} of {n} MNIST 95% CIs reach below 99% but none lies wholly below; "
        f"lowest: {_acc(lowest)}",
    )


def _claim_pin_memory(run: pd.DataFrame, inert, minimal_pp: float) -> Claim | None:
    rows = _rows(run, "model")
    if "pin_memory" not in rows or rows["pin_memory"].map(match_value).nunique() < 2:
        return None
    if "pin_memory" in inert:
        return Claim(
            CLAIMS[1],
            CANNOT_TELL,
            "pin_memory could not act in this run (nothing was pinned, e.g. training on the "
            "CPU or data preloaded on the GPU), so its effect was not measured",
        )
    pairs = _pairs(rows, "pin_memory", True, False)
    if not pairs:
        return Claim(
            CLAIMS[1],
            CANNOT_TELL,
            "no two configurations differ in pin_memory alone: in this design it changes "
            "together with other factors (aliased)",
        )
    diffs, halves = [], []
    for pinned, plain in pairs:
        diffs.append(float(pinned["mean"] - plain["mean"]))
        # approximate 95% half-width of the difference of two independent estimates
        width = [(r["ci_high"] - r["ci_low"]) / 2 for r in (pinned, plain)]
        halves.append(math.hypot(*width) if all(map(_has_ci, (pinned, plain))) else math.nan)
    shown = ", ".join(
        f"{d:+.2f}" + ("" if math.isnan(h) else f" ± {h:.2f}")
        for d, h in zip(diffs, halves, strict=True)
    )
    evidence = (
        f"{len(pairs)} pairs differ in pin_memory alone; pinned - not pinned (pp): {shown}; "
        f"minimal means within ±{minimal_pp:g} pp"
    )
    if any(abs(d) - h > minimal_pp for d, h in zip(diffs, halves, strict=True)):
        return Claim(CLAIMS[1], CONTRADICTED, evidence)
    if all(abs(d) + h <= minimal_pp for d, h in zip(diffs, halves, strict=True)):
        return Claim(CLAIMS[1], SUPPORTED, evidence)
    return Claim(CLAIMS[1], CANNOT_TELL, evidence)


def _claim_resnet50(run: pd.DataFrame, alpha: float) -> Claim | None:
    rows = _rows(run, "model")
    if not {"resnet18", "resnet50"} <= set(rows.get("model", [])):
        return None
    pairs = _pairs(rows, "model", "resnet50", "resnet18")
    if not pairs:
        return Claim(
            CLAIMS[2], CANNOT_TELL, "ResNet-50 and ResNet-18 never share a configuration here"
        )
    tests = [_versus(r50, r18) for r50, r18 in pairs]
    diffs = [t.diff for t in tests]
    n = len(tests)
    better = [(r50, t) for (r50, _), t in zip(pairs, tests, strict=True) if t.better(alpha)]
    strong = [t for t in tests if t.better(alpha / n)]
    worse = sum(t.worse(alpha) for t in tests)
    untested = sum(math.isnan(t.p) for t in tests)
    mean_diff = sum(float(r50["mean"] - r18["mean"]) for r50, r18 in pairs) / n
    evidence = (
        f"{n} configurations run with both models; ResNet-50 - ResNet-18: mean "
        f"{mean_diff:+.2f} pp (from {min(diffs):+.2f} to {max(diffs):+.2f}); ResNet-50 "
        f"significantly better in {len(better)}, worse in {worse}, untested in {untested}"
    )
    if better:
        evidence += ": " + "; ".join(f"{_label(r)} {t.diff:+.2f} ({t.text})" for r, t in better)
    if strong:
        return Claim(CLAIMS[2], CONTRADICTED, evidence + f" (significant after Bonferroni x{n})")
    if better:
        return Claim(CLAIMS[2], CANNOT_TELL, evidence + f" (none after Bonferroni x{n})")
    return Claim(CLAIMS[2], CANNOT_TELL if untested else SUPPORTED, evidence)


def _claim_kernels(run: pd.DataFrame, alpha: float) -> Claim | None:
    rows = _rows(run, "kernel")
    pairs = _pairs(rows, "kernel", "rbf", "poly") if not rows.empty else []
    if not pairs:
        return None
    tests = [_versus(rbf, poly) for rbf, poly in pairs]
    shown = "; ".join(
        f"{rbf.get('dataset', '?')}: RBF {rbf['mean']:.2f}% vs Poly {poly['mean']:.2f}% ({t.text})"
        for (rbf, poly), t in zip(pairs, tests, strict=True)
    )
    datasets = {rbf.get("dataset") for rbf, _ in pairs}
    if any(t.worse(alpha / len(tests)) for t in tests):
        return Claim(CLAIMS[3], CONTRADICTED, shown)
    if all(t.better(alpha) for t in tests) and set(DATASETS) <= datasets:
        return Claim(CLAIMS[3], SUPPORTED, shown)
    if not set(DATASETS) <= datasets:
        shown += f"; only {', '.join(sorted(map(str, datasets)))} ran"
    short = [
        str(rbf.get("dataset", "?"))
        for (rbf, _), t in zip(pairs, tests, strict=True)
        if not t.better(alpha)
    ]
    if short:  # the reason, said: a lead short of significance, not the scale
        shown += f"; RBF's lead is not significant at {alpha:g} on {', '.join(short)}"
    return Claim(CLAIMS[3], CANNOT_TELL, shown)


def _claim_balance(run: pd.DataFrame, alpha: float) -> Claim | None:
    rows = _rows(run, "model")
    rows = rows[rows["dataset"] == "fashion-mnist"] if "dataset" in rows else rows.iloc[0:0]
    if rows.empty:
        return None
    r18 = rows[rows["model"] == "resnet18"]
    deep = rows[rows["model"].isin(["resnet34", "resnet50"])]
    if r18.empty or deep.empty:
        return None
    best = r18.loc[r18["mean"].idxmax()]
    tests = [_versus(row, best) for _, row in deep.iterrows()]
    beat = sum(t.better(alpha) for t in tests)
    top = deep.loc[deep["mean"].idxmax()]

    def cost(row):
        return f" at {row['gflops']:.4f} GFLOPs" if pd.notna(row.get("gflops")) else ""

    evidence = (
        f"best ResNet-18: {_acc(best)}{cost(best)}; best deeper: {_acc(top)}{cost(top)}; "
        f"{beat} of {len(tests)} deeper configurations significantly more accurate than "
        "the best ResNet-18 (ResNet-18 costs the fewest FLOPs per image)"
    )
    if any(math.isnan(t.p) for t in tests):
        return Claim(CLAIMS[4], CANNOT_TELL, evidence + "; some rows have no interval")
    if beat == 0:
        return Claim(CLAIMS[4], SUPPORTED, evidence)
    if beat == len(tests) >= 2:
        return Claim(CLAIMS[4], CONTRADICTED, evidence)
    return Claim(CLAIMS[4], CANNOT_TELL, evidence + ": more accuracy for more compute")
