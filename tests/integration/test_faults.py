"""Crashes on a real local Ray: a killed trial worker, a killed or interrupted driver."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tune_mnist import load_epochs, load_results, load_space
from tune_mnist.cli.main import app
from tune_mnist.run.sweep import SweepSettings, run_sweep

from ..conftest import TINY_RESNET, write_dataset, write_space


def reports(trial_dir: Path) -> list[dict]:
    path = trial_dir / "result.json"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(condition, timeout_s: float = 180, every_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every_s)
    raise TimeoutError("condition not met in time")


@pytest.fixture(scope="module")
def slower_data(tmp_path_factory):
    """Enough images that an epoch takes a few seconds: room to kill mid-trial."""
    root = tmp_path_factory.mktemp("slower")
    write_dataset(root / "mnist", n_train=320, n_test=40)
    return root


def test_killed_worker_continues_from_its_last_checkpoint(local_ray, tmp_path, slower_data):
    space = {**TINY_RESNET, "grid": {"dataset": ["mnist"], "batch_size": [32], "epochs": [4]}}
    spec = load_space(write_space(tmp_path, **space))
    storage = tmp_path / "runs"
    killed = {}

    def kill_after_first_epoch():
        trial_dir = wait_for(lambda: next((storage / "tiny").glob("*/result.json"), None)).parent
        first = wait_for(lambda: reports(trial_dir))[0]
        os.kill(first["pid"], signal.SIGKILL)
        killed.update(pid=first["pid"], epoch=len(reports(trial_dir)))

    killer = threading.Thread(target=kill_after_first_epoch, daemon=True)
    killer.start()
    result = run_sweep(
        spec, SweepSettings(data_dir=str(slower_data), storage_path=str(storage), max_failures=2)
    )
    killer.join(timeout=5)

    row = result.results.iloc[0]
    assert row["status"] == "finished" and row["epoch"] == 4
    assert killed["epoch"] < 4  # it really died mid-run
    assert row["pid"] != killed["pid"]  # ... and finished on a new worker
    assert row["resumed_from_epoch"] >= 1  # from its checkpoint, not from epoch 1
    epochs = load_epochs(result.experiment_dir)
    assert epochs["epoch"].tolist() == [1, 2, 3, 4]
    # train time counts the epochs trained, not the wall time lost to the crash
    assert row["train_time_ms"] == pytest.approx(1000 * epochs["epoch_seconds"].sum())


def start_sweep(space: Path, data: Path, storage: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "tune_mnist",  # __main__.py: the same app as the tune-mnist command
        "sweep",
        str(space),
        "--data-dir",
        str(data),
        "--storage-path",
        str(storage),
    ]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def finished_trials(experiment: Path) -> dict[str, set]:
    """Finished trial folder -> the epochs it trained, as (epoch, seconds, train time so far).

    A driver killed between a trial's last report and Tune's next state save (up to 1 s)
    makes resume report that trial's saved final epoch once more; no epoch is retrained.
    """
    return {
        d.name: {(r["epoch"], r["epoch_seconds"], r["train_time_ms"]) for r in reports(d)}
        for d in experiment.glob("*_*")
        if any(r.get("trial_finished") for r in reports(d))
    }


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT", "SIGTERM"])
def test_killed_driver_resumes_without_rerunning_finished_trials(tmp_path, tiny_data, how):
    space = {
        **TINY_RESNET,
        "grid": {"dataset": ["mnist"], "batch_size": [16, 24, 32, 48], "epochs": [2]},
    }
    path = write_space(tmp_path, **space)
    storage = tmp_path / "runs"
    experiment = storage / "tiny"
    driver = start_sweep(path, tiny_data, storage)
    try:
        done_before = wait_for(lambda: finished_trials(experiment), timeout_s=240, every_s=0.2)
        if how == "SIGKILL":
            os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started
        elif how == "SIGINT":
            driver.send_signal(signal.SIGINT)  # Ctrl-C
        else:
            driver.send_signal(signal.SIGTERM)  # what Slurm and Kubernetes send
        output, _ = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode != 0, output
    if how != "SIGKILL":
        assert "tune-mnist resume" in output, output
        # Ctrl-C: Tune stops cleanly and the unfinished trials are listed (3), or the
        # interrupt reaches the CLI (130); SIGTERM: the same clean stop, then 143
        assert driver.returncode in {"SIGINT": (3, 130), "SIGTERM": (143,)}[how], output
        assert "SIGTERM received" not in output  # Ray's C++ abort, which SIGTERM once was
    assert len(done_before) < 4

    result = CliRunner().invoke(app, ["resume", str(experiment)])
    assert result.exit_code == 0, result.output
    frame = load_results(experiment)
    assert len(frame) == 4 and set(frame["status"]) == {"finished"}
    assert len(list(experiment.glob("*/params.json"))) == 4  # each trial exactly once
    done_after = finished_trials(experiment)
    for name, epochs in done_before.items():  # finished trials were not trained again
        assert done_after[name] == epochs


def test_a_second_run_of_one_experiment_is_refused_while_the_first_holds_it(tmp_path, tiny_data):
    path = write_space(tmp_path, **TINY_RESNET)
    storage = tmp_path / "runs"
    first = start_sweep(path, tiny_data, storage)
    try:
        owner = storage / "tiny" / ".tune-mnist.owner"
        wait_for(lambda: owner.is_file() and (storage / "tiny" / "tune_mnist.json").is_file())
        args = ["sweep", str(path), "--data-dir", str(tiny_data), "--storage-path", str(storage)]
        second = CliRunner().invoke(app, args)
        assert second.exit_code == 1
        assert f"is in use by another tune-mnist run (pid {first.pid} on" in second.output
        again = CliRunner().invoke(app, ["resume", str(storage / "tiny")])
        assert again.exit_code == 1 and "is in use by another tune-mnist run" in again.output
        output, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == 0, output
    assert set(load_results(storage / "tiny")["status"]) == {"finished"}
    assert not owner.exists()  # released on exit
    summary = CliRunner().invoke(app, ["resume", str(storage / "tiny")])
    assert summary.exit_code == 0, summary.output  # free again once the first has ended


LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def test_a_local_sweep_listens_on_loopback_only_and_keeps_its_token_private(tmp_path, tiny_data):
    psutil = pytest.importorskip("psutil")
    grid = {"dataset": ["mnist"], "batch_size": [32, 48], "epochs": [3]}  # time to look
    path = write_space(tmp_path, **{**TINY_RESNET, "grid": grid})
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    env |= {"RAY_AUTH_MODE": "disabled", "HOME": str(tmp_path)}  # tune-mnist turns auth back on
    storage = tmp_path / "runs"
    command = [sys.executable, "-m", "tune_mnist", "sweep", str(path), "--data-dir", str(tiny_data)]
    driver = subprocess.Popen(
        [*command, "--storage-path", str(storage)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env=env,
    )
    try:
        wait_for(lambda: next(storage.glob("tiny/*/result.json"), None), timeout_s=240)
        tree = [psutil.Process(driver.pid), *psutil.Process(driver.pid).children(recursive=True)]
        pids = {p.pid for p in tree}
        listening = {
            (c.laddr.ip, c.pid)
            for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids
        }
        token = tmp_path / ".ray" / "auth_token"
        mode = token.stat().st_mode & 0o777 if token.is_file() else None
        output, _ = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 0, output
    assert listening, "the sweep's processes listened on nothing: the listing did not work"
    assert {ip for ip, _ in listening} <= LOOPBACK, listening
    assert mode == 0o600, oct(mode or 0)
