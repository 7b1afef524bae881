"""Studies that grow: `sweep SPACE --extend EXPERIMENT` on a real local Ray, tiny data."""

import gzip
import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tune_mnist import load_results, load_space
from tune_mnist.cli.main import app
from tune_mnist.run.extend import content_key
from tune_mnist.run.sweep import SweepSettings, resume_sweep, run_sweep
from tune_mnist.spec.spaces import parse_space
from tune_mnist.store.experiment import LOCK_FILE, META_FILE, DataInfo, read_meta, write_meta
from tune_mnist.store.trust import sign
from tune_mnist.train.data import dataset_files

from ..conftest import write_dataset, write_space
from ..experiments import make_experiment

BASE = dict(
    trainable="svm",
    fixed={"train_samples": 80, "dataset": "mnist"},
    grid={"kernel": ["rbf", "poly"]},
)
# one more level (linear) and one more seed: 6 trials, 2 of them the base's
GROWN = {**BASE, "grid": {"kernel": ["rbf", "poly", "linear"]}, "repeats": 2}


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file under a folder: its modification time and SHA-256."""
    return {
        str(p.relative_to(folder)): (
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in folder.rglob("*")
        if p.is_file()
    }


def trial_folders(experiment: Path) -> list[Path]:
    return [p.parent for p in experiment.rglob("params.json")]


@pytest.fixture(scope="module")
def grown(local_ray, tiny_data, tmp_path_factory):
    """A two-trial experiment, then the grown space run with --extend on it."""
    folder = tmp_path_factory.mktemp("extend")
    settings = SweepSettings(data_dir=str(tiny_data), storage_path=str(folder / "runs"))
    base = run_sweep(load_space(write_space(folder, "tiny", **BASE)), settings)
    experiment = base.experiment_dir
    old_trials = {p: snapshot(p) for p in trial_folders(experiment)}
    space = write_space(folder, "grown", **GROWN)
    result = invoke("sweep", space, "--data-dir", tiny_data, "--extend", experiment)
    return result, experiment, old_trials, space


def test_extend_runs_only_the_new_trials(grown):
    result, experiment, old_trials, _ = grown
    assert result.exit_code == 0, result.output
    assert "--extend tiny: 2 of 6 trials reused, 4 new; running them in extend-1/" in result.output
    assert "[4/4]" in result.output and "[5/" not in result.output
    new = [p for p in trial_folders(experiment) if p.parent.name == "extend-1"]
    assert len(new) == 4 and len(old_trials) == 2
    assert {p.parent for p in old_trials} == {experiment}


def test_finished_trials_files_are_left_untouched(grown):
    _, _, old_trials, _ = grown
    for folder, files in old_trials.items():
        assert snapshot(folder) == files


def test_results_and_tables_cover_both_runs(grown):
    _, experiment, _, _ = grown
    results = load_results(experiment)
    assert len(results) == 6 and set(results["status"]) == {"finished"}
    assert sorted(zip(results["kernel"], results["seed"], strict=True)) == sorted(
        (k, s) for k in ("rbf", "poly", "linear") for s in (0, 1)
    )
    table = (experiment / "report" / "grown.csv").read_text()
    assert table.count("\n") == 4 and "linear" in table  # header + three kernels
    meta = read_meta(experiment)
    assert [run.folder for run in meta.runs] == [".", "extend-1"]
    assert len(meta.runs[1].trials) == 4 and meta.space.name == "grown"


def test_extending_again_with_nothing_new_runs_nothing(grown, tiny_data):
    _, experiment, _, space = grown
    trials = {p: snapshot(p) for p in trial_folders(experiment)}
    result = invoke("sweep", space, "--data-dir", tiny_data, "--extend", experiment)
    assert result.exit_code == 0, result.output
    assert "all 6 trials are there; nothing to run" in result.output
    assert {p: snapshot(p) for p in trial_folders(experiment)} == trials


def test_resume_of_an_extended_experiment_trains_nothing_more(grown):
    _, experiment, _, _ = grown

    def contents() -> dict:  # Tune rewrites a restored trial's progress.csv, same bytes
        return {p: {f: h for f, (_, h) in snapshot(p).items()} for p in trial_folders(experiment)}

    trials = contents()
    resumed = resume_sweep(experiment)
    assert set(resumed.results["status"]) == {"finished"} and len(resumed.results) == 6
    assert contents() == trials


# ------------------------------------------------------------------ refused


@pytest.fixture(scope="module")
def small(tiny_data, tmp_path_factory):
    """An experiment folder as a finished sweep on tiny_data leaves it (made without Ray)."""
    folder = tmp_path_factory.mktemp("refuse")
    spec = load_space(write_space(folder, "tiny", **BASE))
    files = dataset_files("mnist", tiny_data)
    digests = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    experiment = make_experiment(folder / "exp", spec, lambda t: 90.0)
    meta = read_meta(experiment)
    settings = replace(meta.settings, data_dir=str(tiny_data))
    data = {"mnist": DataInfo(str(tiny_data / "mnist"), 96, 40, digests)}
    write_meta(experiment, replace(meta, settings=settings, data=data))
    (experiment / LOCK_FILE).touch()  # every sweep leaves its (empty) lock file
    sign(experiment, META_FILE)  # as the sweep that wrote it would have
    return experiment, write_space(folder, "grown", **GROWN)


def other_data(root: Path, n_train: int, seed_shift: bool = False) -> Path:
    write_dataset(root / "mnist", n_train=n_train)
    if seed_shift:  # same sizes, other pixels: one byte of the first training image
        images = next((root / "mnist").glob("train-images*"))
        raw = bytearray(gzip.decompress(images.read_bytes()))
        raw[16] ^= 0xFF
        images.write_bytes(gzip.compress(bytes(raw), mtime=0))
    return root


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--smoke"], "not comparable: it ran at full size, this sweep would run at --smoke size"),
        (["--svm-backend", "libsvm"], "not comparable: svm_backend was auto there, libsvm here"),
        ("fewer", "not comparable: mnist had 96 train / 40 test images there, 120 / 40 here"),
        ("other", "not comparable: mnist: other files (their SHA-256 differ)"),
    ],
)
def test_an_incomparable_extension_is_refused_in_one_line(
    small, tiny_data, tmp_path, args, message
):
    experiment, space = small
    data = tiny_data
    if args == "fewer":
        data, args = other_data(tmp_path / "data", 120), []
    elif args == "other":
        data, args = other_data(tmp_path / "data", 96, seed_shift=True), []
    before = snapshot(experiment)
    result = invoke("sweep", space, "--data-dir", data, "--extend", experiment, *args)
    assert result.exit_code == 1, result.output
    error = result.output.split("error: ", 1)[1]
    assert message in error and error.count("\n") == 1
    assert snapshot(experiment) == before  # nothing written


def test_extending_an_unsigned_experiment_is_refused_without_trust(tmp_path, tiny_data):
    """--extend rebuilds the old trials from the folder's metadata: it must be this user's."""
    experiment = make_experiment(
        tmp_path / "exp", load_space(write_space(tmp_path, **BASE)), lambda t: 90.0
    )
    space = write_space(tmp_path, name="more", **BASE)
    result = invoke("sweep", space, "--data-dir", tiny_data, "--extend", experiment)
    assert result.exit_code == 1, result.output
    assert "tune_mnist.json not signed by this user's tune-mnist" in result.output


def test_extending_no_experiment_is_refused(tmp_path, tiny_data):
    space = write_space(tmp_path, **BASE)
    result = invoke("sweep", space, "--data-dir", tiny_data, "--extend", tmp_path / "nowhere")
    assert result.exit_code == 1
    assert "not a tune-mnist experiment" in result.output or "no such experiment" in result.output
    assert not (tmp_path / "nowhere").exists()


def test_the_content_key_is_config_data_and_settings():
    trial = parse_space({"name": "k", **BASE}).trials[0]
    data = DataInfo("/a", 96, 40, {"/a/x": "00", "/a/y": "11"})
    moved = DataInfo("/b", 96, 40, {"/b/x": "00", "/b/y": "11"})  # same files elsewhere
    settings = {"smoke": False, "svm_backend": "auto"}
    key = content_key(trial, data, settings)
    assert content_key(trial, moved, settings) == key
    assert content_key(trial, DataInfo("/a", 96, 40, {"/a/x": "01"}), settings) != key
    assert content_key(trial, data, {**settings, "svm_backend": "libsvm"}) != key
    assert content_key(parse_space({"name": "k", **BASE}).trials[1], data, settings) != key
