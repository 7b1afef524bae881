"""A space's own trainable run under Ray Tune: `trainable: package.module:train` (or
`./loop.py:train`; train/custom.py finds and checks it).

The contract, for what does not fit the ResNet and SVM loops:

    def train(config: dict, data: Dataset, reporter: Reporter) -> None

- `config`: the trial's keys as the space sets them (dataset, seed and every other key).
- `data`: the dataset as uint8 arrays (`data.train_images`, `train_labels`, `test_images`,
  `test_labels`, `classes`, `shape`), shared by every trial through Ray's object store.
- `reporter.report(metrics, state=None)`: once per epoch (or step), a dict of numbers. The
  space's `metric` must be among them; the tables show its last value. `state`, if given,
  is saved with torch.save as the trial's checkpoint; after a failure the trial restarts
  with it in `reporter.restored` (None on a first start) and should continue from there.

Whatever the function reports is kept per epoch (load_epochs) and its last report per
trial (load_results). A function that returns without reporting its metric fails its trial
with one line saying so.
"""

from __future__ import annotations

import pickle
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from ray import tune

from tune_mnist.errors import TuneMnistError, first_line
from tune_mnist.spec.configs import CustomConfig
from tune_mnist.train.custom import load_trainable
from tune_mnist.train.data import Dataset

STATE_FILE = "state.pt"
# what tune-mnist adds to every report; a trainable's own key of these names is refused
OWN_KEYS = ("epoch", "trial_finished", "train_time_ms", "test_accuracy")


class Reporter:
    """What a custom trainable reports through: numbered epochs, checkpoints, a clock."""

    def __init__(self, base: dict, metric: str, restored: dict | None):
        self.restored: Any = restored["state"] if restored else None
        self._base, self._metric = base, metric
        self._epoch = restored["epoch"] if restored else 0
        self._elapsed_ms = restored["train_time_ms"] if restored else 0.0
        self._started = time.perf_counter()
        self.last: dict[str, float] | None = None

    def report(self, metrics: dict[str, float], state: Any = None) -> None:
        """Report one epoch's metrics to Tune, with `state` as its checkpoint if given."""
        bad = [
            k for k, v in metrics.items() if isinstance(v, bool) or not isinstance(v, int | float)
        ]
        if bad:
            raise TuneMnistError(f"report: {bad[0]} is {metrics[bad[0]]!r}, not a number")
        if taken := [k for k in OWN_KEYS if k in metrics]:
            raise TuneMnistError(f"report: {taken[0]} is tune-mnist's own key; rename it")
        self._epoch += 1
        elapsed = self._elapsed_ms + (time.perf_counter() - self._started) * 1000
        self.last = {**self._base, **metrics, "epoch": self._epoch, "train_time_ms": elapsed}
        if state is None:
            tune.report(self.last)
            return
        with tempfile.TemporaryDirectory() as staging:
            saved = {"state": state, "epoch": self._epoch, "train_time_ms": elapsed}
            torch.save(saved, Path(staging) / STATE_FILE)
            tune.report(self.last, checkpoint=tune.Checkpoint.from_directory(staging))


def load_state(folder: Path) -> dict:
    """What a custom trainable saved in a checkpoint folder: tensors and plain types only,
    so reading a checkpoint cannot run code; one line if it holds anything else."""
    try:
        return torch.load(folder / STATE_FILE, weights_only=True)
    except pickle.UnpicklingError as e:
        raise TuneMnistError(
            f"{folder / STATE_FILE}: holds more than tensors and plain values; not loaded "
            f"({first_line(e)})"
        ) from None


def run_custom(
    trial: CustomConfig, data: Dataset, metric: str, base: dict, finish: Callable[[], dict]
) -> None:
    """Run one trial of a custom trainable under Tune, then report it finished."""
    function = load_trainable(trial.function)
    checkpoint = tune.get_checkpoint()
    restored = None
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            restored = load_state(Path(folder))
    reporter = Reporter(base, metric, restored)
    try:
        function(trial.config(), data, reporter)
    except TuneMnistError:
        raise
    except Exception as e:  # the user's code: its own error, said in one line
        raise TuneMnistError(f"{trial.function}: {type(e).__name__}: {first_line(e)}") from e
    if reporter.last is None or metric not in reporter.last:
        raise TuneMnistError(
            f"{trial.function} returned without reporting {metric!r}, the space's metric"
        )
    tune.report({**reporter.last, "trial_finished": True, **finish()})
