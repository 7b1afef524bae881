"""Choosing part of a space: --where KEY=VALUE filters and --trial numbers, checked against
the space's own keys and values."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import yaml

from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.configs import (
    Selection,
    short_model,
    trial_to_dict,
)
from tune_mnist.spec.spaces import Spec


def select(spec: Spec, where: list[str] = (), numbers: list[int] = ()) -> Spec:
    """The part of a space matching `--where KEY=VALUE` filters and `--trial N` numbers.

    Values are read as YAML, like the space's own (`lr=0.001`, `pin_memory=true`). A key
    the trials do not have, a number outside the space, or a filter that matches nothing
    raises TuneMnistError; no filters return the spec unchanged.
    """
    if not where and not numbers:
        return spec
    if spec.search and spec.search.samples:
        raise TuneMnistError(
            f"--where/--trial: {spec.name} is a {spec.search.algorithm} search, whose trials "
            "are drawn as it runs; narrow its distributions instead"
        )
    rows = [trial_to_dict(trial) for trial in spec.trials]
    keys = sorted({k for row in rows for k in row} - {"trainable"})
    wanted: dict[str, list[Any]] = {}
    for item in where:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise TuneMnistError(f"--where {item}: expected KEY=VALUE, e.g. model=resnet18")
        if key not in keys:
            raise TuneMnistError(
                f"--where {item}: {spec.name} has no key {key!r} (its keys: {', '.join(keys)})"
            )
        wanted.setdefault(key, []).append(_parse_value(text))
    total = len(spec.trials)
    for n in numbers:
        if not 1 <= n <= total:
            raise TuneMnistError(f"--trial {n}: {spec.name} has trials 1 to {total}")
    chosen = [
        i
        for i, row in enumerate(rows, start=1)
        if (not numbers or i in numbers)
        and all(any(_same(row[k], v, k) for v in values) for k, values in wanted.items())
    ]
    selection = Selection(wanted, sorted(set(numbers)), chosen, total)
    if not chosen:
        raise TuneMnistError(f"{spec.name}: no trial matches {selection.describe()}")
    return restrict(spec, selection)


def restrict(spec: Spec, selection: Selection | None) -> Spec:
    """A whole space cut down to a selection recorded earlier (by `select`), for resume."""
    if selection is None:
        return spec
    if selection.of != len(spec.trials):
        raise TuneMnistError(
            f"{spec.name}: the recorded selection is of {selection.of} trials, "
            f"the space now has {len(spec.trials)}"
        )
    return replace(spec, trials=[spec.trials[i - 1] for i in selection.chosen], selection=selection)


def _parse_value(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text.strip()
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string; a user means a number
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _same(have: Any, want: Any, key: str = "") -> bool:
    numeric = (int, float)
    if key == "model" and isinstance(have, str) and isinstance(want, str):
        # a file model as `show` prints it (nets.py:build) or as the space wrote it
        return have == want or short_model(have) == short_model(want)
    if isinstance(have, bool) or isinstance(want, bool):
        return have is want or (type(have) is type(want) and have == want)
    if isinstance(have, numeric) and isinstance(want, numeric):
        return math.isclose(have, want, rel_tol=1e-12)
    return have == want
