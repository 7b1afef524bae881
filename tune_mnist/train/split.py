"""A validation split: training images held out, fixed by a seed, never trained on.

`validation: N` in a space holds out N training images, `validation: 0.1` a tenth of them.
Which ones is drawn from the trial's seed (numpy's default_rng), so the trials of one seed
share one split and a repeat at the next seed gets its own. The rest stay in file order,
so an SVM's `train_samples` are still the first N of what is left. The datasets are loaded
once and shared; a trial takes its split from them by index.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from tune_mnist.errors import TuneMnistError
from tune_mnist.train.data import NORMALIZATION, Dataset


@dataclass(frozen=True)
class Holdout:
    """The held-out validation images and their labels."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def validation_size(validation: int | float, n_train: int) -> int:
    """How many of `n_train` images a `validation:` value holds out (a fraction rounds)."""
    if isinstance(validation, float):
        return round(validation * n_train)
    return int(validation)


def split_indices(n_train: int, validation: int | float, seed: int):
    """(training indices, validation indices): disjoint, together all of range(n_train),
    each sorted; the same for the same seed."""
    size = validation_size(validation, n_train)
    if not 1 <= size < n_train:
        raise TuneMnistError(
            f"validation {validation}: holds out {size} of {n_train:,} training images; "
            "expected at least 1 and fewer than all"
        )
    order = np.random.default_rng(seed).permutation(n_train)
    return np.sort(order[size:]), np.sort(order[:size])


def hold_out(data: Dataset, validation: int | float, seed: int) -> tuple[Dataset, Holdout]:
    """The dataset without its validation images, and those images."""
    train, held = split_indices(len(data.train_labels), validation, seed)
    # the normalization stays that of all the training images (the built-ins' constants,
    # or an own dataset's statistics), so a split changes which images train, nothing else
    mean, std = ((), ()) if data.name in NORMALIZATION and not data.mean else data.normalization
    rest = replace(
        data,
        train_images=data.train_images[train],
        train_labels=data.train_labels[train],
        mean=mean,
        std=std,
    )
    return rest, Holdout(data.train_images[held], data.train_labels[held])


def check_validation(validation: int | float | None, sizes: dict[str, int]) -> None:
    """Refuse a split that leaves a dataset without training or validation images."""
    if validation is None:
        return
    for name, n_train in sizes.items():
        try:
            split_indices(n_train, validation, 0)
        except TuneMnistError as e:
            raise TuneMnistError(f"{name}: {e}") from None


def train_size(validation: int | float | None, n_train: int) -> int:
    """The training images left once the split is held out."""
    return n_train if validation is None else n_train - validation_size(validation, n_train)
