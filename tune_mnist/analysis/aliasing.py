"""What a design can estimate: the model matrix of treatment-coded main effects, which
factors it can tell apart, which main effects are confounded with a two-factor
interaction, and (read_design) a two-level fraction's defining relation and resolution,
from its rows alone, before anything runs. Pure: sentences go into lists, nothing is
printed.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Design:
    """A two-level fraction read from its rows: what `show` says before anything runs."""

    factors: list[str]  # the factors the rows vary
    runs: int  # distinct rows
    words: list[tuple[str, ...]]  # the defining relation's words (factors whose product is fixed)
    notes: list[str]  # what cannot be told apart, in words

    @property
    def resolution(self) -> int | None:
        """The length of the shortest word; None for a full factorial (no word)."""
        return min(map(len, self.words)) if self.words else None

    def describe(self) -> list[str]:
        """The design in a few sentences."""
        k = len(self.factors)
        full = 2**k
        names = ", ".join(self.factors)
        head = f"Design: {self.runs} distinct rows in {k} two-level factors ({names})"
        if self.runs == full:
            return [head + f": the full 2^{k} factorial, every effect separable."]
        p = round(math.log2(full / self.runs)) if self.runs else 0
        fraction = (
            f"a 2^({k}-{p}) fraction" if 2 ** (k - p) == self.runs else "an irregular fraction"
        )
        lines = [f"{head}: {fraction} of the {full} combinations."]
        if self.words:
            relation = " = ".join("·".join(w) for w in self.words)
            roman = _ROMAN.get(self.resolution, str(self.resolution))
            lines.append(f"Resolution {roman}; defining relation I = {relation}.")
        return lines + self.notes


_ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI"}


def read_design(rows: pd.DataFrame, factors: list[str] | None = None) -> Design | None:
    """The design of the rows of a space (one column per key they set; `factors`: the
    columns to read, default all): None unless two or more vary, each at two levels."""
    columns = [f for f in (factors or list(rows)) if f in rows]
    factors = [f for f in columns if rows[f].nunique(dropna=False) > 1]
    if len(factors) < 2 or any(rows[f].nunique(dropna=False) != 2 for f in factors):
        return None
    points = rows[factors].drop_duplicates().reset_index(drop=True)
    levels = {f: sorted(points[f].drop_duplicates(), key=str) for f in factors}
    signs = pd.DataFrame({f: np.where(points[f] == levels[f][0], -1, 1) for f in factors})
    words = [
        subset
        for size in range(1, len(factors) + 1)
        for subset in itertools.combinations(factors, size)
        if abs(signs[list(subset)].prod(axis=1).sum()) == len(points)
    ]
    notes: list[str] = []
    kept, confounded = estimable_factors(points, factors, levels, notes)
    interaction_aliases(points, kept, levels, confounded, notes)
    return Design(factors, len(points), words, notes)


def fold_over(rows: pd.DataFrame, factors: list[str]) -> pd.DataFrame:
    """The fold-over of a two-level design's rows on `factors`: each row with those
    factors switched to their other level. Folding on every factor frees main effects from
    two-factor interactions; folding on one factor frees it, and its two-factor
    interactions, from everything else."""
    out = rows.copy()
    for factor in factors:
        levels = list(rows[factor].drop_duplicates())
        if len(levels) != 2:
            raise ValueError(f"{factor}: a fold-over needs two levels, the rows have {len(levels)}")
        out[factor] = rows[factor].map({levels[0]: levels[1], levels[1]: levels[0]})
    return out
