"""Running part of a space: --where KEY=VALUE filters and --trial numbers."""

import json

import pytest
from typer.testing import CliRunner

from tune_mnist import load_results
from tune_mnist.cli.main import app
from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.selection import restrict, select
from tune_mnist.spec.spaces import load_space

from ..conftest import TINY_SVM, write_space

runner = CliRunner()


def test_one_key_several_values_are_alternatives_and_keys_combine():
    spec = select(load_space("q1a"), ["model=resnet18", "epochs=5", "batch_size=32", "lr=1e-3"])
    assert [(t.dataset, t.optimizer) for t in spec.trials] == [
        ("mnist", "sgd"),
        ("mnist", "adam"),
        ("fashion-mnist", "sgd"),
        ("fashion-mnist", "adam"),
    ]
    assert spec.selection.of == 32 and spec.selection.chosen == [5, 7, 21, 23]
    both = select(load_space("q2"), ["model=resnet34", "model=resnet50"])
    assert [t.model for t in both.trials] == ["resnet34"] * 4 + ["resnet50"]


def test_trial_numbers_are_those_show_prints_and_combine_with_where():
    spec = select(load_space("q2"), [], [1, 4, 5])
    assert [(t.lr, t.epochs, t.pin_memory) for t in spec.trials] == [
        (0.001, 5, True),
        (0.0001, 5, False),
        (0.0001, 5, True),
    ]
    pinned = select(load_space("q2"), ["pin_memory=true"], [1, 4, 5])
    assert pinned.selection.chosen == [1, 5]


def test_no_filter_returns_the_whole_space():
    spec = load_space("q1b")
    assert select(spec, [], []) is spec and spec.selection is None


@pytest.mark.parametrize(
    ("where", "numbers", "message"),
    [
        (["colour=red"], [], "--where colour=red: q2 has no key 'colour' (its keys: batch_size,"),
        (["model"], [], "--where model: expected KEY=VALUE"),
        (["model=resnet101"], [], "q2: no trial matches model=resnet101"),
        (["model=resnet34", "epochs=15"], [], "q2: no trial matches model=resnet34; epochs=15"),
        ([], [11], "--trial 11: q2 has trials 1 to 10"),
        ([], [0], "--trial 0: q2 has trials 1 to 10"),
    ],
)
def test_bad_filters_are_one_clear_error(where, numbers, message):
    with pytest.raises(TuneMnistError) as error:
        select(load_space("q2"), where, numbers)
    assert str(error.value).startswith(message)


def test_restrict_rebuilds_a_recorded_selection():
    chosen = select(load_space("q2"), ["lr=0.0001"])
    again = restrict(load_space("q2"), chosen.selection)
    assert again.trials == chosen.trials and again.selection == chosen.selection


def test_show_prints_the_chosen_trials_with_their_numbers_in_the_space():
    result = runner.invoke(app, ["show", "q2", "--trial", "1", "--trial", "4", "--trial", "5"])
    assert result.exit_code == 0, result.output
    assert "q2: 3 of 10 trials (q2.yaml)" in result.output
    numbers = [line.split("│")[1].strip() for line in result.output.splitlines() if "│" in line]
    assert numbers == ["1", "4", "5"]


def test_show_bad_filter_one_line_exit_1():
    result = runner.invoke(app, ["show", "q2", "--where", "colour=red"])
    assert result.exit_code == 1
    assert result.output.startswith("error: --where colour=red: q2 has no key")
    assert len(result.output.strip().splitlines()) == 1


def test_sweep_runs_only_the_selection_records_it_and_resume_keeps_it(tiny_data, tmp_path):
    space = write_space(tmp_path, **TINY_SVM)  # 4 trials: 2 datasets x rbf, poly
    storage = tmp_path / "results"
    args = ["sweep", str(space), "--data-dir", str(tiny_data), "--storage-path", str(storage)]
    result = runner.invoke(app, [*args, "--where", "kernel=rbf"])
    assert result.exit_code == 0, result.output
    assert "tiny: 2 of 4 (kernel=rbf) trials" in result.output
    experiment = storage / "tiny"
    meta = json.loads((experiment / "tune_mnist.json").read_text())
    assert meta["selection"]["where"] == {"kernel": ["rbf"]}
    assert meta["selection"]["chosen"] == [1, 3] and meta["selection"]["of"] == 4
    frame = load_results(experiment)
    assert frame["kernel"].tolist() == ["rbf", "rbf"] and set(frame["status"]) == {"finished"}
    tables = (experiment / "report" / "tables.md").read_text()
    assert "Partial study: 2 of the 4 trials of tiny ran (kernel=rbf): trials 1, 3" in tables
    resumed = runner.invoke(app, ["resume", str(experiment)])
    assert resumed.exit_code == 0, resumed.output  # nothing left to run: same two trials
    assert load_results(experiment)["kernel"].tolist() == ["rbf", "rbf"]
