"""Shared fixtures: tiny generated IDX data, outputs in tmp dirs, real local Ray clusters."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from tune_mnist.train.data import FILES, write_idx

# Ray binds the machine's routable address even for "127.0.0.1" unless this is off; Ray
# reads it once at import, so it is set before anything imports Ray. Test clusters then
# listen, and send, on loopback only.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

# One signing key (trust.py) for the whole session, never the user's own: set here, before
# any fixture, because module-scoped sweeps run before the per-test environment is made.
os.environ["TUNE_MNIST_CONFIG_DIR"] = tempfile.mkdtemp(prefix="tune-mnist-config-")

TINY_TRAIN, TINY_TEST = 96, 40


def patterned_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise images with a bright block whose position encodes the label (easy to learn)."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
    for image, label in zip(images, labels, strict=True):
        row, col = divmod(int(label), 5)
        image[4 + 12 * row : 10 + 12 * row, 2 + 5 * col : 6 + 5 * col] = 255
    return images, labels


def write_dataset(folder: Path, n_train: int = TINY_TRAIN, n_test: int = TINY_TEST, gz=True):
    """Write the four IDX files of a patterned dataset into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    train, test = patterned_split(n_train, 0), patterned_split(n_test, 1)
    arrays = dict(zip(FILES, (*train, *test), strict=True))
    for key, stem in FILES.items():
        write_idx(folder / (stem + (".gz" if gz else "")), arrays[key])
    return folder


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A data root with tiny mnist/ and fashion-mnist/ folders (flat layout)."""
    root = tmp_path_factory.mktemp("data")
    for name in ("mnist", "fashion-mnist"):
        write_dataset(root / name)
    return root


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Results, cache and data lookups inside tmp dirs; never a download; no cluster address."""
    monkeypatch.setenv("TUNE_MNIST_RESULTS", str(tmp_path / "ray_results"))
    monkeypatch.setenv("TUNE_MNIST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TUNE_MNIST_OFFLINE", "1")
    monkeypatch.delenv("TUNE_MNIST_DATA", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # the CLI sets this for a local Ray; monkeypatch puts the original back after each test
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)


def write_space(folder: Path, name: str = "tiny", **fields) -> Path:
    """A space file from keyword fields, e.g. write_space(tmp, trainable="svm", grid={...})."""
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **fields}, sort_keys=False))
    return path


TINY_RESNET = dict(
    trainable="resnet",
    fixed={"model": "resnet18", "optimizer": "adam", "lr": 0.001, "pin_memory": False},
    grid={"dataset": ["mnist"], "batch_size": [32, 48], "epochs": [2]},
)
TINY_SVM = dict(
    trainable="svm",
    fixed={"train_samples": 80},
    grid={"dataset": ["mnist", "fashion-mnist"], "kernel": ["rbf", "poly"]},
)


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray with 2 CPUs, shared by a module's tests, stopped afterwards."""
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_with_gpus():
    """A real local Ray declaring 4 logical GPUs (none exist): tests GPU scheduling on CPU."""
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        num_gpus=4,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
    )
    yield
    ray.shutdown()


@pytest.fixture
def repeated(tmp_path):
    """A finished comparison: ResNet-18 at 90, 91, 92 % (seeds 0-2), ResNet-50 at 80, 80.5, 81."""
    from tune_mnist.spec.spaces import load_space

    from .experiments import COMPARE, make_experiment

    spec = load_space(write_space(tmp_path, name="cmp", **COMPARE))
    acc = {("resnet18", s): 90.0 + s for s in range(3)} | {
        ("resnet50", s): 80.0 + s / 2 for s in range(3)
    }
    return make_experiment(tmp_path / "exp", spec, lambda t: acc[(t.model, t.seed)])
