"""Every command through Typer's CliRunner: exit codes, output, files written."""

import re
import shutil
from pathlib import Path

import pytest
import ray
from typer.testing import CliRunner

from tune_mnist.cli.main import app

from ..conftest import TINY_RESNET, TINY_SVM, write_space

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_spaces_lists_builtins_with_trial_counts():
    result = invoke("spaces")
    assert result.exit_code == 0
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    assert (
        "32" in lines["q1a"]
        and "4" in lines["q1b"]
        and "5" in lines["q1b-full"]
        and "10" in lines["q2"]
        and "96" in lines["q2-full"]
    )


def test_show_expands_the_trials_and_their_resources():
    result = invoke("show", "q1a")
    assert result.exit_code == 0
    assert "q1a: 32 trials (q1a.yaml)" in result.output
    assert "0.25 GPU on a cluster with GPUs, else 1 CPU" in result.output
    assert result.output.count("resnet50") == 16


def test_sweep_help_shows_every_option_and_its_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one line per option
    result = invoke("sweep", "--help")
    assert result.exit_code == 0
    lines = {line.split()[1]: line for line in result.output.splitlines() if "│ --" in line}
    assert "(default: the space's)" in lines["--gpus-per-trial"]
    assert "(default: eager)" in lines["--compile"]
    assert "reduce-overhead" in lines["--compile"]


def test_show_svm_space_says_cpus_and_memory():
    result = invoke("show", "q1b")
    assert result.exit_code == 0 and "CPUs" in result.output and "never a GPU" in result.output
    assert "memory (GiB)" in result.output and "available memory" in result.output
    rows = [line for line in result.output.splitlines() if "│ mnist" in line]
    assert rows and all("1.81" in row for row in rows)  # 10,000 images, precomputed


def test_show_svm_memory_of_an_explicit_backend():
    result = invoke("show", "q1b-full", "--svm-backend", "libsvm")
    rows = [line for line in result.output.splitlines() if "60000" in line]
    assert len(rows) == 5 and all("libsvm" in row and "1.7" in row for row in rows)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\ntrainable: resnet\ngrid: {lr: [0.1,\n", "x.yaml: not valid YAML at line"),
        (
            "name: x\ntrainable: svm\ngrid: {dataset: [mnist], kernel: [rbf]}\nfoo: 1\n",
            "x.yaml: foo: unknown key",
        ),
        (
            "name: x\ntrainable: svm\ngrid: {dataset: [mnist], kernel: [cubic]}\n",
            "x.yaml: grid.kernel: Input should be",
        ),
        (
            "name: x\ntrainable: svm\ngrid: {dataset: [mnist], kernel: []}\n",
            "x.yaml: grid.kernel: expected a non-empty list",
        ),
    ],
)
def test_show_bad_space_file_one_line_and_exit_1(tmp_path, text, message):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    result = invoke("show", path)
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {message}")
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_unknown_space():
    result = invoke("show", "q9")
    assert result.exit_code == 1 and "unknown space 'q9'" in result.output


@pytest.fixture(scope="module")
def cli_sweep(tiny_data, tmp_path_factory):
    """One real CLI sweep that starts (and stops) its own local Ray."""
    folder = tmp_path_factory.mktemp("cli")
    space = write_space(folder, **TINY_SVM)
    result = invoke("sweep", space, "--data-dir", tiny_data, "--storage-path", folder / "runs")
    return result, folder / "runs" / "tiny", space, folder


def test_sweep_runs_prints_and_writes_tables(cli_sweep):
    result, experiment, _, _ = cli_sweep
    assert result.exit_code == 0, result.output
    assert "tiny: 4 trials" in result.output
    assert "svm trials ask for 1 CPU" in result.output
    assert "Ray dashboard" not in result.output  # a local Ray runs none unless --dashboard
    assert "tiny: SVM baselines" in result.output
    report = experiment / "report"
    written = len([p for p in report.iterdir() if p.suffix != ".png"])  # figures aside
    assert f"wrote {written} files to {report}" in result.output
    for name in ("tables.md", "index.html", "provenance.json", "tiny.csv", "results.parquet"):
        assert (report / name).is_file(), name
    assert (report / "tiny-accuracy-vs-time.png").is_file()
    assert (
        (report / "tiny.csv")
        .read_text()
        .startswith("#,dataset,kernel,train samples,test accuracy (%),training time (ms),95% CI")
    )
    assert not ray.is_initialized()  # the local Ray it started is gone


def test_summarize_gives_the_same_tables_without_rerunning(cli_sweep):
    _, experiment, _, _ = cli_sweep
    before = (experiment / "report" / "tables.md").read_text()
    result = invoke("summarize", experiment)
    assert result.exit_code == 0
    assert "tiny: SVM baselines" in result.output
    after = (experiment / "report" / "tables.md").read_text()
    # the tables are the same; the timing section now knows how long the sweep's own
    # report took, which the sweep could not when it wrote its copy
    timing = "## Where the time went"
    assert after.split(timing)[0] == before.split(timing)[0]
    unknown = re.compile(r"report: tables and figures[^|]*\|\s*nan")
    assert unknown.search(before.split(timing)[1]) and not unknown.search(after.split(timing)[1])


def test_sweep_into_an_existing_experiment_is_refused(cli_sweep, tiny_data):
    _, experiment, space, folder = cli_sweep
    before = (experiment / "report" / "tables.md").read_text()
    result = invoke("sweep", space, "--data-dir", tiny_data, "--storage-path", folder / "runs")
    assert result.exit_code == 1
    assert "already holds an experiment: add --resume" in result.output
    assert (experiment / "report" / "tables.md").read_text() == before


def test_summarize_an_incomplete_experiment_lists_what_is_missing(cli_sweep, tmp_path):
    _, experiment, _, _ = cli_sweep
    copy = Path(shutil.copytree(experiment, tmp_path / "partial"))
    trial_dirs = sorted(p.parent for p in copy.glob("*/params.json"))
    shutil.rmtree(trial_dirs[0])  # never started
    (trial_dirs[1] / "result.json").write_text("")  # started, then failed
    (trial_dirs[1] / "error.txt").write_text("Traceback...\nRuntimeError: worker died\n")
    result = invoke("summarize", copy)
    assert result.exit_code == 3
    assert "2 trials did not finish" in result.output
    assert "pending" in result.output and "RuntimeError: worker died" in result.output
    markdown = (copy / "report" / "tables.md").read_text()
    assert "## Incomplete trials (2)" in markdown


@pytest.mark.parametrize("make", ["missing", "not-an-experiment"])
def test_summarize_a_folder_that_is_not_an_experiment(tmp_path, make):
    folder = tmp_path / make
    if make != "missing":
        folder.mkdir()
    result = invoke("summarize", folder)
    assert result.exit_code == 1
    assert (
        "not a tune-mnist experiment" in result.output
        or "no such experiment folder" in result.output
    )


def test_sweep_with_missing_data_dir(tmp_path):
    space = write_space(tmp_path, **TINY_RESNET)
    result = invoke("sweep", space, "--data-dir", tmp_path / "nowhere")
    assert result.exit_code == 1
    assert (
        result.output.strip().splitlines()[-1]
        == f"error: data folder {tmp_path / 'nowhere'} does not exist"
    )


def test_sweep_unwritable_storage_path(tmp_path, tiny_data):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    space = write_space(tmp_path, **TINY_RESNET)
    result = invoke("sweep", space, "--data-dir", tiny_data, "--storage-path", blocker)
    assert result.exit_code == 1
    assert "cannot write to storage path" in result.output


def test_sweep_unreachable_address(tmp_path, tiny_data):
    space = write_space(tmp_path, **TINY_SVM)
    result = invoke("sweep", space, "--data-dir", tiny_data, "--address", "127.0.0.1:1")
    assert result.exit_code == 1
    assert "error: cannot connect to Ray at 127.0.0.1:1" in result.output
    assert len(result.output.strip().splitlines()) <= 3


@pytest.mark.parametrize(
    ("flag", "environment", "mode", "warned"),
    [(False, "disabled", "token", False), (True, "token", "disabled", True)],
)
def test_a_local_ray_keeps_token_auth_unless_told_insecure(flag, environment, mode, warned):
    """In a fresh process (Ray not yet imported), as the CLI runs: the environment's
    RAY_AUTH_MODE never turns auth off; --insecure does, with a warning."""
    import os
    import subprocess
    import sys

    code = (
        "import os; from tune_mnist.cli.common import loopback_if_local; "
        f"loopback_if_local(None, insecure={flag}); print(os.environ['RAY_AUTH_MODE'])"
    )
    env = {**os.environ, "RAY_AUTH_MODE": environment}
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == mode
    assert ("WITHOUT token authentication" in run.stderr) is warned
