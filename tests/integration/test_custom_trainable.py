"""A space's own trainable (`trainable: ./loop.py:train`): a real local Ray sweep of a
real (numpy) learner, its metric tabulated, per-epoch reports kept, a failure resumed from
the trainable's own checkpoint, and one line for each bad declaration."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tune_mnist import load_space
from tune_mnist.cli.main import app
from tune_mnist.store.results import load_experiment

from ..conftest import write_space

LOOP = '''
import os

import numpy as np


def train(config, data, reporter):
    """Nearest centroids on pixels, from more training images each epoch."""
    x = data.train_images.reshape(len(data.train_images), -1) / 255
    test = data.test_images.reshape(len(data.test_images), -1) / 255
    start = reporter.restored["epoch"] if reporter.restored else 0
    for epoch in range(start, config["epochs"]):
        marker = config.get("fail_once_at")
        if marker and epoch == 1 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("a one-off failure")
        n = len(x) * (epoch + 1) // config["epochs"]
        centroids = np.stack([x[:n][data.train_labels[:n] == c].mean(0) for c in range(10)])
        shrunk = (1 - config["shrink"]) * centroids + config["shrink"] * centroids.mean(0)
        predicted = ((test[:, None, :] - shrunk[None]) ** 2).sum(-1).argmin(1)
        accuracy = 100 * float((predicted == data.test_labels).mean())
        metrics = {"accuracy": accuracy, "started_at_epoch": start}
        reporter.report(metrics, state={"epoch": epoch + 1})


def silent(config, data, reporter):
    reporter.report({"loss": 1.0})


def two_args(config, data):
    pass
'''


def custom_space(folder: Path, name="own-loop", **fields) -> Path:
    (folder / "loop.py").write_text(LOOP)
    body = dict(
        trainable="./loop.py:train",
        metric="accuracy",
        fixed={"dataset": "mnist", "epochs": 3},
        grid={"shrink": [0.0, 0.5]},
        resources={"cpu": 1},
    )
    return write_space(folder, name=name, **(body | fields))


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_data):
    """One sweep: two shrinks, one trial that fails once and resumes, one that never
    reports its metric."""
    folder = tmp_path_factory.mktemp("custom")
    marker = folder / "failed-once"
    path = custom_space(
        folder,
        rows=[{"shrink": 0.0}, {"shrink": 0.5}, {"shrink": 0.25, "fail_once_at": str(marker)}],
        grid={},
    )
    results = folder / "results"
    result = CliRunner().invoke(
        app,
        ["sweep", str(path), "--data-dir", str(tiny_data), "--storage-path", str(results)],
    )
    return result, results / "own-loop", marker


def test_the_sweep_trains_each_configuration_and_tabulates_its_metric(swept):
    result, experiment, _ = swept
    assert result.exit_code == 0, result.output
    loaded = load_experiment(experiment)
    assert (loaded.results["status"] == "finished").all()
    assert sorted(loaded.results["shrink"]) == [0.0, 0.25, 0.5]
    assert loaded.results["accuracy"].between(0, 100).all()
    assert (loaded.results["epoch"] == 3).all()
    per_trial = loaded.epochs.groupby("label")["epoch"].apply(sorted)
    assert all(epochs == [1, 2, 3] for epochs in per_trial)
    tables = (experiment / "report" / "tables.md").read_text()
    assert "own-loop: accuracy by configuration" in tables
    first = tables.split("## ")[1]
    assert "| trainable" not in first  # one function: not a column of its table
    assert "No interval" in tables and "The highest mean accuracy" in tables


def test_a_failed_trial_resumes_from_its_own_checkpoint(swept):
    _, experiment, marker = swept
    assert marker.exists()  # it did fail once
    results = load_experiment(experiment).results
    resumed = results[results["shrink"] == 0.25].iloc[0]
    assert resumed["status"] == "finished" and resumed["started_at_epoch"] == 1


def test_a_trainable_that_never_reports_its_metric_fails_with_one_line(tmp_path, tiny_data):
    path = custom_space(tmp_path, trainable="./loop.py:silent", grid={"shrink": [0.0]})
    result = CliRunner().invoke(
        app, ["sweep", str(path), "--data-dir", str(tiny_data), "--max-failures", "0"]
    )
    loaded = load_experiment(tmp_path / "ray_results" / "own-loop")
    (error,) = loaded.results["error"]
    assert "returned without reporting 'accuracy', the space's metric" in error, result.output


def test_show_lists_the_trials_keys(tmp_path):
    result = CliRunner().invoke(app, ["show", str(custom_space(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "loop.py:train" in result.output and "shrink" in result.output
    spec = load_space(custom_space(tmp_path))
    assert spec.trainable == "custom" and [t.params["shrink"] for t in spec.trials] == [0.0, 0.5]
    assert spec.trials[0].label == "mnist/loop.py:train/epochs3/shrink0.0/s0"


BAD = {
    "wrong signature": (
        {"trainable": "./loop.py:two_args"},
        "own-loop.yaml: trainable: ",
        "expected train(config, data, reporter), got two_args(config, data)",
    ),
    "no such function": ({"trainable": "./loop.py:nope"}, "own-loop.yaml: trainable: ", "nope"),
    "malformed reference": (
        {"trainable": "my-pkg:train"},
        "own-loop.yaml: trainable: ",
        "expected resnet, svm, or a reference",
    ),
    "no metric": ({"metric": None}, "own-loop.yaml: metric: ", "name the key your trainable"),
    "a list where a value goes": (
        {"fixed": {"dataset": "mnist", "epochs": [3]}},
        "own-loop.yaml: ",
        "epochs: expected a number, string or boolean",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_each_bad_declaration_is_one_line_and_exit_1(case, tmp_path):
    change, start, problem = BAD[case]
    path = custom_space(tmp_path, **change)
    if change.get("metric", "") is None:
        path.write_text(path.read_text().replace("metric: null\n", ""))
    result = CliRunner().invoke(app, ["show", str(path)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {start}"), result.output
    assert problem in lines[0], result.output


def test_a_builtin_trainable_takes_no_metric(tmp_path):
    path = write_space(
        tmp_path, trainable="svm", metric="accuracy", grid={"dataset": ["mnist"], "kernel": ["rbf"]}
    )
    result = CliRunner().invoke(app, ["show", str(path)])
    assert result.exit_code == 1
    assert "metric: only a space's own trainable takes one" in result.output


def test_a_custom_trainables_own_key_can_be_searched(tmp_path):
    path = custom_space(
        tmp_path,
        fixed={"dataset": "mnist", "epochs": 2, "shrink": {"uniform": [0.0, 0.9]}},
        grid={"note": ["x"]},
        search={"algorithm": "random", "num_samples": 3, "seed": 0},
    )
    spec = load_space(path)
    assert spec.search.samples and [t.params["shrink"] for t in spec.trials] == [0.0, 0.9]
