"""The Ray Tune trainable: a thin wrapper over train.py that reports, checkpoints, resumes.

Each trial's config is `{"trial": <one expanded trial>, "options": <TrainOptions>}`; the
datasets and model costs arrive through `tune.with_parameters` (Ray's object store), so
trials on every node share the copy the driver loaded.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from .data import Dataset
from .models import ModelCost
from .svm import fit_svm
from .train import EpochStats, TrainOptions, train_resnet

STATE_FILE = "state.pt"


def run_trial(config: dict, datasets: dict[str, Dataset], costs: dict[str, ModelCost]) -> None:
    """Run one trial of either kind and report its metrics to Tune."""
    trial = config["trial"]
    data = datasets[trial["dataset"]]
    base = {"trial_finished": False, **placement(), "started_at": time.time()}
    if trial["trainable"] == "svm":
        result = fit_svm(trial, data, config["options"].get("svm_backend", "precomputed"))
        tune.report({**base, **asdict(result), "trial_finished": True, "finished_at": time.time()})
        return
    options = {k: v for k, v in config["options"].items() if k != "svm_backend"}
    if 0 < base["assigned_gpus"] < 1:  # a packed trial: keep to its share of GPU memory
        options["memory_fraction"] = base["assigned_gpus"]
    run_resnet(trial, data, TrainOptions(**options), costs[trial["model"]], base)


def run_resnet(trial: dict, data: Dataset, options: TrainOptions, cost: ModelCost, base: dict):
    """Train with a checkpoint every epoch; continue from the latest one after a failure."""
    resume = load_state(tune.get_checkpoint())
    epochs = min(trial["epochs"], options.max_epochs or trial["epochs"])
    resumed_from = resume["epoch"] if resume else 0

    def metrics_for(stats: EpochStats, train_time_ms: float) -> dict:
        metrics = {**base, **asdict(stats), "train_time_ms": train_time_ms}
        metrics["resumed_from_epoch"] = resumed_from
        if stats.epoch == epochs:
            metrics |= {"trial_finished": True, "finished_at": time.time(), **asdict(cost)}
        return metrics

    def on_epoch(stats: EpochStats, state) -> None:
        with tempfile.TemporaryDirectory() as folder:
            saved = state()
            torch.save(saved, Path(folder) / STATE_FILE)
            metrics = metrics_for(stats, saved["train_time_ms"])
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    if resume and resumed_from >= epochs:
        # Restarted after its last checkpoint (a driver killed before Tune recorded the
        # trial as done): nothing to train, so report the saved final epoch again.
        last = EpochStats(**resume["history"][-1])
        tune.report(metrics_for(last, resume["train_time_ms"]))
        return
    train_resnet(trial, data, options, resume=resume, on_epoch=on_epoch)


def load_state(checkpoint: tune.Checkpoint | None) -> dict | None:
    """The training state saved in a trial's checkpoint, or None for a fresh start."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return torch.load(Path(folder) / STATE_FILE, weights_only=False, map_location="cpu")


def placement() -> dict[str, Any]:
    """Where this trial runs and with what: node, host, process, Ray's assigned resources."""
    context = ray.get_runtime_context()
    assigned = context.get_assigned_resources()
    return {
        "node_id": context.get_node_id(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "assigned_gpus": assigned.get("GPU", 0.0),
        "assigned_cpus": assigned.get("CPU", 0.0),
        "gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(),
    }
