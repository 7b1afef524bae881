"""What a design can estimate: the model matrix of treatment-coded main effects, which
factors it can tell apart, and which main effects are confounded with a two-factor
interaction. Pure: plain sentences go into the `notes` list given, nothing is printed.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd


def column_name(factor, level) -> str:
    return f"{factor}[{level}]"


def model_matrix(frame: pd.DataFrame, factors: list[str], levels: dict) -> pd.DataFrame:
    """Intercept and treatment-coded main effects (first sorted level is the reference)."""
    columns = {"const": np.ones(len(frame))}
    for factor in factors:
        for level in levels[factor][1:]:
            columns[column_name(factor, level)] = (frame[factor] == level).to_numpy(float)
    return pd.DataFrame(columns, index=frame.index)


def design_rank(points, factors, levels) -> int:
    return np.linalg.matrix_rank(model_matrix(points, factors, levels).to_numpy())


def estimable_factors(points, active, levels, notes) -> tuple[list[str], dict[str, list[str]]]:
    """Factors the main-effects model can estimate, in order; notes on the ones it cannot.

    A factor whose columns add nothing to the rank of the factors before it cannot be told
    apart from them; the smallest such set is named.
    """
    kept: list[str] = []
    confounded: dict[str, list[str]] = {}
    for factor in active:
        gain = design_rank(points, [*kept, factor], levels) - design_rank(points, kept, levels)
        if gain == len(levels[factor]) - 1:
            kept.append(factor)
            continue
        if gain > 0:
            kept.append(factor)
            notes.append(f"{factor}: only some comparisons of its levels can be estimated.")
            continue
        partners = next(
            list(subset)
            for size in range(1, len(kept) + 1)
            for subset in itertools.combinations(kept, size)
            if design_rank(points, [*subset, factor], levels)
            == design_rank(points, list(subset), levels)
        )
        one_to_one = len(partners) == 1 and design_rank(points, [factor], levels) == design_rank(
            points, [factor, *partners], levels
        )
        if one_to_one:
            notes.append(
                f"{partners[0]} and {factor} always change together: one effect, "
                f"reported as {partners[0]}."
            )
            confounded.setdefault(partners[0], []).append(factor)
        else:
            for partner in partners:
                confounded.setdefault(partner, []).append(factor)
            notes.append(
                f"{factor} cannot be told apart from {join_words(partners)}: its changes always "
                "come with theirs, so it is not estimated."
            )
    return kept, confounded


def interaction_aliases(points, kept, levels, confounded, notes) -> dict[str, list[str]]:
    """Main effects confounded with the interaction of two other factors.

    F is confounded with G x H when F's level is fixed by the (G, H) combination yet not by
    G and H additively: e.g. each factor of a 2^(3-1) half fraction.
    """
    found: dict[str, list[tuple[str, str]]] = {}
    for factor in kept:
        for g, h in itertools.combinations([f for f in kept if f != factor], 2):
            fixed = points.groupby([g, h], dropna=False)[factor].nunique().max() == 1
            if fixed and design_rank(points, [g, h, factor], levels) > design_rank(
                points, [g, h], levels
            ):
                found.setdefault(factor, []).append((g, h))
    reported = set()
    for factor, pairs in found.items():
        for g, h in pairs:
            confounded.setdefault(factor, []).append(f"{g} x {h}")
            trio = frozenset((factor, g, h))
            mutual = all(
                any(set(pair) == trio - {member} for pair in found.get(member, []))
                for member in trio
            )
            if not mutual:
                notes.append(
                    f"{factor} is confounded with the {g} x {h} interaction (its estimate "
                    "assumes that interaction is zero)."
                )
            elif trio not in reported:
                reported.add(trio)
                notes.append(
                    f"{join_words([f for f in kept if f in trio])}: each main effect is confounded "
                    "with the interaction of the other two (the estimates assume those "
                    "interactions are zero)."
                )
    return confounded


def join_words(words: list[str]) -> str:
    words = list(words)
    if len(words) < 2:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"
