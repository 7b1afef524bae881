"""torchvision's image-classification datasets by name (`datasets: {kmnist: {torchvision:
KMNIST}}`): read from the cache when there, downloaded into it when online.

Each class lives in its own folder, `<cache>/torchvision/<Class>/`, so its files can be
checksummed as one dataset. Arrays come out as the project's Dataset (uint8 N x H x W or
N x H x W x C, labels from 0), normalized by the training images' own statistics.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tune_mnist.errors import TuneMnistError, first_line
from tune_mnist.spec.configs import DataSource

# How each supported class is asked for its two splits: by `train=` or by `split=`.
from tune_mnist.spec.torchvision_names import SPLIT_NAME


def cache_root() -> Path:
    """Where torchvision downloads go: $TUNE_MNIST_CACHE or ~/.cache/tune-mnist."""
    default = Path.home() / ".cache" / "tune-mnist"
    return Path(os.environ.get("TUNE_MNIST_CACHE", default)).expanduser()


def folder(name: str) -> Path:
    """Where one class's files live in the cache."""
    return cache_root() / "torchvision" / name


def files(source: DataSource) -> list[Path]:
    """Every file the class keeps in its folder (for checksums), in a stable order."""
    return sorted(p for p in folder(source.path).rglob("*") if p.is_file() and p.suffix != ".lock")


def read(source: DataSource) -> dict[str, np.ndarray]:
    """The four arrays of a torchvision dataset, from the cache or downloaded into it."""
    from filelock import FileLock

    root = folder(source.path)
    try:
        return _both_splits(source, root, download=False)
    except RuntimeError:  # torchvision's "Dataset not found": not in the cache yet
        pass
    if os.environ.get("TUNE_MNIST_OFFLINE"):
        raise TuneMnistError(
            f"{source.path}: not in {root}, and TUNE_MNIST_OFFLINE forbids downloading"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(root.parent / f".{source.path}.lock")):
            return _both_splits(source, root, download=True)
    except Exception as e:  # torchvision raises many kinds here; all mean "no data"
        raise TuneMnistError(
            f"{source.path}: not in {root} and the download failed ({first_line(e)})"
        ) from None


def _both_splits(source: DataSource, root: Path, download: bool) -> dict[str, np.ndarray]:
    from torchvision import datasets

    cls = getattr(datasets, source.path)
    extra = {"split": source.split} if source.split else {}
    arrays = {}
    for split in ("train", "test"):
        which = {"split": split} if source.path in SPLIT_NAME else {"train": split == "train"}
        dataset = cls(root=str(root), download=download, **which, **extra)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = as_arrays(dataset)
    return arrays


def as_arrays(dataset) -> tuple[np.ndarray, np.ndarray]:
    """Images (N x H x W or N x H x W x C, uint8) and labels of a torchvision dataset that
    holds its arrays in `.data` and `.targets` (or `.labels`, as SVHN does)."""
    images = np.asarray(dataset.data)
    labels = np.asarray(dataset.targets if hasattr(dataset, "targets") else dataset.labels)
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        images = images.transpose(0, 2, 3, 1)  # SVHN stores N x C x H x W
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    return np.ascontiguousarray(images), labels.astype(np.int64)
