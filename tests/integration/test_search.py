"""Search in a space: random and Optuna sampling, ASHA early stopping, a validation split,
and `tune-mnist best`, on a real local Ray (2 CPUs) with tiny data."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tune_mnist import load_space
from tune_mnist.analysis.best import best_configuration
from tune_mnist.analysis.report import summarize
from tune_mnist.cli.main import app
from tune_mnist.errors import TuneMnistError
from tune_mnist.run.sweep import SweepSettings, run_sweep
from tune_mnist.store.experiment import mark_stopped_early
from tune_mnist.train.data import Dataset
from tune_mnist.train.split import hold_out, split_indices

from ..conftest import TINY_TRAIN, write_space
from ..experiments import COMPARE, make_experiment, trial_folder

runner = CliRunner()
LR, MOMENTUM = (1e-4, 0.3), (0.0, 0.9)

RANDOM_ASHA = dict(
    trainable="resnet",
    validation=24,
    fixed={
        "dataset": "mnist",
        "model": "resnet18",
        "optimizer": "sgd",
        "batch_size": 24,
        "epochs": 4,
        "lr": {"loguniform": list(LR)},
        "momentum": {"uniform": list(MOMENTUM)},
    },
    search={"algorithm": "random", "num_samples": 6, "max_concurrent": 2, "seed": 3},
    scheduler={"asha": {"grace_period": 1, "reduction_factor": 2}},
)
C_RANGE = (0.1, 100.0)
OPTUNA_SVM = dict(
    trainable="svm",
    validation=0.25,
    fixed={
        "dataset": "mnist",
        "kernel": "rbf",
        "train_samples": 60,
        "C": {"loguniform": list(C_RANGE)},
    },
    search={"algorithm": "optuna", "num_samples": 4, "max_concurrent": 2},
)


@pytest.fixture(scope="module")
def sweeps(local_ray, tiny_data, tmp_path_factory):
    """One random search with ASHA (ResNet) and one Optuna search (SVM), run once."""
    folder = tmp_path_factory.mktemp("search")
    runs = {}
    for name, fields in (("random", RANDOM_ASHA), ("optuna", OPTUNA_SVM)):
        spec = load_space(write_space(folder, name=name, **fields))
        settings = SweepSettings(data_dir=str(tiny_data), storage_path=str(folder / "results"))
        events = []
        runs[name] = (run_sweep(spec, settings, on_event=events.append), events)
    return runs


def test_random_search_samples_within_its_distributions(sweeps):
    result, events = sweeps["random"]
    frame = result.results
    assert len(frame) == 6  # num_samples, each a trial of its own
    assert frame["lr"].between(*LR).all() and frame["momentum"].between(*MOMENTUM).all()
    assert frame["lr"].nunique() == 6  # drawn, not listed
    assert set(frame["status"]) <= {"finished", "stopped early"}
    assert frame["validation_accuracy"].between(0, 100).all()
    assert (frame["validation_images"] == 24).all()
    assert any("[6/6]" in e for e in events)


def test_asha_stops_trials_early_and_the_tables_mark_them(sweeps):
    result, events = sweeps["random"]
    frame = result.results
    stopped = frame[frame["status"] == "stopped early"]
    assert len(stopped) >= 1, frame[["lr", "status", "epoch", "validation_accuracy"]]
    assert (
        stopped["early_stopped"].all()
        and not frame.loc[~frame.index.isin(stopped.index), "early_stopped"].any()
    )
    assert (stopped["epoch"] < 4).all()
    assert (frame.loc[frame["status"] == "finished", "epoch"] == 4).all()
    assert any("stopped early after epoch" in e for e in events)
    tables = {t.name: t for t in result.summary.tables}
    marked = tables["random-stopped"]
    assert list(marked.frame["trial"][:-1]) == list(stopped["label"])
    assert marked.frame["trial"].iloc[-1] == "all"
    assert any("estimate" in n for n in marked.notes)
    # never pooled as if finished: the comparison's rows and the ranking are finished trials only
    finished_rows = set(frame.loc[frame["status"] == "finished", "row"])
    assert set(tables["random"].frame["#"]) == finished_rows
    assert set(tables["random-best"].frame["#"]) == finished_rows
    assert not any(name.startswith("random-effects") for name in tables)
    # their compute is counted, and the sweep is complete (nothing to resume)
    assert tables["random-compute"].frame["trials"].iloc[-1] == len(frame)
    assert result.summary.complete


def test_search_chooses_on_validation_and_reports_test(sweeps):
    result, _ = sweeps["random"]
    frame = result.results
    finished = frame[frame["status"] == "finished"]
    best = result.summary.tables[[t.name for t in result.summary.tables].index("random-best")]
    top = finished.loc[finished["validation_accuracy"].idxmax()]
    assert best.frame["#"].iloc[0] == top["row"]
    assert best.frame["chosen"].iloc[0] == "best"
    assert best.frame["test accuracy (%)"].iloc[0] == round(top["test_accuracy"], 2)
    assert "chosen on validation accuracy" in best.title


def test_optuna_search_samples_within_its_distribution(sweeps):
    result, _ = sweeps["optuna"]
    frame = result.results
    assert len(frame) == 4 and set(frame["status"]) == {"finished"}
    assert frame["C"].between(*C_RANGE).all() and frame["C"].nunique() == 4
    assert frame["validation_accuracy"].between(0, 100).all()
    assert (frame["validation_images"] == 24).all()  # a quarter of 96
    names = [t.name for t in result.summary.tables]
    assert "optuna-best" in names and "optuna-stopped" not in names


def test_best_as_text_and_json(sweeps):
    result, _ = sweeps["optuna"]
    frame = result.results
    top = frame.loc[frame["validation_accuracy"].idxmax()]
    text = runner.invoke(app, ["best", str(result.experiment_dir)])
    assert text.exit_code == 0, text.output
    assert "chosen on validation accuracy (24 held-out training images)" in text.output
    assert f"test accuracy: {top['test_accuracy']:.2f}% (95% CI [" in text.output
    found = runner.invoke(app, ["best", str(result.experiment_dir), "--json"])
    assert found.exit_code == 0, found.output
    record = json.loads(found.output)
    assert record["chosen_on"] == "validation" and record["row"] == top["row"]
    assert record["config"]["C"] == pytest.approx(top["C"])
    assert record["test_accuracy"] == pytest.approx(top["test_accuracy"])
    assert record["ci_low"] <= record["test_accuracy"] <= record["ci_high"]
    assert record["interval"] == "Wilson (test sampling)" and record["planned"] == 4


def test_best_of_a_grid_without_validation_says_test_chose(repeated):
    summary = summarize(repeated, write=False)
    assert not any(t.name.endswith(("-best", "-stopped")) for t in summary.tables)  # unchanged
    shown = runner.invoke(app, ["best", str(repeated)])
    assert shown.exit_code == 0, shown.output
    assert "best of 2 configurations (6 finished trials), chosen on test accuracy" in shown.output
    assert "(the set it is scored on: optimistic)" in shown.output
    found = best_configuration(repeated)
    assert found.config["model"] == "resnet18" and found.seeds == 3
    assert found.test_accuracy == pytest.approx(91.0) and found.interval == "t over seeds"
    assert found.ci_low < 91.0 < found.ci_high and found.validation_accuracy is None


def test_stopped_trials_are_marked_and_their_saving_estimated(tmp_path):
    fields = {**COMPARE, "scheduler": {"asha": {"grace_period": 1}}, "repeats": 1}
    fields["fixed"] = {**COMPARE["fixed"], "epochs": 4}
    spec = load_space(write_space(tmp_path, name="cmp", **fields))
    experiment = make_experiment(tmp_path / "exp", spec, lambda t: 90.0)
    folder = trial_folder(experiment, 1)  # resnet50: stopped after 2 of its 4 epochs
    lines = (folder / "result.json").read_text().splitlines()[:2]
    (folder / "result.json").write_text("\n".join(lines))
    mark_stopped_early(folder, 2)
    summary = summarize(experiment, write=False)
    results = summary.results
    assert list(results["status"]) == ["finished", "stopped early"]
    assert list(results["early_stopped"]) == [False, True]
    assert summary.complete  # nothing to resume
    tables = {t.name: t for t in summary.tables}
    stopped = tables["cmp-stopped"].frame
    assert list(stopped["trial"]) == [results["label"][1], "all"]
    # (4 configured - 2 trained epochs) x 2 s per epoch x 0.25 GPU
    assert stopped["GPU-seconds saved (est.)"].tolist() == [1.0, 1.0]
    assert "an estimated 1.0 GPU-seconds" in " ".join(tables["cmp-stopped"].notes)
    assert list(tables["cmp"].frame["#"]) == [1]  # only the finished configuration
    assert tables["cmp-compute"].frame["trials"].iloc[-1] == 2  # its compute is counted


def test_best_of_no_experiment_is_one_line(tmp_path):
    result = runner.invoke(app, ["best", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "no such experiment folder" in result.output


# --- the validation split (no Ray) ---


def test_validation_split_is_disjoint_from_training_and_fixed_by_the_seed():
    train, held = split_indices(1000, 100, seed=7)
    assert len(held) == 100 and len(train) == 900
    assert not set(train) & set(held)
    assert sorted([*train, *held]) == list(range(1000))
    again = split_indices(1000, 100, seed=7)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], held)
    other = split_indices(1000, 100, seed=8)
    assert not np.array_equal(other[1], held)
    assert len(split_indices(1000, 0.25, seed=0)[1]) == 250


def test_hold_out_never_leaves_a_validation_image_in_training():
    images = np.arange(50, dtype=np.uint8).repeat(4).reshape(50, 2, 2)  # image i is all i
    labels = (np.arange(50) % 10).astype(np.uint8)
    data = Dataset("mnist", images, labels, images[:5], labels[:5], source="test")
    rest, held = hold_out(data, 10, seed=1)
    trained = set(rest.train_images[:, 0, 0]) & set(held.images[:, 0, 0])
    assert not trained and len(held) == 10 and len(rest.train_labels) == 40
    assert list(rest.train_images[:, 0, 0]) == sorted(rest.train_images[:, 0, 0])  # file order
    assert rest.normalization == data.normalization


@pytest.mark.parametrize("size", [0, TINY_TRAIN, TINY_TRAIN + 1])
def test_a_split_that_leaves_nothing_is_refused(size):
    with pytest.raises(TuneMnistError, match="expected at least 1 and fewer than all"):
        split_indices(TINY_TRAIN, size, seed=0)


# --- the space file (no Ray) ---


def space_text(**overrides) -> dict:
    fields = {
        "trainable": "resnet",
        "fixed": {
            "dataset": "mnist",
            "model": "resnet18",
            "optimizer": "sgd",
            "batch_size": 16,
            "epochs": 2,
            "lr": {"loguniform": [1e-4, 1e-1]},
        },
        "search": {"algorithm": "random", "num_samples": 3},
    }
    for key, value in overrides.items():
        if key.startswith("fixed."):
            fields["fixed"][key[6:]] = value
        else:
            fields[key] = value
    return fields


BAD = [
    (
        {"fixed.lr": {"normal": [0, 1]}},
        "bad.yaml: fixed.lr: expected one distribution, one of loguniform, uniform, randint, choice (got normal)",
    ),
    (
        {"fixed.lr": {"loguniform": [0, 1]}},
        "bad.yaml: fixed.lr: loguniform needs bounds above 0, got 0",
    ),
    (
        {"fixed.lr": {"uniform": [0.1, 0.01]}},
        "bad.yaml: fixed.lr: uniform: low 0.1 is not below high 0.01",
    ),
    (
        {"fixed.lr": {"uniform": [0.1]}},
        "bad.yaml: fixed.lr: uniform takes two values, low and high (got 1)",
    ),
    (
        {"fixed.batch_size": {"uniform": [8, 64]}},
        "bad.yaml: fixed.batch_size: uniform is for a number key; use choice or randint",
    ),
    (
        {"fixed.lr": {"randint": [1, 3]}},
        "bad.yaml: fixed.lr: randint takes two integers, for an integer key",
    ),
    (
        {"fixed.momentum": {"uniform": [0.0, 1.0]}},
        "bad.yaml: fixed.momentum: Input should be less than 1 (got 1.0)",
    ),
    (
        {"fixed.colour": {"choice": [1, 2]}},
        "bad.yaml: fixed.colour: unknown key (expected one of: dataset, model,",
    ),
    (
        {"search": {"algorithm": "grid"}},
        "bad.yaml: fixed.lr: a distribution needs search.algorithm random or optuna",
    ),
    (
        {"search": {"algorithm": "annealing"}},
        "bad.yaml: search.algorithm: Input should be 'grid', 'random' or 'optuna'",
    ),
    (
        {"search": {"algorithm": "random", "budget": 3}},
        "bad.yaml: search.budget: unknown key (expected one of: algorithm, num_samples, metric, mode, max_concurrent, seed)",
    ),
    (
        {"search": {"algorithm": "random", "metric": "validation_accuracy"}},
        "bad.yaml: search.metric validation_accuracy: the space holds out no validation split",
    ),
    (
        {"search": {"algorithm": "optuna"}, "grid": {"weight_decay": [0.0, 0.1]}},
        "bad.yaml: grid: optuna samples every trial",
    ),
    (
        {"scheduler": {"asha": {"grace": 1}}},
        "bad.yaml: scheduler.asha.grace: unknown key (expected one of: grace_period, reduction_factor, max_t)",
    ),
    ({"validation": 1.5}, "bad.yaml: validation: a fraction is between 0 and 1 (got 1.5)"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD)
def test_bad_search_specs_are_one_line(tmp_path, overrides, message):
    space = write_space(tmp_path, name="bad", **space_text(**overrides))
    result = runner.invoke(app, ["show", str(space)])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1, result.output
    assert message in " ".join(result.output.split()), result.output


def test_show_prints_what_is_sampled_and_how_many_trials(tmp_path):
    fields = space_text(**{"fixed.momentum": {"uniform": [0.0, 0.9]}})
    fields["grid"] = {"batch_size": [16, 32]}
    del fields["fixed"]["batch_size"]
    fields["validation"] = 0.1
    fields["scheduler"] = {"asha": {"grace_period": 1}}
    result = runner.invoke(app, ["show", str(write_space(tmp_path, name="s", **fields))])
    assert result.exit_code == 0, result.output
    assert "s: 6 trials, sampled (s.yaml)" in result.output
    assert "random search: 3 samples x 2 grid configurations = 6 trials" in result.output
    assert "lr: loguniform(0.0001, 0.1)" in result.output
    assert "momentum: uniform(0, 0.9)" in result.output
    assert "chosen on validation accuracy" in result.output
    assert "Early stopping: ASHA" in result.output


def test_a_missing_optuna_is_one_line(tmp_path, monkeypatch, tiny_data):
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if not installed: import fails
    spec = load_space(write_space(tmp_path, name="o", **space_text(search={"algorithm": "optuna"})))
    with pytest.raises(TuneMnistError, match=r"pip install 'tune-mnist\[search\]'"):
        spec.search.searcher()


def test_the_built_in_search_example_parses():
    spec = load_space(Path(__file__).parents[2] / "search_spaces" / "fashion-search.yaml")
    assert spec.search.algorithm == "random" and set(spec.search.distributions) == {
        "lr",
        "momentum",
    }
    assert spec.search.chosen_on == "validation"
