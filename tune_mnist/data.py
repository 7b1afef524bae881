"""MNIST and Fashion-MNIST as uint8 arrays: IDX parsing, where to find the files, downloads.

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
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import TuneMnistError, first_line

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
# Full MNIST is 47 MB; a header declaring more than 8 GiB is damaged or hostile.
MAX_IDX_PAYLOAD = 2**33
READ_CHUNK = 1 << 24


@dataclass(frozen=True)
class Dataset:
    """One dataset in memory: images uint8 [N, 28, 28], labels uint8 [N]."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str  # the folder the files came from

    def head(self, n_train: int, n_test: int) -> Dataset:
        """The first n images of each split, in file order."""
        return Dataset(
            self.name,
            self.train_images[:n_train],
            self.train_labels[:n_train],
            self.test_images[:n_test],
            self.test_labels[:n_test],
            self.source,
        )

    @property
    def sizes(self) -> tuple[int, int]:
        return len(self.train_labels), len(self.test_labels)


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
    if size > MAX_IDX_PAYLOAD:
        raise TuneMnistError(
            f"{path}: IDX header {shape} declares {size} bytes of data, more than the "
            f"{MAX_IDX_PAYLOAD} this reader accepts"
        )
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


def read_folder(name: str, folder: Path) -> Dataset:
    """Read the four IDX files of one dataset from a folder (each gzipped or raw)."""
    arrays = {}
    for key, stem in FILES.items():
        path = _find_file(folder, stem)
        if path is None:
            raise TuneMnistError(f"{name}: {folder} has no {stem} (or {stem}.gz)")
        arrays[key] = read_idx(path, IMAGES_MAGIC if key.endswith("images") else LABELS_MAGIC)
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


def cache_root() -> Path:
    """Where torchvision downloads go: $TUNE_MNIST_CACHE or ~/.cache/tune-mnist."""
    default = Path.home() / ".cache" / "tune-mnist"
    return Path(os.environ.get("TUNE_MNIST_CACHE", default)).expanduser()


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
    roots = ([root] if root else []) + [cache_root()]
    folders = (f for r in roots for f in candidate_folders(name, r))
    return next((f for f in folders if f.is_dir()), None), roots


def load_dataset(name: str, data_dir: str | Path | None = None, smoke: bool = False) -> Dataset:
    """Find, read and check one dataset; with `smoke`, its first 1,000/500 images."""
    folder, roots = find_folder(name, data_dir, smoke)
    dataset = read_folder(name, folder) if folder else download(name, roots)
    return dataset.head(SMOKE_TRAIN, SMOKE_TEST) if smoke else dataset


def dataset_files(name: str, data_dir: str | Path | None = None, smoke: bool = False) -> list[Path]:
    """The four IDX files `load_dataset` with these arguments reads, in FILES order.

    Never downloads: called after a load, it names the files that load read (a smoke run
    reads whole files and keeps their head, so these are still the files to checksum).
    """
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

    cache = cache_root()
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
    names: list[str], data_dir: str | Path | None = None, smoke: bool = False
) -> dict[str, Dataset]:
    """Load each named dataset once (the sweep shares them with trials via Ray)."""
    return {name: load_dataset(name, data_dir, smoke) for name in dict.fromkeys(names)}


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped when the name ends in .gz)."""
    magic = IMAGES_MAGIC if array.ndim == 3 else LABELS_MAGIC
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload, mtime=0) if path.suffix == ".gz" else payload)
