"""Experiment folders as a sweep leaves them, made without Ray: the metadata through the
project's own writer (experiment.new_meta / write_meta), the trial folders in the layout
Ray Tune writes (params.json, result.json with one report per line)."""

import json
from pathlib import Path

from tune_mnist.spec.configs import TrainOptions, trial_to_dict
from tune_mnist.store.experiment import DataInfo, new_meta, save_predictions, write_meta
from tune_mnist.store.settings import SweepSettings

COMPARE = {
    "trainable": "resnet",
    "fixed": {
        "dataset": "fashion-mnist",
        "optimizer": "adam",
        "lr": 0.001,
        "epochs": 2,
        "pin_memory": False,
        "batch_size": 16,
    },
    "grid": {"model": ["resnet18", "resnet50"]},
    "repeats": 3,
}
DATA = {"mnist": DataInfo("x", 100, 50), "fashion-mnist": DataInfo("x", 100, 50)}


def make_experiment(
    folder: Path,
    spec,
    accuracy,
    smoke=False,
    skip=(),
    device="cpu",
    preload=False,
    trained_epochs=None,
    report=None,
) -> Path:
    """An experiment whose trial i reports `accuracy(trial)` after its last epoch.

    Epochs report linearly up to it; trials whose index is in `skip` get no folder (pending).
    trained_epochs: a cap on the epochs each trial trains (as --smoke or --max-epochs set).
    report: trial -> extra keys for every report of that trial (e.g. started_at, node_id).
    """
    settings = SweepSettings(smoke=smoke, options=TrainOptions(preload=preload))
    meta = new_meta(spec, settings, DATA, {spec.trainable: {"gpu": 0.25}})
    write_meta(folder, meta)
    for i, trial in enumerate(spec.trials):
        if i in skip:
            continue
        trial_dir = folder / f"t{i:03d}"
        trial_dir.mkdir()
        params = {"trial": trial_to_dict(trial), "options": {}}
        (trial_dir / "params.json").write_text(json.dumps(params))
        final = accuracy(trial)
        epochs = getattr(trial, "epochs", 1)
        if trained_epochs is not None:
            epochs = min(epochs, trained_epochs)
        extra = report(trial) if report is not None else {}
        reports = [
            {
                "epoch": e,
                "test_accuracy": final * e / epochs,
                "epoch_seconds": 2.0,
                "train_time_ms": 2000.0 * e,
                "assigned_gpus": 0.25,
                "assigned_cpus": 0.0,
                "gflops": 0.0332,
                "params_m": 11.18,
                "device": device,
                "trial_finished": e == epochs,
                **extra,
            }
            for e in range(1, epochs + 1)
        ]
        (trial_dir / "result.json").write_text("\n".join(json.dumps(r) for r in reports))
    return folder


def trial_folder(folder: Path, index: int) -> Path:
    """The folder make_experiment gave trial `index` (its position in spec.trials)."""
    return folder / f"t{index:03d}"


def write_predictions(folder: Path, index: int, predicted, labels) -> Path:
    """Save trial `index`'s test-set predictions as a finished trial does."""
    return save_predictions(trial_folder(folder, index), predicted, labels)
