"""Which torchvision dataset classes a space may name, and the splits they take.

Checked when a space file is loaded (spaces.py), before anything is downloaded or imported;
train/tvdatasets.py reads the classes named here.
"""

from __future__ import annotations

from tune_mnist.errors import TuneMnistError

TRAIN_FLAG = ("MNIST", "FashionMNIST", "KMNIST", "EMNIST", "QMNIST", "CIFAR10", "CIFAR100")
SPLIT_NAME = ("SVHN",)
SUPPORTED = TRAIN_FLAG + SPLIT_NAME
NEEDS_SPLIT = {"EMNIST": ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")}


def check_name(name: str, split: str | None) -> None:
    """Refuse a class this module cannot read, or a split it does not take."""
    if name not in SUPPORTED:
        raise TuneMnistError(f"torchvision: {name} is not one of {', '.join(SUPPORTED)}")
    splits = NEEDS_SPLIT.get(name)
    if splits and split not in splits:
        raise TuneMnistError(f"torchvision: {name} needs split: one of {', '.join(splits)}")
    if not splits and split is not None:
        raise TuneMnistError(f"torchvision: {name} takes no split")
