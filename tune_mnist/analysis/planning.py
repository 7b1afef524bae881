"""How many repeats a comparison needs, planned from a pilot experiment's seeds.

The pilot's seed-to-seed spread is pooled over its configurations (per dataset: spreads
differ between datasets), and statsmodels' power analysis for a two-sided two-sample t-test
turns the difference to detect into seeds per configuration. The pilot's own size enters
only through the estimate of the spread: a pilot of 2 seeds gives a rough one, said so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from tune_mnist.analysis.table import DATASET_NAMES
from tune_mnist.errors import TuneMnistError
from tune_mnist.store.results import numbers

ALPHA, POWER = 0.05, 0.8


@dataclass(frozen=True)
class RepeatPlan:
    """Seeds per configuration to detect `detect` points on one dataset."""

    dataset: str
    sd: float  # pooled seed-to-seed standard deviation, points
    df: int  # its degrees of freedom: seeds - configurations
    configurations: int  # of the pilot that had 2+ finished seeds
    detect: float  # points
    repeats: int  # seeds per configuration

    def describe(self) -> str:
        name = DATASET_NAMES.get(self.dataset, self.dataset)
        rough = " (a rough estimate: few seeds)" if self.df < 10 else ""
        return (
            f"{name}: seed-to-seed SD {self.sd:.2f} points, pooled over {self.configurations} "
            f"configurations ({self.df} degrees of freedom){rough}; to detect {self.detect:g} "
            f"points between two configurations with power {POWER:g} at alpha {ALPHA:g} "
            f"(two-sided t-test): {self.repeats} seeds each (repeats: {self.repeats})."
        )


def plan_repeats(results: pd.DataFrame, keys: list[str], detect: float) -> list[RepeatPlan]:
    """Per dataset of a pilot's results: the repeats that detect `detect` points (see the
    module's note). `keys`: the configuration's fields, the seed aside."""
    from statsmodels.stats.power import TTestIndPower

    if not detect > 0:
        raise TuneMnistError(f"--detect: expected a difference in points above 0, got {detect:g}")
    done = results[results["status"] == "finished"].assign(
        _acc=lambda f: numbers(f, "test_accuracy")
    )
    plans = []
    for dataset, part in done.groupby("dataset", sort=False):
        groups = [g["_acc"].dropna() for _, g in part.groupby(keys, sort=False, dropna=False)]
        groups = [g for g in groups if len(g) >= 2]
        df = sum(len(g) - 1 for g in groups)
        if not df:
            continue
        sd = math.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / df)
        if sd == 0:
            repeats = 2  # no spread at all: the smallest that still estimates one
        else:
            n = TTestIndPower().solve_power(effect_size=detect / sd, alpha=ALPHA, power=POWER)
            repeats = max(2, math.ceil(n))
        plans.append(RepeatPlan(str(dataset), sd, df, len(groups), detect, repeats))
    if not plans:
        raise TuneMnistError(
            "the pilot has no configuration with 2 or more finished seeds: run it with "
            "--repeats 2 (or more) to estimate the seeds' spread"
        )
    return plans
