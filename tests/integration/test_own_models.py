"""A space's own models (by file or module reference) and datasets (.npz, IDX of any size):
real torch models, a real local Ray sweep, and one clear line for each bad reference."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from tune_mnist import load_space
from tune_mnist.cli.main import app
from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.configs import MODELS, SHIPPED_ENV, ResNetConfig, SVMConfig, model_names
from tune_mnist.train.checks import check_space, space_datasets
from tune_mnist.train.data import FILES, channel_stats, write_idx
from tune_mnist.train.models import build_model, model_cost, model_cost_at, registry
from tune_mnist.train.resnet import Batches, train_resnet
from tune_mnist.train.svm import fit_svm

NETS = '''
import torch.nn as nn


def build(channels, height, width, classes):
    """A small CNN for any image size."""
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, classes),
    )


def two_args(channels, classes):
    return nn.Linear(channels, classes)


def three_scores(channels, height, width, classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, 3))


def not_a_module(channels, height, width, classes):
    return "a string"
'''


def patterned(n: int, shape: tuple[int, ...], classes: int, seed: int):
    """Noise images whose brightness in one corner band encodes the label."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.integers(0, 60, size=(n, *shape), dtype=np.uint8)
    for image, label in zip(images, labels, strict=True):
        image[: 2 + 2 * label, :4] = 255
    return images, labels


def write_npz(path: Path, shape=(32, 32, 3), classes=5, n_train=40, n_test=20, **changes):
    x_train, y_train = patterned(n_train, shape, classes, 0)
    x_test, y_test = patterned(n_test, shape, classes, 1)
    arrays = dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test) | changes
    np.savez(path, **arrays)
    return path


def write_idx_folder(folder: Path, size=14, classes=4, n_train=40, n_test=20) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    train, test = (
        patterned(n_train, (size, size), classes, 0),
        patterned(n_test, (size, size), classes, 1),
    )
    arrays = [*train, *test]
    for stem, array in zip(FILES.values(), arrays, strict=True):
        write_idx(folder / f"{stem}.gz", array.astype(np.uint8))
    return folder


def own_space(folder: Path, model="./nets.py:build", name="own", **fields) -> Path:
    """A ResNet space next to nets.py and shapes.npz (written here) training `model`."""
    (folder / "nets.py").write_text(NETS)
    if not (folder / "shapes.npz").exists():
        write_npz(folder / "shapes.npz")
    space = {
        "name": name,
        "trainable": "resnet",
        "datasets": {"shapes": {"npz": "./shapes.npz"}},
        "fixed": {"dataset": "shapes", "optimizer": "adam", "lr": 0.01, "epochs": 1},
        "grid": {"model": [model] if isinstance(model, str) else model, "batch_size": [16]},
    } | fields
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def test_a_model_from_a_file_next_to_the_space(tmp_path):
    spec = load_space(own_space(tmp_path))
    (trial,) = spec.trials
    assert trial.model == f"{tmp_path / 'nets.py'}:build"  # absolute: workers import it
    assert trial.label == "shapes/nets.py:build/bs16/adam/lr0.01/e1/nopin/s0"
    (data,) = space_datasets(spec).values()
    assert data.shape == (3, 32, 32) and data.classes == 5
    check_space(spec)
    net = build_model(trial.model, data.shape, data.classes)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 5)


def test_a_model_from_an_importable_module(tmp_path, monkeypatch):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "own_cnn_module.py").write_text(NETS)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    spec = load_space(own_space(tmp_path, model="own_cnn_module:build"))
    assert spec.trials[0].model == "own_cnn_module:build"  # a module stays as written
    check_space(spec)
    data = space_datasets(spec)["shapes"]
    result = train_resnet(spec.trials[0], data)
    assert result.epochs_trained == 1 and 0 <= result.test_accuracy <= 100


def test_builtin_resnets_are_registry_entries_with_the_same_signature():
    builders = registry()
    assert {"resnet18", "resnet34", "resnet50"} <= set(builders)
    net = builders["resnet18"](3, 32, 32, 5).eval()
    assert net.conv1.in_channels == 3 and net(torch.zeros(1, 3, 32, 32)).shape == (1, 5)
    assert model_cost_at("resnet18", (1, 28, 28), 10) == model_cost("resnet18")


def test_batches_make_channels_first_and_normalize_per_channel():
    images, labels = patterned(8, (6, 5, 3), 2, 0)
    mean, std = channel_stats(images)
    assert len(mean) == 3 and mean[0] == pytest.approx(images[..., 0].mean() / 255)
    batches = Batches(
        images,
        labels,
        8,
        torch.device("cpu"),
        pin_memory=False,
        preload=False,
        normalization=(mean, std),
    )
    x, _ = batches.to_device(batches.images, batches.labels)
    assert x.shape == (8, 3, 6, 5)
    expected = (images[0, 1, 2] / 255 - np.array(mean)) / np.array(std)
    assert x[0, :, 1, 2].numpy() == pytest.approx(expected, abs=1e-5)
    assert x.mean(dim=(0, 2, 3)).numpy() == pytest.approx([0, 0, 0], abs=1e-5)


def test_an_idx_folder_of_14x14_images(tmp_path):
    write_idx_folder(tmp_path / "small")
    path = own_space(
        tmp_path,
        datasets={"small": {"idx": "./small"}},
        fixed={"dataset": "small", "optimizer": "sgd", "lr": 0.05, "epochs": 1},
    )
    spec = load_space(path)
    data = space_datasets(spec)["small"]
    assert data.shape == (1, 14, 14) and data.classes == 4 and data.sizes == (40, 20)
    assert data.normalization == channel_stats(data.train_images)
    check_space(spec)
    assert train_resnet(spec.trials[0], data).epochs_trained == 1
    svm = fit_svm(SVMConfig(dataset="small", kernel="rbf", train_samples=40), data)
    assert svm.train_samples == 40 and 0 <= svm.test_accuracy <= 100


def test_an_svm_space_on_a_3_channel_npz(tmp_path):
    write_npz(tmp_path / "shapes.npz")
    space = {
        "name": "svm-own",
        "trainable": "svm",
        "datasets": {"shapes": {"npz": "shapes.npz"}},
        "grid": {"dataset": ["shapes"], "kernel": ["linear"]},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(space))
    spec = load_space(tmp_path / "s.yaml")
    data = space_datasets(spec)["shapes"]
    assert fit_svm(spec.trials[0], data).train_samples == 40


# --- a real local Ray sweep: a file model and a module model on a 3x32x32 .npz ------------


@pytest.fixture(scope="module")
def ray_with_own_module(tmp_path_factory):
    """A local Ray whose workers can import `own_sweep_module` (on their PYTHONPATH)."""
    import ray

    mods = tmp_path_factory.mktemp("mods")
    (mods / "own_sweep_module.py").write_text(NETS)
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(mods), before]))
    sys.path.insert(0, str(mods))
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
    )
    yield
    ray.shutdown()
    sys.path.remove(str(mods))
    if before is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = before


def test_a_sweep_trains_own_models_on_an_own_npz(ray_with_own_module, tmp_path):
    from tune_mnist.run.sweep import SweepSettings, run_sweep

    path = own_space(tmp_path, model=["./nets.py:build", "own_sweep_module:build"])
    spec = load_space(path)
    settings = SweepSettings(storage_path=str(tmp_path / "results"))
    result = run_sweep(spec, settings)
    frame = result.results.sort_values("model")
    assert frame["status"].tolist() == ["finished", "finished"], frame
    assert (frame["epoch"] == 1).all()
    cost = model_cost_at(spec.trials[0].model, (3, 32, 32), 5)
    assert frame["params_m"].tolist() == pytest.approx([cost.params_m] * 2)
    assert frame["gflops"].tolist() == pytest.approx([cost.gflops] * 2)
    assert cost.gflops > 0 and cost.params_m == pytest.approx(
        (3 * 8 * 9 + 8 + 16 + 32 * 5 + 5) / 1e6
    )
    text = "\n".join(t.frame.to_string() for t in result.summary.tables)
    assert "nets.py:build" in text and str(tmp_path) not in text  # short name in tables
    assert "GFLOPs" in text and "params" in text
    notes = " ".join(note for table in result.summary.tables for note in table.notes)
    assert "one image of its dataset" in notes  # not MNIST's 1x28x28
    meta = yaml.safe_load((result.experiment_dir / "tune_mnist.json").read_text())
    assert list(meta["data"]["shapes"]["sha256"]) == [str(tmp_path / "shapes.npz")]


# --- bad references: one line naming the space file and the key, exit 1 ----------------


def _npz_mismatch(folder: Path) -> dict:
    x, y = patterned(40, (8, 8), 3, 0)
    np.savez(folder / "bad.npz", x_train=x, y_train=y[:39], x_test=x, y_test=y)
    return {"datasets": {"shapes": {"npz": "bad.npz"}}}


BAD = {
    "missing file": (
        {"model": "./nope.py:build"},
        "own.yaml: grid.model: ",
        "nope.py: no such file",
    ),
    "import fails": (
        {"model": "./broken.py:build"},
        "own.yaml: grid.model: ",
        "cannot import: ZeroDivisionError: division by zero",
    ),
    "no such callable": (
        {"model": "./nets.py:nope"},
        "own.yaml: grid.model: ",
        "has no callable 'nope'",
    ),
    "wrong signature": (
        {"model": "./nets.py:two_args"},
        "own.yaml: grid.model: ",
        "expected build(channels, height, width, classes), got two_args(channels, classes)",
    ),
    "wrong classes": (
        {"model": "./nets.py:three_scores"},
        "own.yaml: grid.model: ",
        "output should be 1 x 5 (one score per class) for one image, got (1, 3) "
        "(on shapes: 3x32x32, 5 classes)",
    ),
    "not a module": (
        {"model": "./nets.py:not_a_module"},
        "own.yaml: grid.model: ",
        "not a torch nn.Module",
    ),
    "no such module": (
        {"model": "no_such_module_here:build"},
        "own.yaml: grid.model: ",
        "cannot import: ModuleNotFoundError",
    ),
    "malformed reference": (
        {"model": "my-pkg:build"},
        "own.yaml: grid.model: ",
        "a model reference is package.module:callable or FILE.py:callable",
    ),
    "npz arrays do not match": (
        _npz_mismatch,
        "own.yaml: datasets.shapes.npz: ",
        "40 train images but 39 labels",
    ),
    "npz missing": (
        {"datasets": {"shapes": {"npz": "gone.npz"}}},
        "own.yaml: datasets.shapes.npz: ",
        "gone.npz: no such file",
    ),
    "npz and idx": (
        {"datasets": {"shapes": {"npz": "shapes.npz", "idx": "."}}},
        "own.yaml: datasets.shapes: ",
        "expected exactly one of npz: FILE, idx: FOLDER or torchvision: CLASS",
    ),
    "a built-in's name": (
        {"datasets": {"mnist": {"npz": "shapes.npz"}}},
        "own.yaml: datasets.mnist: ",
        "not a name for a dataset (a built-in's name)",
    ),
    "undeclared dataset": (
        {"datasets": {"other": {"npz": "shapes.npz"}}},
        "own.yaml: fixed.dataset: ",
        "Input should be 'mnist', 'fashion-mnist' or 'other' (got 'shapes')",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_each_bad_reference_is_one_line_and_exit_1(case, tmp_path):
    change, place, problem = BAD[case]
    (tmp_path / "broken.py").write_text("import torch\nx = 1 / 0\n")
    write_npz(tmp_path / "shapes.npz")
    change = change(tmp_path) if callable(change) else change
    path = own_space(
        tmp_path,
        **{k: v for k, v in change.items() if k != "model"},
        model=change.get("model", "./nets.py:build"),
    )
    result = CliRunner().invoke(app, ["show", str(path)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {place}"), result.output
    assert problem in lines[0], result.output


def test_show_lists_own_models_by_their_short_name(tmp_path):
    result = CliRunner().invoke(app, ["show", str(own_space(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "nets.py:build" in result.output and str(tmp_path) not in result.output


def test_builtin_spaces_are_shown_as_before():
    """`show q1a` lists load_space's trials as they always were: names, no checks' noise."""
    spec = load_space("q1a")
    assert all(isinstance(t, ResNetConfig) and t.model in MODELS for t in spec.trials)
    assert spec.space.datasets == {} and spec.data_sources == {}
    result = CliRunner().invoke(app, ["show", "q1a"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    assert len(rows) == len(spec.trials)  # one row per trial, in order
    for number, (row, trial) in enumerate(zip(rows, spec.trials, strict=True), start=1):
        cells = [c.strip() for c in row.strip("│").split("│")]
        assert cells[:4] == [str(number), trial.dataset, trial.model, str(trial.batch_size)]
        assert cells[4:7] == [trial.optimizer, str(trial.lr), str(trial.epochs)]
    assert result.output.splitlines()[0] == f"q1a: {len(spec.trials)} trials (q1a.yaml)"


def test_a_model_registered_by_an_installed_packages_entry_point(tmp_path, monkeypatch, request):
    """A distribution on sys.path (as pip would leave it) adds `tinynet` to the registry
    through the entry-point group; its try at taking over `resnet18` is ignored."""
    model_names.cache_clear()  # names are read once per process; this one installs mid-way
    request.addfinalizer(model_names.cache_clear)
    (tmp_path / "tinynets_pkg").mkdir()
    (tmp_path / "tinynets_pkg" / "__init__.py").write_text(NETS)
    info = tmp_path / "tinynets_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinynets-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[tune_mnist.models]\ntinynet = tinynets_pkg:build\nresnet18 = tinynets_pkg:build\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registry()["tinynet"].__module__ == "tinynets_pkg"
    assert registry()["resnet18"] is not registry()["tinynet"]
    spec = load_space(own_space(tmp_path, model="tinynet"))
    assert spec.trials[0].model == "tinynet"
    check_space(spec)
    assert build_model("tinynet", (3, 32, 32), 5)(torch.zeros(1, 3, 32, 32)).shape == (1, 5)


def test_where_picks_a_file_model_by_the_name_show_prints(tmp_path):
    path = own_space(tmp_path, model=["./nets.py:build", "resnet18"])
    for written in ("nets.py:build", "./nets.py:build"):
        result = CliRunner().invoke(app, ["show", str(path), "--where", f"model={written}"])
        assert result.exit_code == 0, result.output
        assert "1 of 2 trials" in result.output and "resnet18" not in result.output


def test_a_job_ships_the_files_its_space_refers_to(tmp_path):
    from tune_mnist.run.jobs import space_files

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "deep.py").write_text(NETS)
    path = own_space(tmp_path, model=["./nets.py:build", "./models/deep.py:build", "resnet18"])
    assert space_files(path) == [Path("models/deep.py"), Path("nets.py"), Path("shapes.npz")]


def test_workers_of_a_job_find_a_shipped_model_under_their_working_dir(tmp_path, monkeypatch):
    """On another node a file model's absolute path (the driver's) is missing; the job's
    working_dir copy is in the worker's working directory, found by the path's tail."""
    (tmp_path / "job" / "models").mkdir(parents=True)
    (tmp_path / "job" / "models" / "nets.py").write_text(NETS)
    monkeypatch.chdir(tmp_path / "job")
    elsewhere = "/driver-only/space-folder/models/nets.py:build"
    with pytest.raises(TuneMnistError, match="no such file"):  # outside a job: not looked for
        build_model(elsewhere, (3, 32, 32), 5)
    monkeypatch.setenv(SHIPPED_ENV, "1")
    assert build_model(elsewhere, (3, 32, 32), 5)(torch.zeros(1, 3, 32, 32)).shape == (1, 5)
