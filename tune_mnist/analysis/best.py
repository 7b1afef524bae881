"""The best configuration of an experiment, chosen where it should be, and the report's
tables of a search: what was chosen on which set, and what early stopping stopped.

With a validation split (split.py) the best configuration is chosen on validation
accuracy and its test accuracy is then reported, a number the choice never saw; without
one it is chosen on the test set it is scored on, which flatters it, and this is said.
Trials stopped early are never candidates: they did not finish.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tune_mnist.analysis import stats
from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.configs import CONFIG_FIELDS
from tune_mnist.spec.search import Search, plan
from tune_mnist.spec.spaces import distributions, grid_configurations
from tune_mnist.store.experiment import ExperimentMeta, Predictions
from tune_mnist.store.opened import Experiment, open_experiment
from tune_mnist.store.results import STOPPED_EARLY, is_sampled, load_experiment, numbers

SHOWN = 10  # configurations in the report's ranking


@dataclass(frozen=True)
class Best:
    """The chosen configuration: its config, the set that chose it, its test accuracy."""

    experiment: str
    name: str  # the space's
    chosen_on: str  # "validation" or "test"
    metric: str  # the accuracy column chosen on
    mode: str  # "max" or "min"
    row: int  # its number in the report's tables
    label: str
    config: dict[str, Any]  # the trial's keys, the seed aside
    seeds: int  # finished trials of this configuration (its repeats)
    validation_accuracy: float | None  # %, mean over its seeds; None without a split
    validation_images: int | None  # held out per trial
    test_accuracy: float  # %, mean over its seeds
    ci_low: float  # 95% interval of the test accuracy
    ci_high: float
    interval: str  # how it was made: "Wilson (test sampling)" or "t over seeds"
    configurations: int  # configurations that competed (finished)
    trials: int  # finished trials that competed
    stopped_early: int  # trials stopped early, not candidates
    planned: int | None = None  # trials a sampled search set out to run
    smoke: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> list[str]:
        """The choice in a few lines of text."""
        chooser = (
            f"validation accuracy ({self.validation_images:,} held-out training images)"
            if self.chosen_on == "validation"
            else "test accuracy (the set it is scored on: optimistic)"
        )
        lines = [
            f"{self.name}: best of {self.configurations} configurations ({self.trials} finished "
            f"trials), chosen on {chooser}" + (" [SMOKE RUN]" if self.smoke else ""),
            f"  #{self.row} {self.label}",
        ]
        if self.validation_accuracy is not None:
            lines.append(f"  validation accuracy: {self.validation_accuracy:.2f}%")
        lines.append(
            f"  test accuracy: {self.test_accuracy:.2f}% (95% CI {_interval(self)}, "
            f"{self.interval}, n = {self.seeds})"
        )
        lines.append("  config: " + ", ".join(f"{k}={_show(v)}" for k, v in self.config.items()))
        return lines + [f"  {note}" for note in self.notes]


def _interval(best: Best) -> str:
    if math.isnan(best.ci_low) or math.isnan(best.ci_high):
        return "—"
    return f"[{best.ci_low:.2f}, {best.ci_high:.2f}]"


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def search_of(meta: ExperimentMeta) -> Search | None:
    """The search an experiment ran (search.plan of its saved space); None for a grid."""
    return plan(meta.space, distributions(meta.space, meta.space_source), meta.space_source)


def best_configuration(experiment: str | Path | Experiment) -> Best:
    """The best configuration of an experiment (see find_best)."""
    opened = open_experiment(experiment)
    loaded = load_experiment(opened)
    return find_best(loaded.results, loaded.meta, loaded.predictions, opened.shown)


def find_best(
    results: pd.DataFrame,
    meta: ExperimentMeta,
    predictions: dict[str, Predictions] | None = None,
    experiment: str = "",
) -> Best:
    """The finished configuration with the best mean accuracy over its seeds, on
    validation when the space held a split out, else on test; raises TuneMnistError when
    no trial finished."""
    ranked, metric, mode = rank(results, meta, predictions or {})
    if ranked.empty:
        raise TuneMnistError(f"{experiment or meta.name}: no finished trial to choose from")
    top = ranked.iloc[0]
    search = search_of(meta)
    notes = []
    if search and search.samples:
        ran = len(results) - int((results["status"] == "pending").sum())
        planned = search.trial_count(grid_configurations(meta.space))
        if ran < planned:
            notes.append(f"{ran} of the {planned} planned trials ran.")
    stopped = int((results["status"] == STOPPED_EARLY).sum())
    if stopped:
        notes.append(f"{stopped} trial(s) stopped early by ASHA: not candidates.")
    validation = numbers(results, "validation_images").dropna()
    return Best(
        experiment=experiment,
        name=meta.name,
        chosen_on="validation" if metric == "validation_accuracy" else "test",
        metric=metric,
        mode=mode,
        row=int(top["row"]),
        label=top["label"],
        config=top["config"],
        seeds=int(top["n"]),
        validation_accuracy=_number(top.get("validation")),
        validation_images=int(validation.iloc[0]) if len(validation) else None,
        test_accuracy=float(top["test"]),
        ci_low=float(top["ci_low"]),
        ci_high=float(top["ci_high"]),
        interval=top["interval"],
        configurations=len(ranked),
        trials=int(ranked["n"].sum()),
        stopped_early=stopped,
        planned=search.trial_count(grid_configurations(meta.space))
        if search and search.samples
        else None,
        smoke=meta.smoke,
        notes=notes,
    )


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def rank(
    results: pd.DataFrame, meta: ExperimentMeta, predictions: dict[str, Predictions]
) -> tuple[pd.DataFrame, str, str]:
    """Finished configurations, best first: per `row`, the mean chosen-on and test
    accuracy over its seeds and the test accuracy's interval; and the metric and mode."""
    search = search_of(meta)
    has_validation = numbers(results, "validation_accuracy").notna().any()
    metric = search.metric if search else "test_accuracy"
    if has_validation and not (search and search.metric == "test_accuracy"):
        metric = "validation_accuracy"
    mode = search.mode if search else "max"
    done = results[results["status"] == "finished"].assign(
        _test=lambda f: numbers(f, "test_accuracy"),
        _valid=lambda f: numbers(f, "validation_accuracy"),
    )
    scored = done["_valid"].notna() if metric == "validation_accuracy" else True
    done = done[done["_test"].notna() & scored]
    keys = [k for k in _config_keys(meta) if k in done and k != "seed"]
    rows = []
    for row, group in done.groupby("row", sort=False):
        first = group.iloc[0]
        entry = {
            "row": int(row),
            "label": first["label"],
            "config": {k: _plain(first[k]) for k in keys},
            "n": len(group),
            "test": group["_test"].mean(),
            "validation": group["_valid"].mean() if group["_valid"].notna().any() else None,
        }
        entry |= _test_interval(group, meta, predictions)
        rows.append(entry)
    ranked = pd.DataFrame(rows)
    if ranked.empty:
        return ranked, metric, mode
    score = ranked["validation" if metric == "validation_accuracy" else "test"].astype(float)
    order = score.sort_values(ascending=mode == "min", kind="stable").index
    return ranked.loc[order].reset_index(drop=True), metric, mode


def _config_keys(meta: ExperimentMeta) -> list[str]:
    return [*CONFIG_FIELDS[meta.trainable], "seed"]


def _plain(value: Any) -> Any:
    """A DataFrame cell as a plain Python value (for JSON)."""
    return value.item() if hasattr(value, "item") else value


def _test_interval(group: pd.DataFrame, meta: ExperimentMeta, predictions) -> dict:
    """A t-interval over seeds, or one run's Wilson interval over the test images."""
    if len(group) > 1:
        described = stats.describe(group["_test"])
        low, high = max(described["ci_low"], 0.0), min(described["ci_high"], 100.0)
        return {"ci_low": low, "ci_high": high, "interval": "t over seeds"}
    trial = group.iloc[0]
    saved = predictions.get(trial["trial_dir"])
    if saved is not None:
        right, total = int(saved.correct.sum()), len(saved.correct)
    else:  # predictions not saved: the count follows from the accuracy
        total = meta.data[trial["dataset"]].test
        right = round(trial["_test"] * total / 100)
    low, high = stats.wilson_interval(right, total)
    return {"ci_low": low, "ci_high": high, "interval": "Wilson (test sampling)"}


__all__ = ["Best", "best_configuration", "find_best", "is_sampled"]
