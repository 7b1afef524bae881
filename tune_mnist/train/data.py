"""Datasets as uint8 arrays: MNIST and Fashion-MNIST (IDX parsing, where to find the files,
downloads), and the ones a space declares: a `.npz` file, a folder of IDX files, or one of
torchvision's datasets by name (tvdatasets.py).

Lookup order for a dataset: `data_dir` (or $TUNE_MNIST_DATA), in either a flat
`<dir>/<name>/` folder or torchvision's `<dir>/<Class>/raw/` layout; then the cache
folder ($TUNE_MNIST_CACHE, default ~/.cache/tune-mnist), where torchvision downloads it
when online (unless $TUNE_MNIST_OFFLINE is set). `--smoke` runs without a data folder
use the small real sample shipped in the package.
"""

from __future__ import annotations

import gzip
import math
import os
import zipfile
import zlib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import BinaryIO

import numpy as np

from tune_mnist.errors import TuneMnistError, first_line
from tune_mnist.spec.configs import DataSource
from tune_mnist.train import tvdatasets

# file stem -> (IDX magic number, number of dimensions)
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # 0x00000803: ubyte, 3 dims; 0x00000801: 1 dim
TORCHVISION_CLASS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
# Mean and std of the training pixels scaled to [0, 1]: the usual Normalize constants.
NORMALIZATION = {"mnist": (0.1307, 0.3081), "fashion-mnist": (0.2860, 0.3530)}
SMOKE_TRAIN, SMOKE_TEST = 1_000, 500  # images per dataset in a --smoke run
# The most bytes one array of a dataset may decode to, checked from its header before it
# is decoded: full MNIST's training images are 47 MB, CIFAR-100's 154 MB. A small file that
# claims more (a compressed bomb, a damaged header) is refused; raise it with the variable.
MAX_DATA_ENV = "TUNE_MNIST_MAX_DATA_BYTES"
DEFAULT_MAX_DATA_BYTES = 2**30  # 1 GiB
MAX_SIDE, MAX_CHANNELS = 4096, 4  # pixels on a side, channels: an image the model check builds
READ_CHUNK = 1 << 24


def max_data_bytes() -> int:
    """The cap on one array's decoded bytes: $TUNE_MNIST_MAX_DATA_BYTES, else 1 GiB."""
    text = os.environ.get(MAX_DATA_ENV)
    if text is None:
        return DEFAULT_MAX_DATA_BYTES
    if not text.isdigit() or int(text) < 1:
        raise TuneMnistError(f"{MAX_DATA_ENV}={text}: expected a number of bytes")
    return int(text)


def check_declared(source: str, shape: tuple[int, ...], itemsize: int = 1) -> None:
    """Refuse, before decoding, an array whose declared shape is past the caps: its bytes
    (max_data_bytes), an image's sides (MAX_SIDE) or channels (MAX_CHANNELS)."""
    size = math.prod(shape) * itemsize
    if size > (cap := max_data_bytes()):
        raise TuneMnistError(
            f"{source}: declares {shape}, {size:,} bytes once decoded: more than the "
            f"{cap:,} accepted (raise it with {MAX_DATA_ENV})"
        )
    if len(shape) >= 3 and (max(shape[1:3]) > MAX_SIDE or shape[3:4] > (MAX_CHANNELS,)):
        raise TuneMnistError(
            f"{source}: images of {' x '.join(map(str, shape[1:]))}: at most {MAX_SIDE} "
            f"pixels a side and {MAX_CHANNELS} channels"
        )


@dataclass(frozen=True)
class Dataset:
    """One dataset in memory: images uint8 [N, H, W] or [N, H, W, C], labels uint8 [N]."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str  # the folder (or file) the arrays came from
    classes: int = 10  # labels are 0 .. classes - 1
    # per-channel mean and std of the training pixels in [0, 1]; empty: the built-in table
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def head(self, n_train: int, n_test: int) -> Dataset:
        """The first n images of each split, in file order (normalization unchanged)."""
        return replace(
            self,
            train_images=self.train_images[:n_train],
            train_labels=self.train_labels[:n_train],
            test_images=self.test_images[:n_test],
            test_labels=self.test_labels[:n_test],
        )

    @property
    def sizes(self) -> tuple[int, int]:
        return len(self.train_labels), len(self.test_labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image as a model sees it: (channels, height, width)."""
        return image_shape(self.train_images.shape[1:])

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel (mean, std): the usual constants for the built-ins (so their numbers
        never change), else the training images' own."""
        if self.mean:
            return self.mean, self.std
        if self.name in NORMALIZATION:
            mean, std = NORMALIZATION[self.name]
            return (mean,), (std,)
        return channel_stats(self.train_images)


def image_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(C, H, W) of one image stored as (H, W) or (H, W, C)."""
    return (1, *shape) if len(shape) == 2 else (shape[2], shape[0], shape[1])


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std per channel of uint8 images scaled to [0, 1] (std 1 where constant)."""
    pixels = images.reshape(len(images), -1, 1 if images.ndim == 3 else images.shape[-1])
    pixels = pixels.reshape(-1, pixels.shape[-1])
    mean = pixels.mean(axis=0, dtype=np.float64) / 255
    std = pixels.std(axis=0, dtype=np.float64) / 255
    return tuple(float(m) for m in mean), tuple(float(s) if s > 0 else 1.0 for s in std)


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an IDX file (gzip or raw), checking its magic number and its length.

    The header is checked first, then exactly the payload it declares is read, plus one
    byte to detect padding: a gzip bomb is refused after decompressing only that much.
    """
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as stream:
            return _read_idx_stream(stream, path, magic)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise TuneMnistError(f"{path}: cannot read IDX file: {first_line(e)}") from None


def _read_idx_stream(stream: BinaryIO, path: Path, magic: int) -> np.ndarray:
    head = stream.read(4)
    if len(head) == 4 and (found := int.from_bytes(head, "big")) != magic:
        raise TuneMnistError(f"{path}: bad IDX magic number {found:#010x}, expected {magic:#010x}")
    ndim = magic % 256  # the magic's last byte, so the header is 4 bytes per dimension more
    head += stream.read(4 * ndim)
    if len(head) < 4 + 4 * ndim:
        raise TuneMnistError(f"{path}: truncated IDX file ({len(head)} bytes, no header)")
    shape = tuple(int.from_bytes(head[i : i + 4], "big") for i in range(4, len(head), 4))
    size = math.prod(shape)
    expected = len(head) + size
    check_declared(f"{path}: IDX header", shape)
    # Grown chunk by chunk rather than allocated up front, so that a header promising
    # gigabytes over a short file costs only what the file really holds.
    payload = bytearray()
    while len(payload) < size and (chunk := stream.read(min(READ_CHUNK, size - len(payload)))):
        payload += chunk
    if len(payload) < size or stream.read(1):
        length = len(head) + len(payload) if len(payload) < size else f"more than {expected}"
        raise TuneMnistError(
            f"{path}: truncated or padded IDX file: {length} bytes, header {shape} needs {expected}"
        )
    array = np.frombuffer(payload, dtype=np.uint8).reshape(shape)
    array.flags.writeable = False  # the datasets are shared between trials, never modified
    return array


def read_folder(name: str, folder: Path, own: bool = False) -> Dataset:
    """Read the four IDX files of one dataset from a folder (each gzipped or raw).

    The built-ins must be 28x28 with labels 0-9; a dataset a space declares (`own`) may have
    any image size and class count, and is normalized by its own statistics.
    """
    arrays = {}
    for key, stem in FILES.items():
        path = _find_file(folder, stem)
        if path is None:
            raise TuneMnistError(f"{name}: {folder} has no {stem} (or {stem}.gz)")
        arrays[key] = read_idx(path, IMAGES_MAGIC if key.endswith("images") else LABELS_MAGIC)
    if own:
        return own_dataset(name, str(folder), arrays)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[1:] != (28, 28):
            raise TuneMnistError(
                f"{name}: {folder}: {split} images are {images.shape[1:]}, not 28x28"
            )
        if len(images) != len(labels):
            raise TuneMnistError(
                f"{name}: {folder}: {len(images)} {split} images but {len(labels)} labels"
            )
        # An empty split would train on nothing or score an accuracy over no images.
        if len(images) == 0:
            raise TuneMnistError(f"{name}: {folder}: the {split} split has no images")
        if labels.max() > 9:
            raise TuneMnistError(f"{name}: {folder}: {split} label {labels.max()} is not 0-9")
    return Dataset(name, source=str(folder), **arrays)


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def read_npz(name: str, path: Path) -> Dataset:
    """A dataset from a `.npz` holding x_train, y_train, x_test, y_test (images uint8
    N x H x W or N x H x W x C, labels integers from 0)."""
    try:
        with np.load(path, allow_pickle=False) as npz:  # never unpickle a user's file
            missing = [k for k in NPZ_KEYS if k not in npz.files]
            if missing:
                raise TuneMnistError(
                    f"{path} has no array {missing[0]} (needs {', '.join(NPZ_KEYS)})"
                )
            for key in NPZ_KEYS:  # each array's header read, its data not yet
                check_declared(f"{path}: {key}", *_npy_header(npz.zip, f"{key}.npy"))
            x_train, y_train, x_test, y_test = (npz[k] for k in NPZ_KEYS)
    except (OSError, ValueError, EOFError, zlib.error) as e:  # not a zip, pickled objects
        raise TuneMnistError(f"{path}: cannot read as .npz: {first_line(e)}") from None
    arrays = {"train_images": x_train, "train_labels": y_train}
    arrays |= {"test_images": x_test, "test_labels": y_test}
    return own_dataset(name, str(path), arrays)


def _npy_header(archive: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], int]:
    """The shape and item size an .npy member of an .npz declares, read from its header
    (a few hundred bytes decompressed), not from its data."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0}
    readers[(2, 0)] = np.lib.format.read_array_header_2_0
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        if version not in readers:
            raise ValueError(f"{member}: .npy format {version} (expected 1.0 or 2.0)")
        shape, _, dtype = readers[version](stream)
    return shape, dtype.itemsize


def own_dataset(name: str, source: str, arrays: dict[str, np.ndarray]) -> Dataset:
    """Check a declared dataset's four arrays and make it a Dataset: shape, channels and
    classes from the data, normalization from its training images."""
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        x, y = ("x", "y") if source.endswith(".npz") else ("images", "labels")
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise TuneMnistError(
                f"{source}: {x}_{split} must be uint8 N x H x W or N x H x W x C, "
                f"got {images.dtype} {images.shape}"
            )
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise TuneMnistError(
                f"{source}: {y}_{split} must be a 1-D array of integer labels, "
                f"got {labels.dtype} {labels.shape}"
            )
        if len(images) != len(labels):
            raise TuneMnistError(f"{source}: {len(images)} {split} images but {len(labels)} labels")
        if len(images) == 0:
            raise TuneMnistError(f"{source}: the {split} split has no images")
        if labels.min() < 0 or labels.max() > 255:
            raise TuneMnistError(
                f"{source}: {y}_{split} labels must be 0 to 255, "
                f"got {labels.min()} to {labels.max()}"
            )
        arrays[f"{split}_labels"] = labels.astype(np.uint8)
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise TuneMnistError(
            f"{source}: train images are {arrays['train_images'].shape[1:]}, "
            f"test images {arrays['test_images'].shape[1:]}"
        )
    for array in arrays.values():
        array.flags.writeable = False  # shared between trials, never modified
    classes = int(max(arrays["train_labels"].max(), arrays["test_labels"].max())) + 1
    mean, std = channel_stats(arrays["train_images"])
    return Dataset(name, source=source, classes=classes, mean=mean, std=std, **arrays)


def read_source(name: str, source: DataSource) -> Dataset:
    """A dataset a space declares, its problems said with where it was declared."""
    path = Path(source.path)
    try:
        if source.kind == "torchvision":
            return own_dataset(name, f"torchvision {source.path}", tvdatasets.read(source))
        if source.kind == "npz":
            if not path.is_file():
                raise TuneMnistError(f"{path}: no such file")
            return read_npz(name, path)
        if not path.is_dir():
            raise TuneMnistError(f"{path}: no such folder")
        return read_folder(name, path, own=True)
    except TuneMnistError as e:
        raise TuneMnistError(f"{source.origin}: {e}" if source.origin else str(e)) from None


def source_files(source: DataSource) -> list[Path]:
    """The files a declared dataset is read from, for checksums."""
    if source.kind == "torchvision":
        return tvdatasets.files(source)
    if source.kind == "npz":
        return [Path(source.path)]
    folder = Path(source.path)
    return [path for stem in FILES.values() if (path := _find_file(folder, stem))]


def _find_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def candidate_folders(name: str, root: Path) -> list[Path]:
    """Where a dataset may sit under a root: flat `<root>/<name>/`, or torchvision's layout."""
    return [root / name, root / TORCHVISION_CLASS[name] / "raw"]


def sample_root() -> Path:
    """The small real sample shipped in the package (1,000 train / 500 test per dataset)."""
    return Path(str(resources.files("tune_mnist") / "sample"))


def data_root(data_dir: str | Path | None) -> Path | None:
    """The user's data folder: the argument, else $TUNE_MNIST_DATA; checked to exist."""
    chosen = data_dir or os.environ.get("TUNE_MNIST_DATA")
    if not chosen:
        return None
    root = Path(chosen).expanduser()
    if not root.is_dir():
        raise TuneMnistError(f"data folder {root} does not exist")
    return root


def find_folder(
    name: str, data_dir: str | Path | None = None, smoke: bool = False
) -> tuple[Path | None, list[Path]]:
    """The folder a load of `name` reads (None: not there yet), and the roots searched."""
    root = data_root(data_dir)
    if smoke and root is None:
        return sample_root() / name, []
    roots = ([root] if root else []) + [tvdatasets.cache_root()]
    folders = (f for r in roots for f in candidate_folders(name, r))
    return next((f for f in folders if f.is_dir()), None), roots


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    smoke: bool = False,
    source: DataSource | None = None,
) -> Dataset:
    """Find, read and check one dataset (a space's own where `source` is given); with
    `smoke`, its first 1,000/500 images."""
    if source is not None:
        dataset = read_source(name, source)
    else:
        folder, roots = find_folder(name, data_dir, smoke)
        dataset = read_folder(name, folder) if folder else download(name, roots)
    return dataset.head(SMOKE_TRAIN, SMOKE_TEST) if smoke else dataset


def dataset_files(
    name: str,
    data_dir: str | Path | None = None,
    smoke: bool = False,
    source: DataSource | None = None,
) -> list[Path]:
    """The four IDX files `load_dataset` with these arguments reads, in FILES order (a
    declared `.npz`: that one file).

    Never downloads: called after a load, it names the files that load read (a smoke run
    reads whole files and keeps their head, so these are still the files to checksum).
    """
    if source is not None:
        return source_files(source)
    folder, roots = find_folder(name, data_dir, smoke)
    if folder is None:
        where = ", ".join(str(r) for r in roots)
        raise TuneMnistError(f"{name}: not found under {where}")
    files = [_find_file(folder, stem) for stem in FILES.values()]
    missing = [stem for stem, path in zip(FILES.values(), files, strict=True) if path is None]
    if missing:
        raise TuneMnistError(f"{name}: {folder} has no {missing[0]} (or {missing[0]}.gz)")
    return files


def download(name: str, searched: list[Path]) -> Dataset:
    """Download into the cache with torchvision, one process at a time (file lock)."""
    from filelock import FileLock
    from torchvision import datasets

    cache = tvdatasets.cache_root()
    where = ", ".join(str(r) for r in searched)
    if os.environ.get("TUNE_MNIST_OFFLINE"):
        raise TuneMnistError(
            f"{name}: not found under {where}, and TUNE_MNIST_OFFLINE forbids downloading; "
            "pass --data-dir DIR holding the IDX files (or set TUNE_MNIST_DATA)"
        )
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with FileLock(str(cache / f".{name}.lock")):
            getattr(datasets, TORCHVISION_CLASS[name])(root=str(cache), download=True)
    except Exception as e:  # torchvision raises many kinds here; all mean "no data"
        raise TuneMnistError(
            f"{name}: not found under {where} and the download failed ({first_line(e)}); "
            "pass --data-dir DIR holding the IDX files (or set TUNE_MNIST_DATA)"
        ) from None
    return read_folder(name, cache / TORCHVISION_CLASS[name] / "raw")


def load_datasets(
    names: list[str],
    data_dir: str | Path | None = None,
    smoke: bool = False,
    sources: dict[str, DataSource] | None = None,
) -> dict[str, Dataset]:
    """Load each named dataset once (the sweep shares them with trials via Ray); names in
    `sources` are the space's own datasets."""
    sources = sources or {}
    return {
        name: load_dataset(name, data_dir, smoke, sources.get(name))
        for name in dict.fromkeys(names)
    }


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped when the name ends in .gz)."""
    magic = IMAGES_MAGIC if array.ndim == 3 else LABELS_MAGIC
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload, mtime=0) if path.suffix == ".gz" else payload)
