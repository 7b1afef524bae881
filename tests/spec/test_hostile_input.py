"""Input that would exhaust the machine or escape its folder is refused in one line: a YAML
alias bomb, numbers past what the libraries take, object keys that leave the local copy,
a symbolic link where the lock's owner file goes."""

import json
import math
import os
import re
import stat
import time
import tracemalloc

import numpy as np
import pytest
import yaml

from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.spaces import load_space, parse_space
from tune_mnist.store.experiment import OWNER_FILE, writing
from tune_mnist.store.storage import _inside, check_uri

BOMB = (
    "name: bomb\ntrainable: resnet\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )
)


def test_an_alias_bomb_is_refused_within_seconds_in_little_memory(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 600  # ~387 million values once expanded
    started = time.monotonic()
    tracemalloc.start()
    try:
        with pytest.raises(TuneMnistError) as refused:
            load_space(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 10
    assert str(refused.value) == (
        "bomb.yaml: not valid YAML at line 1: aliases expand to over 100,000 values"
    )
    assert peak < 20_000_000  # bytes allocated while loading it: nothing was expanded


def test_a_few_aliases_still_load(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(
        "name: ok\ntrainable: svm\nfixed: &f {dataset: mnist, train_samples: 50}\n"
        "grid: {kernel: [rbf, poly]}\n"
    )
    assert len(load_space(path).trials) == 2


GAMMA = r"grid.gamma: expected 'scale', 'auto' or a number above 0, at most 1e\+06 \(got"
RESNET = {"dataset": "mnist", "model": "resnet18", "batch_size": 16, "optimizer": "adam"}
SVM = {"dataset": "mnist", "kernel": "poly"}


@pytest.mark.parametrize(
    ("trainable", "fixed", "key", "value", "expected"),
    [
        ("resnet", RESNET, "lr", 1e308, "grid.lr: Input should be less than or equal to 1000000"),
        ("resnet", RESNET, "weight_decay", 1e308, "grid.weight_decay: Input should be less"),
        (
            "resnet",
            RESNET,
            "seed",
            2**64,
            "grid.seed: Input should be less than or equal to 4294967295",
        ),
        ("svm", SVM, "gamma", -5.0, GAMMA),
        ("svm", SVM, "gamma", 0.0, GAMMA),
        ("svm", SVM, "degree", 10**9, "grid.degree: Input should be less than or equal to 10"),
        ("svm", SVM, "C", 1e308, "grid.C: Input should be less than or equal to 10000000000"),
        ("svm", SVM, "seed", 2**32, "grid.seed: Input should be less than or equal to 4294967295"),
    ],
)
def test_numbers_past_what_the_libraries_take_are_refused(trainable, fixed, key, value, expected):
    fixed = {**fixed, "epochs": 1} if trainable == "resnet" else fixed
    raw = {"name": "b", "trainable": trainable, "fixed": fixed, "grid": {key: [value]}}
    with pytest.raises(TuneMnistError, match="^b.yaml: " + expected):
        parse_space(raw, "b.yaml")


def test_repeats_may_not_carry_a_seed_past_the_largest():
    raw = {"name": "b", "trainable": "svm", "fixed": {**SVM, "seed": 2**32 - 2}, "repeats": 3}
    raw["grid"] = {"C": [1.0]}
    with pytest.raises(TuneMnistError, match="repeats would reach 4294967296"):
        parse_space(raw, "b.yaml")


def test_an_error_shows_at_most_a_few_hundred_characters_of_a_value():
    raw = {"name": "b", "trainable": "svm", "fixed": SVM, "grid": {"C": ["x" * 100_000]}}
    with pytest.raises(TuneMnistError) as error:
        parse_space(raw, "b.yaml")
    assert len(str(error.value)) < 500 and "(100,002 chars)" in str(error.value)


@pytest.mark.parametrize("key", ["../../.config/tune-mnist/signing.key", "a/../../x", "/etc/x"])
def test_an_object_key_that_leaves_the_local_copy_is_refused(tmp_path, key):
    with pytest.raises(TuneMnistError, match="leads out of the copy"):
        _inside(tmp_path / "copy", key, "s3://bucket/exp")
    assert _inside(tmp_path / "copy", "trial/result.json", "s3://b/e") == (
        tmp_path / "copy" / "trial/result.json"
    )


@pytest.mark.parametrize("uri", ["s3://bucket/runs/..", "s3://bucket/../other", "s3://b/./x"])
def test_a_uri_with_dot_parts_is_refused_before_anything_is_touched(uri):
    with pytest.raises(TuneMnistError, match=r"no `\.` or `\.\.` parts"):
        check_uri(uri)


def test_a_symlinked_owner_file_is_refused_and_its_target_left_alone(tmp_path):
    experiment = tmp_path / "exp"
    experiment.mkdir()
    target = tmp_path / "elsewhere"
    target.write_text("precious")
    os.symlink(target, experiment / OWNER_FILE)
    with pytest.raises(TuneMnistError, match="is a symbolic link: refused"), writing(experiment):
        pass
    assert target.read_text() == "precious"


def test_yaml_loads_safely():  # the loader never builds Python objects from tags
    with pytest.raises(yaml.YAMLError):
        yaml.load("!!python/object/apply:os.system [echo]", Loader=yaml.SafeLoader)


def test_the_local_ray_token_is_private_from_its_creation(tmp_path, monkeypatch):
    from tune_mnist.run.cluster import make_token_private

    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    old = os.umask(0o022)  # a usual umask: Ray's own write would leave it world-readable
    try:
        token = make_token_private(tmp_path)
    finally:
        os.umask(old)
    assert token == tmp_path / ".ray" / "auth_token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert stat.S_IMODE(token.parent.stat().st_mode) == 0o700
    assert len(token.read_text()) == 64
    assert make_token_private(tmp_path) is None  # one token: never rewritten
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert make_token_private(tmp_path / "other") is None


SECRET = "s3cr3t-planted"


def test_credentials_in_a_tracking_uri_are_refused_before_anything_is_written(tmp_path):
    from typer.testing import CliRunner

    from tune_mnist.cli.main import app

    storage = tmp_path / "runs"
    args = ["sweep", "q1b", "--smoke", "--storage-path", str(storage)]
    uri = f"http://user:{SECRET}@127.0.0.1:9/"
    result = CliRunner().invoke(app, [*args, "--mlflow-uri", uri])
    assert result.exit_code == 1 and "no credentials in the tracking URI" in result.output
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in written if SECRET in p.read_text(errors="replace")]


def test_a_command_line_is_recorded_without_credentials(monkeypatch):
    from tune_mnist.store import provenance

    argv = ["tune-mnist", "sweep", "q1a", "--storage-path", f"s3://AKIA:{SECRET}@bucket/x"]
    monkeypatch.setattr("sys.argv", argv)
    recorded = provenance.command()
    assert SECRET not in recorded and "s3://***@bucket/x" in recorded


def npz_bomb(path, shape) -> None:
    """An .npz whose x_train is `shape` of zeros, written in chunks: large once decoded,
    small on disk, never whole in this process's memory."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x_train.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "|u1", "fortran_order": False, "shape": shape}
            )
            chunk = bytes(1 << 24)
            for _ in range(math.prod(shape) // len(chunk)):
                member.write(chunk)
            member.write(bytes(math.prod(shape) % len(chunk)))
        for key, array in [
            ("y_train", np.zeros(shape[0], np.uint8)),
            ("x_test", np.zeros((1, *shape[1:]), np.uint8)),
            ("y_test", np.zeros(1, np.uint8)),
        ]:
            with archive.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array(member, array)


def test_an_npz_bomb_is_refused_from_its_headers_before_decoding(tmp_path, monkeypatch):
    from tune_mnist.train.data import read_npz

    # the cap lowered to 10 MB so that the bomb is quick to write: 30 MB of zeros, 30 KB
    # zipped (the default cap, 1 GiB, is the same check with larger numbers)
    monkeypatch.setenv("TUNE_MNIST_MAX_DATA_BYTES", str(10_000_000))
    path = tmp_path / "bomb.npz"
    npz_bomb(path, (30, 1000, 1000))
    assert path.stat().st_size < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(TuneMnistError) as refused:
            read_npz("bomb", path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(refused.value)
    assert "x_train: declares (30, 1000, 1000), 30,000,000 bytes once decoded" in message
    assert "more than the 10,000,000 accepted" in message
    assert "raise it with TUNE_MNIST_MAX_DATA_BYTES" in message
    assert peak < 3_000_000  # bytes allocated while reading it: nothing was decoded


def test_images_too_large_a_side_are_refused_before_decoding():
    from tune_mnist.train.data import check_declared

    with pytest.raises(TuneMnistError, match="at most 4096 pixels a side"):
        check_declared("x.npz: x_train", (1, 30_000, 30_000))
    check_declared("x.npz: x_train", (60_000, 28, 28))  # MNIST


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\n? [1, 2]\n: 3\n", "not valid YAML at line 2: a key must be a name or a number"),
        ("name: x\nseed: " + "9" * 5000 + "\n", "not valid YAML: 'Exceeds the limit (4300 digits)"),
    ],
)
def test_yaml_python_cannot_hold_is_one_line(tmp_path, text, expected):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(TuneMnistError, match=re.escape(f"x.yaml: {expected}")):
        load_space(path)


def test_a_metadata_field_of_the_wrong_type_is_one_line_naming_it(tmp_path):
    from tests.experiments import make_experiment
    from tune_mnist.store.experiment import META_FILE, read_meta

    raw = {"name": "m", "trainable": "svm", "fixed": SVM, "grid": {"C": [1.0]}}
    folder = make_experiment(tmp_path / "m", parse_space(raw, "m.yaml"), lambda t: 90.0)
    record = json.loads((folder / META_FILE).read_text())
    record["runs"] = [{"folder": ".", "spent_s": "abc"}]
    (folder / META_FILE).write_text(json.dumps(record))
    with pytest.raises(TuneMnistError) as error:
        read_meta(folder)
    assert str(error.value).endswith(
        "tune_mnist.json: runs[0].spent_s: expected a number of seconds, found 'abc'"
    )
