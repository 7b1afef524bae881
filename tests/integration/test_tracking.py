"""Tracking: a real `mlflow server` on loopback (SQLite backend), a real sweep logging to it;
TensorBoard event files in every trial folder."""

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tune_mnist import load_epochs, load_results
from tune_mnist.cli.main import app

from ..conftest import TINY_RESNET, TINY_SVM, write_space
from ..servers import free_port, mlflow_server, tensorboard_scalar_tags

pytest.importorskip("mlflow")  # the `tracking` extra (in `dev`: CI runs these)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


@pytest.fixture(scope="module")
def tracked_sweep(server, tiny_data, tmp_path_factory):
    """A tiny ResNet sweep (2 trials, 2 epochs each) logged to the server."""
    folder = tmp_path_factory.mktemp("tracked")
    space = write_space(folder, **TINY_RESNET)
    args = ["sweep", str(space), "--data-dir", str(tiny_data), "--storage-path", str(folder)]
    result = CliRunner().invoke(app, [*args, "--mlflow-uri", server])
    assert result.exit_code == 0, result.output
    return folder / "tiny"


@pytest.fixture(scope="module")
def runs(server, tracked_sweep):
    """The MLflow experiment's runs, as the server gives them back: (parent, trial runs)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(server)
    experiment = client.get_experiment_by_name("tiny")
    every = client.search_runs([experiment.experiment_id])
    parents = [r for r in every if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    nested = [r for r in every if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(every) == 1 + len(nested)
    return client, parent, nested


def test_one_parent_run_with_the_space_settings_and_commit(runs, tracked_sweep):
    _, parent, _ = runs
    assert parent.info.status == "FINISHED" and parent.info.run_name == "tiny"
    params, tags = parent.data.params, parent.data.tags
    assert params["space.trainable"] == "resnet" and params["space.name"] == "tiny"
    assert params["space.grid.batch_size"] == "[32, 48]" and params["trials"] == "2"
    assert params["settings.max_failures"] == "2" and params["settings.smoke"] == "false"
    assert tags["mlflow.source.git.commit"]
    assert tags["tune_mnist.experiment"] == str(tracked_sweep)


def test_one_nested_run_per_trial_with_its_config_and_metrics_per_epoch(runs, tracked_sweep):
    client, _, nested = runs
    results = load_results(tracked_sweep).set_index("label")
    epochs = load_epochs(tracked_sweep)
    assert sorted(r.info.run_name for r in nested) == sorted(results.index)
    for run in nested:
        assert run.info.status == "FINISHED"
        trial = results.loc[run.info.run_name]
        assert run.data.params["trial/batch_size"] == str(trial["batch_size"])
        assert run.data.params["trial/model"] == "resnet18"
        history = client.get_metric_history(run.info.run_id, "test_accuracy")
        assert [m.step for m in history] == [1, 2]  # one per epoch
        per_epoch = epochs[epochs["label"] == run.info.run_name].sort_values("epoch")
        assert [m.value for m in history] == pytest.approx(per_epoch["test_accuracy"].tolist())
        # the final metrics: each metric's last value
        assert run.data.metrics["test_accuracy"] == pytest.approx(trial["test_accuracy"])
        assert run.data.metrics["epoch"] == 2


def test_the_report_is_attached_to_the_parent_run(runs, tracked_sweep, tmp_path):
    client, parent, _ = runs
    names = {Path(a.path).name for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"tables.md", "index.html", "tiny.csv", "provenance.json"} <= names
    assert any(n.endswith(".png") for n in names)
    assert "space.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    copy = client.download_artifacts(parent.info.run_id, "report/tables.md", str(tmp_path))
    assert Path(copy).read_text() == (tracked_sweep / "report" / "tables.md").read_text()


def test_every_trial_writes_tensorboard_events(tracked_sweep):
    folders = [p.parent for p in tracked_sweep.glob("*/params.json")]
    assert len(folders) == 2
    for folder in folders:
        events = list(folder.glob("events.out.tfevents.*"))
        assert len(events) == 1, folder
        tags = tensorboard_scalar_tags(events[0].read_bytes())
        assert {"ray/tune/test_accuracy", "ray/tune/train_loss"} <= tags


def test_an_unreachable_server_stops_the_sweep_before_it_starts(tmp_path, tiny_data):
    space = write_space(tmp_path, **TINY_SVM)
    storage = tmp_path / "runs"
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    args = ["sweep", str(space), "--data-dir", str(tiny_data), "--storage-path", str(storage)]
    result = CliRunner().invoke(app, [*args, "--mlflow-uri", uri])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot reach the MLflow server at {uri}: Connection refused"]
    assert "Traceback" not in result.output
    assert not storage.exists()  # nothing written


@pytest.mark.parametrize(
    "env, missing, message",
    [
        (
            {},
            False,
            "--mlflow: no tracking server: add --mlflow-uri URI or set MLFLOW_TRACKING_URI",
        ),
        (
            {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
            False,
            "cannot reach the MLflow server at http://127.0.0.1:9",
        ),
        (
            {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
            True,
            "--mlflow needs the mlflow package: pip install 'tune-mnist[tracking]'",
        ),
    ],
)
def test_bad_tracking_input_is_one_line(tmp_path, tiny_data, monkeypatch, env, missing, message):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if missing:  # as if the extra were not installed: `import mlflow` fails
        monkeypatch.setitem(sys.modules, "mlflow", None)
    space = write_space(tmp_path, **TINY_SVM)
    storage = tmp_path / "runs"
    args = ["sweep", str(space), "--data-dir", str(tiny_data), "--storage-path", str(storage)]
    result = CliRunner().invoke(app, [*args, "--mlflow"])
    assert result.exit_code == 1
    assert f"error: {message}" in result.output and "Traceback" not in result.output
    assert not storage.exists()
