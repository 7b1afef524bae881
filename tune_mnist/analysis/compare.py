"""Two experiments side by side: configurations matched by their fields, each match's two
accuracies, the difference with the test the data allows, and the train-time ratio.

Typical uses: before and after a code change, CPU against GPU, two machines, two settings
of one factor run as separate experiments. A configuration is matched on every field both
experiments record (the seed aside; 0.001 equals 1e-3). The difference B - A is tested
with an exact McNemar test when both sides are single runs that saved their predictions
on the same test images (paired), else with an interval for two independent accuracies
(Newcombe's, from the test counts; Welch's over seeds when both have several).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tune_mnist.analysis import stats
from tune_mnist.analysis.configurations import config_keys, configurations
from tune_mnist.analysis.study import match_value
from tune_mnist.analysis.table import Run
from tune_mnist.analysis.tables import inert_factors
from tune_mnist.errors import TuneMnistError
from tune_mnist.store.opened import Experiment, open_experiment
from tune_mnist.store.results import load_experiment


@dataclass(frozen=True)
class Comparison:
    """The matched configurations (one row each) and what could not be matched."""

    a: str
    b: str
    keys: list[str]  # the fields configurations were matched on
    frame: pd.DataFrame
    only_a: int  # configurations of A with no match in B
    only_b: int
    settings: dict[str, tuple]  # fields one value each side, differing: (A's, B's)

    def to_dict(self) -> dict:
        """What `compare --json` prints: the two, the matching, each configuration."""
        return {
            "a": self.a,
            "b": self.b,
            "keys": self.keys,
            "settings": self.settings,
            "only_a": self.only_a,
            "only_b": self.only_b,
            "configurations": self.frame.to_dict(orient="records"),
        }

    def notes(self) -> list[str]:
        notes = [
            f"Matched on {', '.join(self.keys)}; difference = B - A in points, 95% CI.",
            *(
                f"{k}: {a} in A, {b} in B (what the comparison is about)."
                for k, (a, b) in self.settings.items()
            ),
            "Time ratio = B / A of mean train time; * where either side shared its node "
            "with other trials for more than 10% of the time (not a speed figure).",
        ]
        if self.only_a or self.only_b:
            notes.append(
                f"Unmatched: {self.only_a} configurations only in A, {self.only_b} only in B."
            )
        return notes


def _run(experiment: str | Experiment) -> tuple[Run, list[str]]:
    opened = open_experiment(experiment)
    loaded = load_experiment(opened)
    meta, results = loaded.meta, loaded.results
    run = Run(meta, results, loaded.predictions, inert_factors(results, meta))
    return run, config_keys(meta, results)


def compare(a: str | Experiment, b: str | Experiment) -> Comparison:
    """Compare experiment B with experiment A, configuration by configuration."""
    run_a, keys_a = _run(a)
    run_b, keys_b = _run(b)
    if run_a.meta.trainable != run_b.meta.trainable:
        raise TuneMnistError(
            f"cannot compare a {run_a.meta.trainable} experiment with a "
            f"{run_b.meta.trainable} one: no configuration can match"
        )
    common = [k for k in keys_a if k in keys_b]
    left, right = configurations(run_a, common), configurations(run_b, common)
    if left.empty or right.empty:
        empty = "A" if left.empty else "B"
        raise TuneMnistError(f"experiment {empty} has no finished trial to compare")
    # a field with one value on each side, not the same (C = 1 against C = 10): what the
    # two experiments compare, not something to match on
    settings = {
        k: (left[k].iloc[0], right[k].iloc[0])
        for k in common
        if left[k].map(match_value).nunique() == 1
        and right[k].map(match_value).nunique() == 1
        and match_value(left[k].iloc[0]) != match_value(right[k].iloc[0])
    }
    keys = [k for k in common if k not in settings]
    match = {k: f"_m_{k}" for k in keys}
    for frame in (left, right):
        for key, column in match.items():
            frame[column] = frame[key].map(match_value)
    both = left.merge(right, on=list(match.values()), suffixes=("_a", "_b"))
    rows = [_row(pair, keys, run_a, run_b) for _, pair in both.iterrows()]
    return Comparison(
        a=str(a),
        b=str(b),
        keys=keys,
        frame=pd.DataFrame(rows),
        only_a=len(left) - len(both),
        only_b=len(right) - len(both),
        settings=settings,
    )


def _row(pair: pd.Series, keys: list[str], run_a: Run, run_b: Run) -> dict:
    a = pd.Series({k[:-2]: v for k, v in pair.items() if k.endswith("_a")})
    b = pd.Series({k[:-2]: v for k, v in pair.items() if k.endswith("_b")})
    low, high, p, test = _difference(a, b, run_a, run_b)
    contended = bool(a["contended"] or b["contended"])
    ratio = b["time_ms"] / a["time_ms"] if a["time_ms"] else math.nan
    return {
        **{k: a[k] for k in keys},
        "A (%)": round(float(a["mean"]), 2),
        "B (%)": round(float(b["mean"]), 2),
        "n A": int(a["n"]),
        "n B": int(b["n"]),
        "difference (pp)": round(float(b["mean"] - a["mean"]), 2),
        "95% CI": "—" if math.isnan(low) else f"[{low:.2f}, {high:.2f}]",
        "p": p,
        "test": test,
        "time ratio": "—" if math.isnan(ratio) else f"{ratio:.2f}" + (" *" if contended else ""),
    }


def _difference(a: pd.Series, b: pd.Series, run_a: Run, run_b: Run):
    """(low, high, p, test) of B - A in points; p NaN for an interval without a test."""
    ca, cb = a["correct"], b["correct"]
    if a["n"] == 1 and b["n"] == 1 and ca is not None and cb is not None and len(ca) == len(cb):
        return (*stats.mcnemar_difference(cb, ca), "exact McNemar (paired)")
    if a["n"] >= 2 and b["n"] >= 2:
        found = stats.welch_difference(a["samples"], b["samples"])
        if found is not None:
            return (*found, "Welch t over seeds")
    if a["n"] == 1 and b["n"] == 1:
        from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

        (right_a, total_a), (right_b, total_b) = _counts(a, run_a), _counts(b, run_b)
        low, high = confint_proportions_2indep(
            right_b, total_b, right_a, total_a, method="newcomb", compare="diff"
        )
        p = float(test_proportions_2indep(right_b, total_b, right_a, total_a).pvalue)
        return 100 * low, 100 * high, p, "two independent accuracies (Newcombe)"
    return math.nan, math.nan, math.nan, "none: one run against several seeds"


def _counts(config: pd.Series, run: Run) -> tuple[int, int]:
    """Right and total test images of a single run (from its predictions, or its accuracy)."""
    if config["correct"] is not None:
        return int(np.sum(config["correct"])), len(config["correct"])
    total = run.meta.data[config["dataset"]].test if "dataset" in config else 0
    return round(config["mean"] * total / 100), total
