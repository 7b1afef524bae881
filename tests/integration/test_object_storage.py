"""Experiments in object storage: a real S3 server on loopback (moto), real sweeps into it."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from tune_mnist import load_epochs, load_results
from tune_mnist.cli.main import app
from tune_mnist.store.storage import cache_dir

from ..conftest import TINY_RESNET, TINY_SVM, write_space
from ..servers import s3_server, tensorboard_scalar_tags

URI = "s3://bucket/runs/tiny"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """The server, and its endpoint and credentials in this process's environment (Ray's
    local workers inherit them, as a cluster's nodes would have their own)."""
    with s3_server() as server, pytest.MonkeyPatch.context() as env:
        for key, value in server.env().items():
            env.setenv(key, value)
        yield server


@pytest.fixture(scope="module")
def svm_sweep(s3, tiny_data, tmp_path_factory):
    """A tiny SVM sweep written to s3://bucket/runs (its local copy in a cache of its own)."""
    folder = tmp_path_factory.mktemp("s3sweep")
    space = write_space(folder, **TINY_SVM)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TUNE_MNIST_CACHE", str(folder / "cache"))
        args = ["sweep", str(space), "--data-dir", str(tiny_data)]
        result = CliRunner().invoke(app, [*args, "--storage-path", "s3://bucket/runs"])
    assert result.exit_code == 0, result.output
    return result


def trial_folders(s3, prefix: str) -> dict[str, list[str]]:
    """Trial folder -> the names of its objects."""
    found: dict[str, list[str]] = {}
    for key in s3.keys(prefix):
        parts = key[len(prefix) :].split("/")
        if len(parts) == 2 and parts[1] and "_" in parts[0] and parts[0] != "report":
            found.setdefault(parts[0], []).append(parts[1])
    return found


def test_a_sweep_writes_the_experiment_to_the_bucket(s3, svm_sweep):
    keys = s3.keys("runs/tiny/")
    assert {"runs/tiny/tune_mnist.json", "runs/tiny/tuner.pkl", "runs/tiny/.tune-mnist.sig"} <= set(
        keys
    )
    assert "runs/tiny/report/tables.md" in keys and "runs/tiny/report/index.html" in keys
    folders = trial_folders(s3, "runs/tiny/")
    assert len(folders) == 4
    for names in folders.values():
        assert {"params.json", "result.json", "predictions.npz"} <= set(names)
    meta = json.loads(s3.read("runs/tiny/tune_mnist.json"))
    assert meta["settings"]["storage_path"] == "s3://bucket/runs" and len(meta["trials"]) == 4
    assert f"wrote 18 files to {URI}/report" in svm_sweep.output
    assert not any(k.rsplit("/", 1)[-1].startswith(".tune-mnist-probe") for k in keys)


def test_summarize_reads_the_uri_and_writes_the_report_back(s3, svm_sweep, tmp_path):
    client = s3.client()
    for key in s3.keys("runs/tiny/report/"):
        client.delete_object(Bucket="bucket", Key=key)
    result = CliRunner().invoke(app, ["summarize", URI, "--format", "md", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "tiny: compute used" in result.output
    tables = s3.read("runs/tiny/report/tables.md").decode()
    local = cache_dir(URI) / "report" / "tables.md"  # this test's own, fresh, cache
    assert str(local).startswith(str(tmp_path)) and local.read_text() == tables
    assert "runs/tiny/report/tiny.csv" in s3.keys("runs/tiny/report/")


def test_plot_draws_from_the_uri_and_uploads_the_figures(s3, svm_sweep):
    client = s3.client()
    for key in (k for k in s3.keys("runs/tiny/report/") if k.endswith(".png")):
        client.delete_object(Bucket="bucket", Key=key)
    result = CliRunner().invoke(app, ["plot", URI])
    assert result.exit_code == 0, result.output
    drawn = sorted(line.rsplit("/", 1)[-1] for line in result.output.splitlines())
    uploaded = [k for k in s3.keys("runs/tiny/report/") if k.endswith(".png")]
    assert drawn and [k.rsplit("/", 1)[-1] for k in uploaded] == drawn


def test_load_results_and_epochs_read_the_uri(s3, svm_sweep):
    frame = load_results(URI)
    assert len(frame) == 4 and set(frame["status"]) == {"finished"}
    assert frame["test_accuracy"].between(0, 100).all()
    # what the sweep's own table said, read back from the bucket alone
    assert all(f"{a:.1f}" in svm_sweep.output for a in frame["test_accuracy"])
    assert load_epochs(URI).empty  # SVMs report no epochs
    assert (cache_dir(URI) / "tune_mnist.json").is_file()
    assert not list(cache_dir(URI).rglob("checkpoint_*"))


def test_status_reads_the_uri(s3, svm_sweep):
    result = CliRunner().invoke(app, ["status", URI])
    assert result.exit_code == 0, result.output
    assert "4 finished" in result.output.replace("\n", " "), result.output


def test_every_trial_writes_tensorboard_events(s3, svm_sweep):
    for folder, names in trial_folders(s3, "runs/tiny/").items():
        events = [n for n in names if n.startswith("events.out.tfevents")]
        assert len(events) == 1, folder
        tags = tensorboard_scalar_tags(s3.read(f"runs/tiny/{folder}/{events[0]}"))
        assert "ray/tune/test_accuracy" in tags


def one_error_line(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    assert output.rstrip().endswith(errors[0])
    return errors[0]


@pytest.mark.parametrize(
    "storage_path, env, message",
    [
        (
            "s3://no-such-bucket/runs",
            {},
            "bucket 'no-such-bucket' does not exist at http://127.0.0.1:",
        ),
        (
            "s3://bucket/bad-secret",
            {"AWS_SECRET_ACCESS_KEY": "wrong"},
            "refused these credentials (SIGNATURE_DOES_NOT_MATCH)",
        ),
        (
            "s3://bucket/bad-key",
            {"AWS_ACCESS_KEY_ID": "AKIANOSUCHKEY"},
            "refused these credentials (INVALID_ACCESS_KEY_ID)",
        ),
        (
            "nosuch://bucket/runs",
            {},
            "storage path nosuch://bucket/runs/tiny: Unrecognized filesystem type in URI",
        ),
        (
            "s3://bucket/runs?endpoint_override=x",
            {},
            "storage path s3://bucket/runs: no query or credentials in the URI",
        ),
    ],
)
def test_bad_object_storage_is_one_line_and_writes_nothing(
    s3, tmp_path, tiny_data, monkeypatch, storage_path, env, message
):
    before = s3.keys()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    space = write_space(tmp_path, **TINY_SVM)
    args = ["sweep", str(space), "--data-dir", str(tiny_data), "--storage-path", storage_path]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert message in one_error_line(result.output)
    monkeypatch.undo()
    assert s3.keys() == before  # not even the probe object
    assert not (tmp_path / "cache").exists()  # no local copy either


def test_reading_a_uri_with_wrong_credentials_or_nothing_there_is_one_line(
    s3, svm_sweep, monkeypatch
):
    missing = CliRunner().invoke(app, ["summarize", "s3://bucket/runs/nothing"])
    assert missing.exit_code == 1
    assert "s3://bucket/runs/nothing: no such experiment" in one_error_line(missing.output)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    refused = CliRunner().invoke(app, ["summarize", URI])
    assert refused.exit_code == 1
    assert "refused these credentials" in one_error_line(refused.output)


def result_lines(s3, prefix: str) -> dict[str, set]:
    """Finished trial folder -> its reports as (epoch, epoch seconds, train time so far)."""
    found = {}
    for folder in trial_folders(s3, prefix):
        try:
            text = s3.read(f"{prefix}{folder}/result.json").decode()
        except Exception:  # not uploaded yet
            continue
        reports = [json.loads(line) for line in text.splitlines() if line.strip()]
        if any(r.get("trial_finished") for r in reports):
            found[folder] = {(r["epoch"], r["epoch_seconds"], r["train_time_ms"]) for r in reports}
    return found


def test_a_killed_sweep_resumes_from_the_uri(s3, tmp_path, tiny_data):
    space = {
        **TINY_RESNET,
        "grid": {"dataset": ["mnist"], "batch_size": [16, 32, 48], "epochs": [2]},
    }
    path = write_space(tmp_path, **space)
    uri, prefix = "s3://bucket/resume/tiny", "resume/tiny/"
    command = [sys.executable, "-m", "tune_mnist", "sweep", str(path), "--data-dir", str(tiny_data)]
    driver = subprocess.Popen(
        [*command, "--storage-path", "s3://bucket/resume"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "TUNE_MNIST_CACHE": str(tmp_path / "driver-cache")},
    )
    try:
        deadline = time.monotonic() + 300
        while not (done_before := result_lines(s3, prefix)):
            assert driver.poll() is None and time.monotonic() < deadline, driver.stdout.read()
            time.sleep(0.5)
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started
        driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert len(done_before) < 3

    result = CliRunner().invoke(app, ["resume", uri])
    assert result.exit_code == 0, result.output
    frame = load_results(uri)
    assert len(frame) == 3 and set(frame["status"]) == {"finished"}
    assert (frame["epoch"] == 2).all()
    assert len(trial_folders(s3, prefix)) == 3  # each trial exactly once
    done_after = result_lines(s3, prefix)
    for name, epochs in done_before.items():  # finished trials were not trained again
        assert done_after[name] == epochs
    assert f"{prefix}report/tables.md" in s3.keys(prefix)


@pytest.mark.parametrize("key", ["a/../../../../escaped.txt", "a/../../escaped.txt"])
def test_an_object_key_leading_out_of_the_local_copy_is_refused(s3, tmp_path, monkeypatch, key):
    """A key planted in a shared bucket (`exp/../../x`) must not make a download write
    outside the experiment's local copy (where the signing key would be in reach)."""
    cache = tmp_path / "deep" / "er" / "cache"
    monkeypatch.setenv("TUNE_MNIST_CACHE", str(cache))
    client = s3.client()
    client.put_object(Bucket="bucket", Key="planted/exp/tune_mnist.json", Body=b"{}")
    client.put_object(Bucket="bucket", Key=f"planted/exp/{key}", Body=b"planted")
    result = CliRunner().invoke(app, ["status", "s3://bucket/planted/exp"])
    assert result.exit_code == 1, result.output
    assert "leads out of the copy" in one_error_line(result.output)
    assert not [p for p in tmp_path.rglob("escaped.txt")]


def test_a_uri_with_dot_dot_segments_is_refused_before_anything_is_deleted(s3, tmp_path):
    result = CliRunner().invoke(app, ["status", "s3://bucket/planted/exp/.."])
    assert result.exit_code == 1, result.output
    assert "s3://bucket/planted/exp/.." in one_error_line(result.output)
