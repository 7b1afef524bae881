"""The report's tables about the design and the study: factor effects from a linear model of
the design (effects.py), and the study's published numbers beside this run with its
claims tested (study.py)."""

from __future__ import annotations

import pandas as pd

from tune_mnist.analysis import study
from tune_mnist.analysis.configurations import configurations
from tune_mnist.analysis.effects import design_effects
from tune_mnist.analysis.table import (
    DATASET_NAMES,
    FACTORS,
    LEVEL_NAMES,
    Run,
    Table,
    display_frame,
    interval_text,
    metric,
    sgd_momentum,
)
from tune_mnist.errors import TuneMnistError
from tune_mnist.spec import reference
from tune_mnist.spec.configs import CONFIG_FIELDS
from tune_mnist.store.experiment import ExperimentMeta


def _level_names(results: pd.DataFrame) -> dict:
    """LEVEL_NAMES, with SGD named with its momentum when it ran with one: the effect of
    the optimizer is then that of SGD with that momentum against Adam."""
    momentum = sgd_momentum(results)
    if momentum is None:
        return LEVEL_NAMES
    optimizer = {**LEVEL_NAMES["optimizer"], "sgd": f"SGD (momentum {momentum:g})"}
    return {**LEVEL_NAMES, "optimizer": optimizer}


def effects_tables(run: Run) -> tuple[list[Table], dict[str, pd.DataFrame]]:
    """Effects of each design factor on test accuracy, per dataset, from a linear model;
    and each dataset's model-based level means (for the effects figure)."""
    tables, levels = [], {}
    results = run.results.assign(test_accuracy=metric(run.results, "test_accuracy"))
    for dataset, part in results.groupby("dataset", sort=False):
        part = part[part["status"] == "finished"]
        factors = [f for f in FACTORS if f in part and part[f].nunique() > 1]
        if not factors or part.empty:
            continue
        found = design_effects(
            part,
            factors,
            "test_accuracy",
            inert=run.inert,
            same_computation=[k for k in (*CONFIG_FIELDS["resnet"], "seed") if k in part],
            names=_level_names(part),
        )
        levels[dataset] = found.levels
        name = DATASET_NAMES.get(dataset, dataset)
        if found.cells is not None:  # the factors interact: cell means, no main effects
            cells = found.cells
            frame = display_frame(cells, [c for c in cells if c not in ("mean", "std", "n")])
            frame = frame.assign(
                **{"test accuracy (%)": cells["mean"], "± std": cells["std"], "n": cells["n"]}
            )
            title = f"{run.space.name}: cell means (the factors interact), {name}"
            tables.append(Table(f"{run.space.name}-effects-{dataset}", title, frame, found.notes))
            continue
        frame = found.contrasts.assign(
            estimate=found.contrasts["estimate"].round(2) + 0.0,  # no "-0.0"
            CI=[
                interval_text(lo, hi)
                for lo, hi in zip(
                    found.contrasts["ci_low"], found.contrasts["ci_high"], strict=True
                )
            ],
            p=found.contrasts["p"].map(lambda p: "—" if pd.isna(p) else f"{p:.3g}"),
        )
        frame = frame[["factor", "contrast", "estimate", "CI", "p", "within", "confounded"]].rename(
            columns={"estimate": "effect on accuracy (pp)", "CI": "95% CI"}
        )
        notes = [
            "Effects: ordinary least squares on the main effects of the factors (statsmodels), "
            "each contrast adjusted for the other factors; identical computations count once."
        ]
        joint = found.joint[found.joint["levels"] > 2] if not found.joint.empty else found.joint
        for _, j in joint.iterrows():
            p = "—" if pd.isna(j["p"]) else f"{j['p']:.3g}"
            notes.append(
                f"{j['factor']}: joint F-test of its {j['levels']} levels, "
                f"F = {j['F']:.2f}, p = {p}."
            )
        notes += found.notes
        title = f"{run.space.name}: factor effects, {name}"
        tables.append(Table(f"{run.space.name}-effects-{dataset}", title, frame, notes))
    return tables, levels


def study_tables(run: Run) -> list[Table]:
    """The study's published accuracies beside this run's, and its claims tested."""
    try:
        reference = reference_of(run.meta)
    except TuneMnistError as e:  # the table was readable when the sweep started
        return [
            Table(
                f"{run.space.name}-study", f"{run.space.name}: the study", pd.DataFrame(), [str(e)]
            )
        ]
    if reference is None:
        return []
    keys = [k for k in CONFIG_FIELDS[run.meta.trainable] if k in reference and k in run.results]
    summary = configurations(run, keys)
    if summary.empty:
        return []
    matched = study.study_vs_run(reference, summary, keys)
    tables = []
    if not matched.empty:
        frame = display_frame(matched, keys).join(matched.drop(columns=keys))
        notes = list(matched.attrs.get("notes", []))
        notes.append(
            f"{len(matched)} of the study's {len(reference)} configurations ran here"
            + (" (the rest were not part of this run)." if len(matched) < len(reference) else ".")
        )
        if run.meta.smoke:
            notes.append("A smoke run: its numbers are not at the study's scale.")
        exact = matched["difference (pp)"].abs().max() == 0
        frame["difference (pp)"] = matched["difference (pp)"].map(lambda d: f"{d:+.2f}")
        if exact:
            notes.append("Every accuracy here equals the study's to the two decimals it printed.")
        tables.append(
            Table(
                f"{run.space.name}-study", f"{run.space.name}: the study and this run", frame, notes
            )
        )
    claims = study.check_claims(summary, smoke=run.meta.smoke, inert=set(run.inert))
    if claims:
        frame = pd.DataFrame(
            [{"claim": c.text, "verdict": c.verdict, "evidence": c.evidence} for c in claims]
        )
        tables.append(
            Table(f"{run.space.name}-claims", f"{run.space.name}: the study's claims", frame)
        )
    return tables


def reference_of(meta: ExperimentMeta) -> pd.DataFrame | None:
    """The published numbers a space names (`reference:`), in reference.load_reference's form.

    Experiments of the built-in spaces made before spaces named their reference get it by
    the space's name.
    """
    if meta.space.reference:
        return reference.load_reference(meta.space.reference, meta.space.fixed.get("dataset"))
    if meta.space_source == f"{meta.name}.yaml":
        return reference.builtin_reference(meta.name)
    return None
