"""Bad input: one clear line, a non-zero exit, no traceback, and nothing written damaged."""

import gzip
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tune_mnist.cli.main import app
from tune_mnist.train.data import write_idx

from ..conftest import TINY_SVM, write_dataset, write_space

GOOD = (
    "name: x\ntrainable: svm\nfixed: {train_samples: 50}\ngrid: {dataset: [mnist], kernel: [rbf]}\n"
)

RESNET = (
    "name: x\ntrainable: resnet\nfixed: {dataset: mnist, model: resnet18, optimizer: sgd, "
    "lr: 0.1, epochs: 1}\ngrid: {batch_size: [8]}\n"
)


@pytest.fixture(scope="module")
def finished(tiny_data, tmp_path_factory):
    """A real finished experiment (a tiny SVM sweep) that bad commands must leave alone."""
    folder = tmp_path_factory.mktemp("finished")
    space = write_space(folder, **TINY_SVM)
    result = CliRunner().invoke(
        app,
        ["sweep", str(space), "--data-dir", str(tiny_data), "--storage-path", str(folder / "runs")],
    )
    assert result.exit_code == 0, result.output
    return folder / "runs"


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def corrupt(root: Path, how: str) -> Path:
    """A data root whose mnist/ folder is broken in one way."""
    folder = write_dataset(root / "mnist")
    images = folder / "train-images-idx3-ubyte.gz"
    if how == "magic":
        write_idx(images, np.zeros((4, 28, 28), dtype=np.uint8))
        raw = bytearray(gzip.decompress(images.read_bytes()))
        raw[3] = 1
        images.write_bytes(gzip.compress(bytes(raw)))
    elif how == "truncated":
        images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:-10]))
    elif how == "counts":
        write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(3, dtype=np.uint8))
    return root


def fifo(path: Path) -> str:
    os.mkfifo(path)
    return str(path)


def space(tmp: Path, text: str) -> str:
    (tmp / "x.yaml").write_text(text)
    return str(tmp / "x.yaml")


CASES = {
    "malformed YAML": (
        lambda t, d: ["show", space(t, "name: x\ngrid: {a: [1,\n")],
        "x.yaml: not valid YAML at line",
    ),
    "unknown key": (
        lambda t, d: ["show", space(t, GOOD + "colour: red\n")],
        "x.yaml: colour: unknown key (expected one of: name,",
    ),
    "wrong type": (
        lambda t, d: ["show", space(t, GOOD.replace("50", "'50'"))],
        "x.yaml: fixed.train_samples: Input should be a valid integer (got '50')",
    ),
    "out-of-range value": (
        lambda t, d: ["show", space(t, GOOD.replace("50", "0"))],
        "x.yaml: fixed.train_samples: Input should be greater than or equal to 1 (got 0)",
    ),
    "lr <= 0": (
        lambda t, d: [
            "show",
            space(
                t,
                "name: x\ntrainable: resnet\nfixed: {dataset: mnist, model: resnet18, optimizer: sgd, epochs: 1, batch_size: 8}\ngrid: {lr: [-0.1]}\n",
            ),
        ],
        "x.yaml: grid.lr: Input should be greater than 0 (got -0.1)",
    ),
    "unknown model": (
        lambda t, d: [
            "show",
            space(
                t,
                "name: x\ntrainable: resnet\nfixed: {dataset: mnist, lr: 0.1, optimizer: sgd, epochs: 1, batch_size: 8}\ngrid: {model: [resnet101]}\n",
            ),
        ],
        "x.yaml: grid.model: Input should be 'resnet18', 'resnet34' or 'resnet50' (got 'resnet101')",
    ),
    "unknown dataset": (
        lambda t, d: ["show", space(t, GOOD.replace("[mnist]", "[emnist]"))],
        "x.yaml: grid.dataset: Input should be 'mnist' or 'fashion-mnist' (got 'emnist')",
    ),
    "unknown optimizer": (
        lambda t, d: [
            "show",
            space(
                t,
                "name: x\ntrainable: resnet\nfixed: {dataset: mnist, model: resnet18, lr: 0.1, epochs: 1, batch_size: 8}\ngrid: {optimizer: [lbfgs]}\n",
            ),
        ],
        "x.yaml: grid.optimizer: Input should be 'sgd' or 'adam' (got 'lbfgs')",
    ),
    "unknown kernel": (
        lambda t, d: ["show", space(t, GOOD.replace("[rbf]", "[cubic]"))],
        "x.yaml: grid.kernel: Input should be 'rbf', 'poly', 'linear' or 'sigmoid' (got 'cubic')",
    ),
    "empty grid": (
        lambda t, d: ["show", space(t, "name: x\ntrainable: svm\ngrid: {}\n")],
        "x.yaml: grid: expected at least one key in grid or rows",
    ),
    "empty grid list": (
        lambda t, d: ["show", space(t, GOOD.replace("[rbf]", "[]"))],
        "x.yaml: grid.kernel: expected a non-empty list of values",
    ),
    "no such space": (
        lambda t, d: ["sweep", "q3"],
        "unknown space 'q3': built-in spaces are fashion-search, q1a, q1b, q1b-full, q2, q2-full",
    ),
    "missing data folder": (
        lambda t, d: ["sweep", space(t, GOOD), "--data-dir", str(t / "nope")],
        "data folder",
    ),
    "bad IDX magic": (
        lambda t, d: ["sweep", space(t, GOOD), "--data-dir", str(corrupt(t / "d", "magic"))],
        "train-images-idx3-ubyte.gz: bad IDX magic number 0x00000801, expected 0x00000803",
    ),
    "truncated IDX": (
        lambda t, d: ["sweep", space(t, GOOD), "--data-dir", str(corrupt(t / "d", "truncated"))],
        "train-images-idx3-ubyte.gz: truncated or padded IDX file",
    ),
    "images and labels differ": (
        lambda t, d: ["sweep", space(t, GOOD), "--data-dir", str(corrupt(t / "d", "counts"))],
        "96 train images but 3 labels",
    ),
    "unreachable address": (
        lambda t, d: ["sweep", space(t, GOOD), "--data-dir", d, "--address", "127.0.0.1:1"],
        "cannot connect to Ray at 127.0.0.1:1: Connection refused",
    ),
    "malformed address": (
        lambda t, d: ["sweep", space(t, GOOD), "--data-dir", d, "--address", "nohost"],
        "--address nohost: expected HOST:PORT",
    ),
    "unwritable storage path": (
        lambda t, d: [
            "sweep",
            space(t, GOOD),
            "--data-dir",
            d,
            "--storage-path",
            "/proc/tune-mnist",
        ],
        "cannot write to storage path /proc/tune-mnist: /proc exists but does not accept new folders",
    ),
    "summarize a non-experiment": (
        lambda t, d: ["summarize", str(t)],
        "not a tune-mnist experiment (no tune_mnist.json)",
    ),
    "summarize a missing folder": (
        lambda t, d: ["summarize", str(t / "nope")],
        "no such experiment folder",
    ),
    "resume a non-experiment": (lambda t, d: ["resume", str(t)], "not a tune-mnist experiment"),
    "gpus-per-trial 0": (
        lambda t, d: ["sweep", space(t, GOOD), "--data-dir", d, "--gpus-per-trial", "0"],
        "--gpus-per-trial 0: expected more than 0",
    ),
    "gpus-per-trial above a node": (
        lambda t, d: ["sweep", space(t, RESNET), "--data-dir", d, "--gpus-per-trial", "3"],
        "--gpus-per-trial 3: the cluster has no GPUs; leave it out to run ResNet trials on CPUs",
    ),
    "name escaping the storage path": (
        lambda t, d: ["sweep", space(t, GOOD), "--data-dir", d, "--name", "../../escaped"],
        "--name '../../escaped': expected one folder name (no '/', not '.' or '..'",
    ),
    "absolute name": (
        lambda t, d: ["sweep", space(t, GOOD), "--data-dir", d, "--name", str(t / "abs")],
        "expected one folder name",
    ),
    "name '.'": (
        lambda t, d: ["sweep", space(t, GOOD), "--data-dir", d, "--name", "."],
        "--name '.': expected one folder name",
    ),
    "300-character name": (
        lambda t, d: ["sweep", space(t, GOOD), "--data-dir", d, "--name", "n" * 300],
        "at most 100 characters",
    ),
    "space name with a slash": (
        lambda t, d: ["sweep", space(t, GOOD.replace("name: x", "name: ../up")), "--data-dir", d],
        "the space's name '../up': expected one folder name",
    ),
    "duplicate YAML key": (
        lambda t, d: ["show", space(t, GOOD.replace("fixed: {", "fixed: {seed: 0, seed: 7, "))],
        "x.yaml: not valid YAML at line 3: duplicate key 'seed'",
    ),
    "infinite lr": (
        lambda t, d: ["show", space(t, RESNET.replace("lr: 0.1", "lr: .inf"))],
        "x.yaml: fixed.lr: Input should be a finite number",
    ),
    "epochs 1e9": (
        lambda t, d: ["show", space(t, RESNET.replace("epochs: 1", "epochs: 1000000000"))],
        "x.yaml: fixed.epochs: Input should be less than or equal to 10000",
    ),
    "batch larger than the training set": (
        lambda t, d: ["sweep", space(t, RESNET.replace("[8]", "[5000]")), "--data-dir", d],
        "x.yaml: batch_size 5,000 is larger than the 96 training images of mnist",
    ),
    "64 million trials": (
        lambda t, d: [
            "show",
            space(
                t,
                "name: x\ntrainable: svm\ngrid:\n"
                + "".join(
                    f"  {k}: {list(range(1, 21))}\n"
                    for k in ("train_samples", "C", "degree", "seed", "gamma", "kernel")
                ),
            ),
        ],
        "x.yaml: expands to 64,000,000 trials, more than the limit of 10,000",
    ),
    "--repeats 100000": (
        lambda t, d: ["sweep", space(t, GOOD), "--data-dir", d, "--repeats", "100000"],
        "--repeats 100000: expected 1 to 1,000",
    ),
    "--repeats past the trial limit": (
        lambda t, d: ["sweep", "q1a", "--smoke", "--repeats", "400"],
        "q1a.yaml: expands to 12,800 trials, more than the limit of 10,000",
    ),
    "a folder as space file": (lambda t, d: ["show", str(t)], "a folder, not a space file"),
    "a FIFO as space file": (
        lambda t, d: ["show", fifo(t / "pipe.yaml")],
        "pipe.yaml: not a regular file, so not a space file",
    ),
    "resume with nothing to resume": (
        lambda t, d: ["sweep", space(t, GOOD), "--data-dir", d, "--resume"],
        "--resume: no tune-mnist experiment at",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case, tmp_path, tiny_data, finished, monkeypatch):
    make_args, message = CASES[case]
    storage = Path(shutil.copytree(finished, tmp_path / "runs"))
    monkeypatch.setenv("TUNE_MNIST_RESULTS", str(storage))
    before = digest(storage)
    work = tmp_path / "work"
    work.mkdir()
    result = CliRunner().invoke(app, make_args(work, str(tiny_data)))
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, result.output
    assert "Traceback" not in result.output
    assert digest(storage) == before


def test_sweep_over_an_existing_experiment_is_refused_and_leaves_it_alone(
    tmp_path, finished, tiny_data
):
    storage = Path(shutil.copytree(finished, tmp_path / "runs"))
    before = digest(storage)
    space = write_space(tmp_path, **TINY_SVM)
    result = CliRunner().invoke(
        app, ["sweep", str(space), "--data-dir", str(tiny_data), "--storage-path", str(storage)]
    )
    assert result.exit_code == 1
    assert "already holds an experiment: add --resume to continue it" in result.output
    assert digest(storage) == before


def test_verbose_shows_the_traceback(tmp_path):
    result = CliRunner().invoke(app, ["sweep", "q3", "--verbose"])
    assert result.exit_code == 1
    assert "TuneMnistError" in repr(result.exception)


def test_no_secret_from_the_environment_reaches_any_written_file(tmp_path, tiny_data, monkeypatch):
    """Tokens and keys a sweep's environment holds (as a user's shell would) appear in no
    file the sweep writes: metadata, provenance, report, Tune's files, trial logs."""
    secret = "s3cr3t-planted-in-env"
    for name in (
        "MLFLOW_TRACKING_TOKEN",
        "MLFLOW_TRACKING_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "WANDB_API_KEY",
        "TUNE_MNIST_SOMETHING",
    ):
        monkeypatch.setenv(name, secret)
    storage = tmp_path / "runs"
    space = write_space(tmp_path, **TINY_SVM)
    args = ["sweep", str(space), "--data-dir", str(tiny_data), "--storage-path", str(storage)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    written = [p for p in storage.rglob("*") if p.is_file()]
    assert len(written) > 20
    assert [p for p in written if secret.encode() in p.read_bytes()] == []
