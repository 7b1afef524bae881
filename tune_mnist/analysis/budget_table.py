"""The report's budget table: which trials a run's budget left out, and what it spent."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tune_mnist.spec.budget import describe, duration
from tune_mnist.store.experiment import ExperimentMeta


@dataclass(frozen=True)
class BudgetReport:
    """What the report says about a budget: a table of what did not run, and notes."""

    left_out: pd.Series  # per trial (results' index): not run, or stopped, by the budget
    frame: pd.DataFrame  # label, status of the trials left out
    notes: list[str]


def budget_report(meta: ExperimentMeta, results: pd.DataFrame) -> BudgetReport | None:
    """What the latest run's budget left out; None when the run had no budget."""
    run = meta.run
    if not run.budget:
        return None
    spent = f"{duration(run.spent_s)} of wall-clock time"
    if "gpu_seconds" in results:
        spent += f", {results['gpu_seconds'].fillna(0).sum():,.1f} GPU-seconds"
    budget = f"Budget: {describe(run.budget)}; spent {spent}."
    none = pd.Series(False, index=results.index)
    if run.stopped is None:
        return BudgetReport(none, pd.DataFrame(columns=["label", "status"]), [budget])
    left = results["status"].isin(["pending", "running"])
    frame = results.loc[left, ["label", "status"]].replace(
        {"status": {"pending": "not started", "running": "stopped"}}
    )
    frame.insert(0, "#", results.index[left] + 1)
    done = int((results["status"] == "finished").sum())
    notes = [
        f"The sweep stopped on its budget ({run.stopped}): {done} of {len(results)} trials "
        f"finished, {int(left.sum())} did not run to the end (listed). "
        "`tune-mnist sweep SPACE --extend EXPERIMENT` runs them, reusing the finished ones.",
        budget,
    ]
    return BudgetReport(left, frame.reset_index(drop=True), notes)
