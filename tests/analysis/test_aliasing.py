"""A two-level design read from its rows: defining relation, resolution, aliasing."""

import itertools

import pandas as pd
from typer.testing import CliRunner

from tune_mnist.analysis.aliasing import read_design
from tune_mnist.cli.main import app


def test_a_full_factorial_has_no_defining_word():
    rows = pd.DataFrame(list(itertools.product([16, 32], ["sgd", "adam"])), columns=["b", "o"])
    design = read_design(rows)
    assert design.words == [] and design.resolution is None
    assert design.describe() == [
        "Design: 4 distinct rows in 2 two-level factors (b, o): the full 2^2 factorial, "
        "every effect separable."
    ]


def test_a_half_fraction_with_i_equal_abc_is_resolution_three():
    full = list(itertools.product([-1, 1], repeat=2))
    rows = pd.DataFrame([(a, b, a * b) for a, b in full], columns=["a", "b", "c"])
    design = read_design(rows)
    assert design.words == [("a", "b", "c")] and design.resolution == 3
    lines = design.describe()
    assert lines[0].endswith("a 2^(3-1) fraction of the 8 combinations.")
    assert lines[1] == "Resolution III; defining relation I = a·b·c."
    assert any(
        "each main effect is confounded with the interaction of the other two" in n for n in lines
    )


def test_one_factor_or_a_three_level_factor_is_no_two_level_design():
    assert read_design(pd.DataFrame({"a": [1, 2], "b": [0, 0]})) is None
    assert read_design(pd.DataFrame({"a": [1, 2, 3], "b": [0, 1, 0]})) is None


def test_show_q1a_states_its_resolution_and_aliasing_before_anything_runs():
    """Issue 30: the study's own design, read from its rows."""
    result = CliRunner().invoke(app, ["show", "q1a"])
    assert result.exit_code == 0, result.output
    assert "a 2^(5-2) fraction of the 32 combinations" in result.output
    assert (
        "Resolution II; defining relation I = lr·epochs = optimizer·lr·pin_memory" in result.output
    )
    assert "lr and epochs always change together" in result.output
