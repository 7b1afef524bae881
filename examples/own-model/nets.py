"""A small CNN for `tune-mnist`: any channels, image size and class count.

tune-mnist calls `build(channels, height, width, classes)` and trains what it returns.
"""

from torch import nn


def build(channels: int, height: int, width: int, classes: int) -> nn.Module:
    """Two conv blocks, global pooling, a linear classifier."""
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, classes),
    )
