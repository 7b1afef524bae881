"""torchvision's datasets by name: read for real by torchvision from files staged in the
cache (this machine has no internet), checksummed, and one line for each bad declaration."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tune_mnist import load_space
from tune_mnist.cli.main import app
from tune_mnist.spec.configs import SVMConfig
from tune_mnist.train.checks import check_space, space_datasets
from tune_mnist.train.data import dataset_files, write_idx
from tune_mnist.train.svm import fit_svm
from tune_mnist.train.tvdatasets import as_arrays, folder

from ..integration.test_own_models import patterned


def stage(raw: Path, prefix: str = "", size=20, classes=6, n_train=30, n_test=12) -> None:
    """Raw (ungzipped) IDX files where torchvision's MNIST-family classes look for them."""
    raw.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 0), ("t10k" if not prefix else "test", n_test, 1)):
        images, labels = patterned(n, (size, size), classes, seed)
        write_idx(raw / f"{prefix}{split}-images-idx3-ubyte", images.astype(np.uint8))
        write_idx(raw / f"{prefix}{split}-labels-idx1-ubyte", labels.astype(np.uint8))


def space(folder: Path, datasets: dict, trainable="svm", **fields) -> Path:
    name = next(iter(datasets))
    body = {"name": "tv", "trainable": trainable, "datasets": datasets}
    body |= {"grid": {"dataset": [name], "kernel": ["linear"]}} | fields
    path = folder / "tv.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def test_kmnist_by_name_is_read_from_the_cache_by_torchvision(tmp_path):
    stage(folder("KMNIST") / "KMNIST" / "raw")
    spec = load_space(space(tmp_path, {"kmnist": {"torchvision": "KMNIST"}}))
    data = space_datasets(spec)["kmnist"]
    assert data.shape == (1, 20, 20) and data.classes == 6 and data.sizes == (30, 12)
    assert data.source == "torchvision KMNIST"
    expected, _ = patterned(30, (20, 20), 6, 0)
    assert np.array_equal(data.train_images, expected)
    files = dataset_files("kmnist", source=spec.data_sources["kmnist"])
    assert len(files) == 4 and all(f.parent.name == "raw" for f in files)
    assert fit_svm(SVMConfig(dataset="kmnist", kernel="linear", train_samples=30), data)


def test_emnist_takes_its_split_and_a_resnet_space_checks_against_it(tmp_path):
    stage(folder("EMNIST") / "EMNIST" / "raw", prefix="emnist-letters-", size=28, classes=27)
    spec = load_space(
        space(
            tmp_path,
            {"letters": {"torchvision": "EMNIST", "split": "letters"}},
            trainable="resnet",
            grid={"dataset": ["letters"], "model": ["resnet18"]},
            fixed={"optimizer": "adam", "lr": 0.001, "epochs": 1, "batch_size": 8},
        )
    )
    data = space_datasets(spec)["letters"]
    assert data.shape == (1, 28, 28) and data.classes == 27
    check_space(spec)  # a ResNet-18 with 27 outputs runs one image of the data


def test_arrays_of_channel_first_and_channel_last_datasets():
    svhn_like = SimpleNamespace(data=np.zeros((4, 3, 8, 8), np.uint8), labels=np.arange(4))
    images, labels = as_arrays(svhn_like)
    assert images.shape == (4, 8, 8, 3) and list(labels) == [0, 1, 2, 3]
    cifar_like = SimpleNamespace(data=np.zeros((2, 8, 8, 3), np.uint8), targets=[1, 0])
    assert as_arrays(cifar_like)[0].shape == (2, 8, 8, 3)


BAD = {
    "unknown class": ({"x": {"torchvision": "ImageNet"}}, "tv.yaml: datasets.x.torchvision: "),
    "EMNIST without a split": (
        {"x": {"torchvision": "EMNIST"}},
        "tv.yaml: datasets.x.torchvision: EMNIST needs split: one of byclass",
    ),
    "a split where none is taken": (
        {"x": {"torchvision": "KMNIST", "split": "train"}},
        "tv.yaml: datasets.x.torchvision: KMNIST takes no split",
    ),
    "a split on a file": (
        {"x": {"npz": "a.npz", "split": "letters"}},
        "tv.yaml: datasets.x.split: only a torchvision dataset takes a split",
    ),
    "not cached and offline": (
        {"x": {"torchvision": "KMNIST"}},
        "tv.yaml: datasets.x.torchvision: KMNIST: not in ",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_each_bad_declaration_is_one_line_and_exit_1(case, tmp_path):
    datasets, start = BAD[case]
    result = CliRunner().invoke(app, ["show", str(space(tmp_path, datasets))])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {start}"), result.output
    assert os.environ["TUNE_MNIST_OFFLINE"] == "1"  # nothing here may try the network
