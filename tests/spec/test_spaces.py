import pytest

from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.configs import SVMConfig, trial_from_dict, trial_to_dict
from tune_mnist.spec.spaces import builtin_names, load_space, parse_space

from ..conftest import write_space


@pytest.mark.parametrize(
    ("name", "trials"), [("q1a", 32), ("q1b", 4), ("q1b-full", 5), ("q2", 10), ("q2-full", 96)]
)
def test_builtin_spaces_expand_to_the_study_trial_counts(name, trials):
    spec = load_space(name)
    assert len(spec.trials) == trials
    assert len(set(spec.trials)) == trials  # no duplicate configs (labels leave out C)


def test_builtin_names():
    assert builtin_names() == ["fashion-search", "q1a", "q1b", "q1b-full", "q2", "q2-full"]


def test_q1a_keeps_the_eight_row_design_per_model_and_dataset():
    spec = load_space("q1a")
    mnist18 = [t for t in spec.trials if t.dataset == "mnist" and t.model == "resnet18"]
    rows = [(t.batch_size, t.optimizer, t.lr, t.epochs, t.pin_memory) for t in mnist18]
    assert rows == [
        (16, "sgd", 0.001, 5, False),
        (16, "sgd", 0.0001, 15, True),
        (16, "adam", 0.001, 5, True),
        (16, "adam", 0.0001, 15, False),
        (32, "sgd", 0.001, 5, False),
        (32, "sgd", 0.0001, 15, True),
        (32, "adam", 0.001, 5, True),
        (32, "adam", 0.0001, 15, False),
    ]
    assert {t.seed for t in spec.trials} == {0}
    assert spec.report == "ablation"


def test_q1b_full_is_q1b_on_all_images_and_the_benchmark_row():
    trials = load_space("q1b-full").trials
    full = {(t.dataset, t.kernel) for t in load_space("q1b").trials}
    assert {(t.dataset, t.kernel) for t in trials if t.C == 1.0} == full
    assert [(t.dataset, t.kernel, t.C) for t in trials if t.C != 1.0] == [
        ("fashion-mnist", "rbf", 10.0)
    ]
    assert all(t.train_samples == 60_000 and t.gamma == "scale" for t in trials)


def test_q1b_uses_svc_defaults_on_10000_images():
    trials = load_space("q1b").trials
    assert {(t.dataset, t.kernel) for t in trials} == {
        ("mnist", "rbf"),
        ("mnist", "poly"),
        ("fashion-mnist", "rbf"),
        ("fashion-mnist", "poly"),
    }
    assert all(
        t.train_samples == 10_000 and t.C == 1.0 and t.gamma == "scale" and t.degree == 3
        for t in trials
    )


def test_q2_full_crosses_every_documented_value():
    trials = load_space("q2-full").trials
    assert {t.model for t in trials} == {"resnet18", "resnet34", "resnet50"}
    assert {(t.lr, t.epochs, t.pin_memory) for t in trials} == {
        (lr, e, p) for lr in (0.001, 0.0001) for e in (5, 15) for p in (False, True)
    }


def test_user_file_by_path(tmp_path):
    path = write_space(tmp_path, trainable="svm", grid={"dataset": ["mnist"], "kernel": ["rbf"]})
    spec = load_space(str(path))
    assert spec.trials == [
        SVMConfig(dataset="mnist", kernel="rbf", train_samples=10000, C=1.0, gamma="scale")
    ]
    assert trial_to_dict(spec.trials[0]) == {
        "trainable": "svm",
        "dataset": "mnist",
        "kernel": "rbf",
        "train_samples": 10000,
        "C": 1.0,
        "gamma": "scale",
        "degree": 3,
        "seed": 0,
    }
    assert trial_from_dict(trial_to_dict(spec.trials[0])) == spec.trials[0]
    assert spec.report == "svm"


BASE = {
    "name": "b",
    "trainable": "resnet",
    "fixed": {
        "dataset": "mnist",
        "model": "resnet18",
        "optimizer": "sgd",
        "epochs": 1,
        "batch_size": 8,
    },
}


def _with(**changes):
    return {**BASE, **changes}


def _grid(key, value):
    """BASE with `key` moved from fixed into the grid as [value]."""
    fixed = {k: v for k, v in BASE["fixed"].items() if k != key}
    return {**BASE, "fixed": fixed, "grid": {"lr": [0.1], key: [value]}}


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (_with(grid={"lr": [0.1, 0]}), "b.yaml: grid.lr: Input should be greater than 0 (got 0)"),
        (
            _with(rows=[{"lr": 0.1}, {"lr": -1}]),
            "b.yaml: rows[1].lr: Input should be greater than 0",
        ),
        (
            _with(rows=[{"lr": 0.1, "batch_size": 0}]),
            "b.yaml: rows[0].batch_size: already set in fixed",
        ),
        (
            {**BASE, "fixed": {**BASE["fixed"], "batch_size": 0}, "grid": {"lr": [0.1]}},
            "b.yaml: fixed.batch_size: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            {**BASE, "fixed": {**BASE["fixed"], "epochs": 0}, "grid": {"lr": [0.1]}},
            "b.yaml: fixed.epochs: Input should be greater than or equal to 1",
        ),
        (
            _with(grid={"lr": ["0.1"]}),
            "b.yaml: grid.lr: Input should be a valid number (got '0.1')",
        ),
        (
            _grid("model", "resnet99"),
            "b.yaml: grid.model: Input should be 'resnet18', 'resnet34' or 'resnet50' (got 'resnet99')",
        ),
        (
            _grid("dataset", "cifar10"),
            "b.yaml: grid.dataset: Input should be 'mnist' or 'fashion-mnist' (got 'cifar10')",
        ),
        (_grid("optimizer", "rmsprop"), "b.yaml: grid.optimizer: Input should be 'sgd' or 'adam'"),
        (
            _with(grid={"lr": [0.1], "colour": ["red"]}),
            "b.yaml: grid.colour: unknown key (expected one of: dataset, model",
        ),
        (
            _with(grid={"lr": [0.1]}, colour=1),
            "b.yaml: colour: unknown key (expected one of: name, description",
        ),
        (_with(grid={"lr": []}), "b.yaml: grid.lr: expected a non-empty list of values"),
        (_with(grid={}), "b.yaml: grid: expected at least one key in grid or rows"),
        (_with(grid={"lr": 0.1}), "b.yaml: grid.lr: Input should be a valid list (got 0.1)"),
        (
            _with(grid={"lr": [0.1]}, resources={"gpu": 2}),
            "b.yaml: resources.gpu: Input should be less than or equal to 1",
        ),
        (
            _with(grid={"lr": [0.1]}, trainable="xgboost"),
            "b.yaml: trainable: expected resnet, svm, or a reference package.module:function",
        ),
        (_with(grid={"lr": [0.1]}, trainable="svm"), "b.yaml: fixed.model: unknown key"),
        (
            {"name": "b", "trainable": "svm", "grid": {"dataset": ["mnist"], "kernel": ["cubic"]}},
            "b.yaml: grid.kernel: Input should be 'rbf', 'poly', 'linear' or 'sigmoid' (got 'cubic')",
        ),
        (
            {"name": "b", "trainable": "svm", "grid": {"dataset": ["mnist"]}},
            "b.yaml: kernel: required key is missing",
        ),
        ({"trainable": "svm"}, "b.yaml: name: required key is missing"),
        ([1, 2], "b.yaml: expected a mapping of keys"),
    ],
)
def test_bad_spaces_name_file_key_and_expectation(space, message):
    with pytest.raises(TuneMnistError) as error:
        parse_space(space, source="b.yaml")
    assert str(error.value).startswith(message), str(error.value)
    assert "\n" not in str(error.value)


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ngrid: {lr: [0.1,\n")
    with pytest.raises(TuneMnistError, match=r"^broken.yaml: not valid YAML at line \d+"):
        load_space(path)


def test_unknown_space_name_lists_the_builtins():
    with pytest.raises(
        TuneMnistError,
        match="unknown space 'q9': built-in spaces are fashion-search, q1a, q1b, q1b-full, q2, q2-full",
    ):
        load_space("q9")


def test_missing_yaml_file(tmp_path):
    with pytest.raises(TuneMnistError, match="no such space file"):
        load_space(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name", ["q1a", "q2", "q2-full"])
def test_builtin_sgd_rows_use_momentum_and_adam_rows_none(name):
    trials = load_space(name).trials
    assert {t.momentum for t in trials if t.optimizer == "sgd"} == {0.9}
    assert {t.momentum for t in trials if t.optimizer == "adam"} == {0.0}


def test_repeats_in_a_space_file_expand_the_seeds():
    spec = parse_space(
        {
            "name": "r",
            "trainable": "svm",
            "repeats": 3,
            "fixed": {"seed": 5},
            "grid": {"dataset": ["mnist"], "kernel": ["rbf"]},
        }
    )
    assert [t.seed for t in spec.trials] == [5, 6, 7]
