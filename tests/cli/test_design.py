"""`tune-mnist design foldover`: the rows that separate what a design aliases."""

import yaml
from typer.testing import CliRunner

from tune_mnist.cli.main import app
from tune_mnist.spec.spaces import load_space, parse_space


def test_folding_q1a_on_epochs_separates_lr_from_epochs():
    """Issue 30, documented with q1a: the 8 runs that would separate lr from epochs."""
    result = CliRunner().invoke(app, ["design", "foldover", "q1a", "--on", "epochs"])
    assert result.exit_code == 0, result.output
    rows = yaml.safe_load(result.output)["rows"]
    original = load_space("q1a").space.rows
    assert len(rows) == 8
    for old, new in zip(original, rows, strict=True):  # epochs switched, nothing else
        assert new == {**old, "epochs": 20 - old["epochs"]}
    assert "Resolution III; defining relation I = optimizer·lr·pin_memory." in result.output
    assert "lr and epochs always change together" not in result.output
    # the printed rows are a space's rows: they parse and expand with the original ones
    combined = {
        "name": "f",
        "trainable": "resnet",
        "rows": [*original, *rows],
        "fixed": {"dataset": "mnist", "model": "resnet18"},
    }
    assert len(parse_space(combined, "f.yaml").trials) == 16


def test_a_full_fold_over_keeps_even_words():
    """Switching every factor keeps the words of even length: lr and epochs stay aliased."""
    result = CliRunner().invoke(app, ["design", "foldover", "q1a"])
    assert result.exit_code == 0, result.output
    assert "Resolution II; defining relation I = lr·epochs." in result.output


def test_no_design_or_an_unknown_factor_is_one_line():
    for args, said in (
        (["q1b"], "no two-level design in its rows"),
        (["q1a", "--on", "nosuch"], "--on nosuch: not a factor of the design"),
    ):
        result = CliRunner().invoke(app, ["design", "foldover", *args])
        assert result.exit_code == 1 and said in result.output
        assert "Traceback" not in result.output
