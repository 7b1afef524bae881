"""One row per configuration of an experiment: its trials grouped, with the mean, spread
and the interval its accuracy has (seeds, or the test sampling of a single run)."""

from __future__ import annotations

import pandas as pd

from tune_mnist.analysis import stats
from tune_mnist.analysis.table import (
    CONTENDED,
    Run,
    metric,
)
from tune_mnist.spec.configs import trial_to_dict
from tune_mnist.store.experiment import ExperimentMeta
from tune_mnist.store.results import numbers


def configurations(run: Run, keys: list[str]) -> pd.DataFrame:
    """One row per configuration (the `keys`), with the numbers every table draws on.

    Columns: the keys, `row` (its number in the tables), `n`, `mean`, `std`, `ci_low`,
    `ci_high`, `interval` (how the CI was made), `samples` (accuracy per seed), `correct`
    (per-image correctness of a single run, or None), `same_as` (the row of an earlier
    configuration that was the same computation, or None), `epochs_trained`, `time_ms`,
    `time_std`, `contended`, and the mean of gflops / params_m where reported.
    """
    results = run.results.assign(
        _acc=metric(run.results, "test_accuracy"),
        _time=metric(run.results, "train_time_ms"),
        _epochs=metric(run.results, "epoch"),
        _shared=numbers(run.results, "shared_node_fraction"),
    )
    results = results[results["status"] == "finished"]
    computation = [k for k in keys if k not in run.inert and k != "epochs"]
    rows, seen = [], {}
    for values, group in results.groupby(keys, sort=False, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        described = stats.describe(group["_acc"])
        # an accuracy lies in [0, 100] whatever a t-interval of a few seeds says
        described["ci_low"] = max(described["ci_low"], 0.0)
        described["ci_high"] = min(described["ci_high"], 100.0)
        row = {**dict(zip(keys, values, strict=True)), "row": int(group["row"].iloc[0])}
        row |= described | {"samples": group["_acc"].to_numpy(), "correct": None}
        row["interval"] = "t over seeds" if described["n"] > 1 else "Wilson (test sampling)"
        if described["n"] == 1:
            row |= _single_run(run, group.iloc[0])
        trained = tuple(sorted(group["_epochs"].dropna().astype(int).unique()))
        identity = (tuple(group[computation].iloc[0]), trained, tuple(sorted(group["seed"])))
        row["same_as"] = seen.setdefault(identity, row["row"])
        row["same_as"] = None if row["same_as"] == row["row"] else row["same_as"]
        row["epochs_trained"] = (
            " to ".join(map(str, sorted({trained[0], trained[-1]}))) if trained else ""
        )
        row["time_ms"], row["time_std"] = group["_time"].mean(), group["_time"].std()
        row["contended"] = bool((group["_shared"] > CONTENDED).any())
        for extra in ("gflops", "params_m"):
            if extra in group:
                row[extra] = numbers(group, extra).mean()
        rows.append(row)
    return pd.DataFrame(rows).sort_values("row", ignore_index=True) if rows else pd.DataFrame()


def _single_run(run: Run, trial: pd.Series) -> dict:
    """A single run's correctness vector (when saved) and its Wilson interval."""
    saved = run.predictions.get(trial["trial_dir"])
    if saved is not None:
        correct = saved.correct
        right, total = int(correct.sum()), len(correct)
    else:  # predictions not saved (older experiments): the count follows from the accuracy
        correct, total = None, run.meta.data[trial["dataset"]].test
        right = round(trial["_acc"] * total / 100)
    low, high = stats.wilson_interval(right, total)
    return {"correct": correct, "ci_low": low, "ci_high": high}


def config_keys(meta: ExperimentMeta, results: pd.DataFrame) -> list[str]:
    """The fields that make a configuration of an experiment, in its trials' order: every
    key its trials declare, the trainable and the seed aside, that its results hold."""
    declared = dict.fromkeys(k for t in meta.trials for k in trial_to_dict(t))
    return [k for k in declared if k not in ("trainable", "seed") and k in results]
