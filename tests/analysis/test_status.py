"""`tune-mnist status`: an experiment's trials by state and its time so far, from its files."""

import json
import os
import platform
import subprocess
import sys
from datetime import datetime

import pytest
from typer.testing import CliRunner

from tune_mnist.analysis.status import experiment_status, format_duration
from tune_mnist.cli.main import app
from tune_mnist.spec.configs import trial_to_dict
from tune_mnist.spec.spaces import load_space
from tune_mnist.store.experiment import OWNER_FILE

from ..conftest import write_space
from ..experiments import COMPARE, make_experiment, trial_folder

runner = CliRunner()


@pytest.fixture
def spec(tmp_path):
    return load_space(write_space(tmp_path, name="cmp", **COMPARE))  # 6 trials, 2 epochs


def cut_short(folder, index):
    """Trial `index` stops after its first epoch: its last report is not the final one."""
    result = trial_folder(folder, index) / "result.json"
    result.write_text(result.read_text().splitlines()[0])


def own(folder, pid=None):
    """The owner file a sweep keeps while it holds the folder (experiment.writing)."""
    (folder / OWNER_FILE).write_text(
        f"pid {pid or os.getpid()} on {platform.node()}, since 2026-01-01 00:00:00"
    )


def tune_state(folder, spec, statuses):
    """Tune's experiment state file, as TuneController.save_to_dir writes it."""
    data = [
        [json.dumps({"status": status, "config": {"trial": trial_to_dict(trial)}}), "{}"]
        for trial, status in zip(spec.trials, statuses, strict=True)
    ]
    (folder / "experiment_state-2026-01-01_00-00-00.json").write_text(
        json.dumps({"trial_data": data, "runner_data": {}, "stats": {}})
    )


def test_a_finished_experiment(tmp_path, spec):
    folder = make_experiment(tmp_path / "exp", spec, lambda t: 90.0)
    status = experiment_status(folder)
    assert status.total == 6 and status.count("finished") == 6 and status.complete
    assert not status.active and status.driver is None
    assert status.trial_seconds == pytest.approx(6 * 4.0)  # 2 epochs of 2 s each
    assert isinstance(status.started_at, datetime) and status.elapsed_s >= 0
    assert {t.epoch for t in status.trials} == {2} and {t.epochs for t in status.trials} == {2}


def test_a_stopped_experiment_has_interrupted_pending_and_failed_trials(tmp_path, spec):
    folder = make_experiment(tmp_path / "exp", spec, lambda t: 90.0, skip=(4, 5))
    cut_short(folder, 2)
    (trial_folder(folder, 3) / "result.json").write_text("")
    (trial_folder(folder, 3) / "error.txt").write_text("Traceback...\nRuntimeError: CUDA OOM\n")
    status = experiment_status(folder)
    assert [t.status for t in status.trials] == [
        "finished",
        "finished",
        "interrupted",  # started, and no sweep is at work: waits for resume
        "failed",
        "pending",
        "pending",
    ]
    assert status.trials[2].epoch == 1 and status.trials[2].accuracy == pytest.approx(45.0)
    assert not status.complete and not status.active


def test_a_running_sweep_tells_running_from_pending(tmp_path, spec):
    folder = make_experiment(tmp_path / "exp", spec, lambda t: 90.0, skip=(5,))
    for index in (2, 3, 4):
        cut_short(folder, index)
    own(folder)  # this process, on this machine: alive
    # Tune: trial 4 was started before and waits to be run again; 5 not started yet
    tune_state(folder, spec, ["TERMINATED"] * 2 + ["RUNNING", "RUNNING", "PENDING", "PENDING"])
    status = experiment_status(folder)
    assert status.active and status.driver.startswith(f"pid {os.getpid()} on ")
    assert [t.status for t in status.trials] == [
        "finished",
        "finished",
        "running",
        "running",
        "pending",
        "pending",
    ]


def test_a_driver_that_died_runs_nothing(tmp_path, spec):
    folder = make_experiment(tmp_path / "exp", spec, lambda t: 90.0)
    cut_short(folder, 0)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    own(folder, int(dead.stdout))
    status = experiment_status(folder)
    assert not status.active and status.trials[0].status == "interrupted"


def test_a_damaged_tune_state_is_ignored(tmp_path, spec):
    folder = make_experiment(tmp_path / "exp", spec, lambda t: 90.0)
    (folder / "experiment_state-x.json").write_text('{"trial_data": [["not json')
    assert experiment_status(folder).count("finished") == 6


def test_status_command_prints_counts_unfinished_trials_and_what_to_do(tmp_path, spec):
    folder = make_experiment(tmp_path / "exp", spec, lambda t: 90.0, skip=(5,))
    cut_short(folder, 4)
    result = runner.invoke(app, ["status", str(folder)])
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith(
        "cmp: 4 finished, 0 running, 1 pending, 0 failed, 1 interrupted of 6 trials; "
    )
    assert "since the start (trial time 0:00:18)" in first
    assert "2 trial(s) not finished" in result.output and "1/2" in result.output
    assert f"continue with `tune-mnist resume {folder}`" in result.output.replace("\n", "")


def test_status_of_a_folder_without_an_experiment_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "empty", tmp_path / "missing"):
        result = runner.invoke(app, ["status", str(path)])
        assert result.exit_code == 1
        assert len(result.output.strip().splitlines()) == 1
        assert result.output.startswith(f"error: {path}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    assert list((tmp_path / "empty").iterdir()) == []


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "—"), (0, "0:00:00"), (61.4, "0:01:01"), (3 * 3600 + 5, "3:00:05")],
)
def test_format_duration(seconds, shown):
    assert format_duration(seconds) == shown
