"""Sweeps as Ray Jobs on a real `ray start --head` with its dashboard on loopback and
token auth: submit, follow, list, stop, resume; bad addresses and job ids."""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from tune_mnist import load_epochs, load_results
from tune_mnist.cli.main import app

from ..conftest import TINY_RESNET, TINY_SVM, write_dataset, write_space


def dashboard_missing() -> str | None:
    """Why this Python cannot run Ray's dashboard (the job server), or None."""
    from ray._private.utils import get_dashboard_dependency_error

    error = get_dashboard_dependency_error()
    return (
        f"{error}: the job server needs ray[default] (pip install 'tune-mnist[jobs]')"
        if error
        else None
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(process: subprocess.Popen) -> None:
    """Stop `ray start --block` and everything it started, by its process group."""
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A one-node Ray cluster with its job server on 127.0.0.1: (address, environment)."""
    if why := dashboard_missing():
        pytest.skip(why)
    folder = tmp_path_factory.mktemp("jobs-cluster")
    token = folder / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_USAGE_STATS_ENABLED": "0",
        # the cluster's `tune-mnist` and `python` are this environment's
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    for key in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "TUNE_MNIST_RESULTS", "TUNE_MNIST_DATA"):
        env.pop(key, None)
    # short: the cluster's Unix sockets live in it (at most 107 bytes a path)
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    dashboard = free_port()
    head = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "ray"),
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={free_port()}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
            "--include-dashboard=true",
            # the job agent's own port: Ray's default (52365) may be another cluster's
            f"--dashboard-agent-listen-port={free_port()}",
            "--num-cpus=2",
            f"--temp-dir={temp}",
            "--disable-usage-stats",
        ],
        stdout=(folder / "head.log").open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        wait_for_job_server(address, token.read_text(), head, folder / "head.log")
        yield address, env
    finally:
        stop_group(head)
        shutil.rmtree(temp, ignore_errors=True)


def wait_for_job_server(address: str, token: str, head, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert head.poll() is None, log.read_text()
        try:
            answer = requests.get(
                f"{address}/api/jobs/", headers={"Authorization": f"Bearer {token}"}, timeout=5
            )
            if answer.status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(1)
    raise TimeoutError(f"no job server at {address} after {timeout_s} s:\n{log.read_text()}")


def tune_mnist(env, *args, timeout=300) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, in its own process (Ray reads its auth mode at start)."""
    return subprocess.run(
        [sys.executable, "-m", "tune_mnist", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def job_id(output: str) -> str:
    return next(line.split()[2] for line in output.splitlines() if line.startswith("submitted job"))


@pytest.fixture(scope="module")
def svm_job(cluster, tiny_data, tmp_path_factory):
    """A tiny SVM sweep submitted, then followed to its end."""
    address, env = cluster
    folder = tmp_path_factory.mktemp("svm-job")
    space = write_space(folder, name="svm-job", **TINY_SVM)
    results = folder / "results"
    submitted = tune_mnist(
        env,
        "submit",
        space,
        "--data-dir",
        tiny_data,
        "--storage-path",
        results,
        "--address",
        address,
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job = job_id(submitted.stdout)
    followed = tune_mnist(env, "logs", job, "--follow", "--address", address)
    return address, env, job, submitted, followed, results / "svm-job"


def test_submit_prints_the_job_and_where_results_go(svm_job):
    _, _, job, submitted, _, experiment = svm_job
    assert job.startswith("tune-mnist-svm-job-")
    assert f"results: {experiment}" in submitted.stdout
    # the space file travels with the job; the options are the cluster's paths
    assert "the cluster runs: tune-mnist sweep svm-job.yaml --data-dir " in submitted.stdout


def test_following_a_job_shows_the_sweep_to_its_end(svm_job):
    *_, followed, _ = svm_job
    assert followed.returncode == 0, followed.stdout + followed.stderr
    assert "[4/4] " in followed.stdout and "left)" in followed.stdout
    assert followed.stdout.rstrip().endswith("SUCCEEDED")


def test_the_results_are_fetched_from_the_storage_path(svm_job):
    *_, experiment = svm_job
    results = load_results(experiment)
    assert len(results) == 4 and set(results["status"]) == {"finished"}
    assert results["test_accuracy"].between(0, 100).all()


def test_jobs_lists_this_tools_jobs_only(svm_job):
    address, env, job, *_, experiment = svm_job
    # a job that is not tune-mnist's, on the same cluster
    other = tune_mnist_python(env, address)
    listed = tune_mnist(env, "jobs", "--address", address)
    assert listed.returncode == 0, listed.stderr
    assert job in listed.stdout and "SUCCEEDED" in listed.stdout
    assert str(experiment) in listed.stdout.replace("\n", "")
    assert other not in listed.stdout


def tune_mnist_python(env, address) -> str:
    """Submit a plain Ray job (not tune-mnist's) and return its id."""
    code = (
        "import sys; from ray.job_submission import JobSubmissionClient as C; "
        "print(C(sys.argv[1]).submit_job(entrypoint='echo hi'))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, address], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip().splitlines()[-1]


def test_status_reads_the_finished_experiment(svm_job):
    _, env, *_, experiment = svm_job
    shown = tune_mnist(env, "status", experiment)
    assert shown.returncode == 0, shown.stderr
    assert "svm-job: 4 finished, 0 running, 0 pending, 0 failed of 4 trials" in shown.stdout


def test_a_shipped_package_runs_a_builtin_space_on_its_sample(cluster, tmp_path):
    """--ship: this tune_mnist (built-in spaces and sample data inside) goes with the job."""
    address, env = cluster
    results = tmp_path / "results"
    run = tune_mnist(
        env,
        "submit",
        "q1b",
        "--smoke",
        "--trial",
        1,
        "--storage-path",
        results,
        "--ship",
        "--follow",
        "--address",
        address,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "the cluster runs: python -m tune_mnist sweep q1b --smoke --storage-path " in run.stdout
    assert "(package shipped)" in run.stdout and "[1/1] mnist/svm-" in run.stdout
    shipped = load_results(results / "q1b-smoke")
    assert len(shipped) == 1 and shipped["status"].tolist() == ["finished"]


def test_the_shipped_package_holds_the_builtin_spaces(tmp_path):
    from tune_mnist.run.jobs import package_copy

    copy = package_copy(tmp_path)
    assert (copy / "search_spaces" / "q1a.yaml").is_file()
    assert (copy / "sample").is_dir() and not list(copy.rglob("__pycache__"))
    listing = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tune_mnist, sys; from tune_mnist.spec.spaces import load_space; "
            "print(tune_mnist.__file__, len(load_space('q1a').trials))",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert listing.stdout.split() == [str(copy / "__init__.py"), "32"], listing.stderr


@pytest.fixture(scope="module")
def resnet_data(tmp_path_factory):
    """A data root with a larger mnist/ (epochs long enough to stop a sweep in between)."""
    root = tmp_path_factory.mktemp("resnet-data")
    write_dataset(root / "mnist", n_train=320, n_test=40)
    return root


def test_a_stopped_resnet_job_resumes_and_finishes(cluster, resnet_data, tmp_path):
    address, env = cluster
    # 12 epochs: the stop must land before both trials finish, on a loaded machine too
    grid = {"dataset": ["mnist"], "batch_size": [32, 48], "epochs": [12]}
    space = write_space(tmp_path, name="resnet-job", **{**TINY_RESNET, "grid": grid})
    results = tmp_path / "results"
    experiment = results / "resnet-job"
    options = ["--data-dir", resnet_data, "--storage-path", results, "--address", address]
    submitted = tune_mnist(env, "submit", space, *options)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job = job_id(submitted.stdout)

    # stop it once a trial has reported an epoch and before any finished
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        epochs = load_epochs(experiment) if (experiment / "tune_mnist.json").is_file() else None
        if epochs is not None and not epochs.empty:
            break
        time.sleep(0.5)
    assert epochs is not None and not epochs.empty, tune_mnist(
        env, "logs", job, "--address", address
    ).stdout
    stopped = tune_mnist(env, "stop", job, "--address", address)
    assert stopped.returncode == 0, stopped.stderr
    assert f"job {job}: STOPPED" in stopped.stdout
    assert "continue with: tune-mnist submit" in stopped.stdout and "--resume" in stopped.stdout

    # the experiment says what happened, and no sweep is at work on it
    before = load_results(experiment)
    assert (before["status"] != "finished").any(), before[["label", "status", "epoch"]]
    status = tune_mnist(env, "status", experiment)
    assert status.returncode == 0, status.stderr
    assert "no sweep is at work on it" in status.stdout
    logs = tune_mnist(env, "logs", job, "--address", address)
    assert "continue with `tune-mnist resume" in logs.stdout, logs.stdout

    # the same submission with --resume continues it to the end
    resumed = tune_mnist(env, "submit", space, *options, "--resume", "--follow")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = load_results(experiment)
    assert set(after["status"]) == {"finished"} and (after["epoch"] == 12).all()
    assert "resnet-job: 2 finished, 0 running, 0 pending, 0 failed of 2 trials" in (
        tune_mnist(env, "status", experiment).stdout
    )


def test_a_job_id_that_does_not_exist_is_one_line(cluster, tmp_path):
    address, env = cluster
    for command in ("logs", "stop"):
        run = tune_mnist(env, command, "tune-mnist-nope-0000", "--address", address)
        assert run.returncode == 1, run.stdout + run.stderr
        assert run.stderr.strip() == (
            f"error: no job tune-mnist-nope-0000 on {address}: "
            f"`tune-mnist jobs --address {address}` lists them"
        )


@pytest.mark.parametrize("token", [None, "0" * 64])
def test_a_job_without_the_token_is_one_line(cluster, tmp_path, token):
    address, env = cluster
    path = tmp_path / "token"
    if token:  # a wrong one
        path.write_text(token)
    no_token = {**env, "RAY_AUTH_TOKEN_PATH": str(path), "HOME": str(tmp_path)}
    run = tune_mnist(no_token, "jobs", "--address", address)
    assert run.returncode == 1
    assert run.stderr.startswith(f"error: the Ray job server at {address} requires a token")
    assert len(run.stderr.strip().splitlines()) == 1


runner = CliRunner()


def unused_address() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["jobs", "--address", "{unused}"], "error: cannot reach the Ray job server at {unused}: "),
        (
            ["logs", "j1", "--address", "{unused}"],
            "error: cannot reach the Ray job server at {unused}: ",
        ),
        (
            ["stop", "j1", "--address", "{unused}"],
            "error: cannot reach the Ray job server at {unused}: ",
        ),
        (
            ["submit", "q1b", "--storage-path", "/tmp/x", "--address", "{unused}"],
            "error: cannot reach the Ray job server at {unused}: ",
        ),
        (
            ["jobs", "--address", "127.0.0.1:8265"],
            "error: --address 127.0.0.1:8265: expected the dashboard's URL",
        ),
        (["jobs"], "error: --address: the cluster's job server"),
        (["submit", "q1b", "--address", "{unused}"], "error: submit needs --storage-path"),
        (
            ["submit", "q1b", "--storage-path", "rel/results", "--address", "{unused}"],
            "error: --storage-path rel/results: a job resolves paths on the cluster",
        ),
        (
            [
                "submit",
                "q1b",
                "--storage-path",
                "/r",
                "--data-dir",
                "data",
                "--address",
                "{unused}",
            ],
            "error: --data-dir data: a job resolves paths on the cluster",
        ),
        (
            ["submit", "q1b", "--storage-path", "/r", "--insecure", "--address", "{unused}"],
            "error: --insecure: not for a job",
        ),
        (
            [
                "submit",
                "q1b",
                "--storage-path",
                "/r",
                "--svm-cpus",
                "many",
                "--address",
                "{unused}",
            ],
            "error: sweep options: Invalid value for '--svm-cpus'",
        ),
        (
            ["submit", "nope", "--storage-path", "/r", "--address", "{unused}"],
            "error: unknown space 'nope': built-in spaces are",
        ),
    ],
)
def test_bad_job_input_is_one_line_and_writes_nothing(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    unused = unused_address()
    result = runner.invoke(app, [a.replace("{unused}", unused) for a in args])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.replace("{unused}", unused)), lines
    assert list(tmp_path.iterdir()) == []
