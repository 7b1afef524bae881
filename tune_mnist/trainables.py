"""The Ray Tune trainable: a thin wrapper over train.py that reports, checkpoints, resumes.

Each trial's config is `{"trial": <configs.trial_to_dict>, "options": <TrainOptions as a
dict>, "svm_backend": <name>}` (plain values, as Tune writes them to params.json); here
they become the typed configs again. The datasets and model costs arrive through
`tune.with_parameters` (Ray's object store), so trials on every node share the copy the
driver loaded.
"""

from __future__ import annotations

import math
import os
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from .configs import ResNetConfig, SVMConfig, TrainOptions, trial_from_dict
from .data import Dataset
from .experiment import save_predictions, trial_folder_name
from .models import ModelCost
from .split import Holdout, hold_out
from .svm import fit_predict
from .train import EpochStats, train_resnet

STATE_FILE = "state.pt"


def run_trial(
    config: dict,
    datasets: dict[str, Dataset],
    costs: dict[tuple[str, str], ModelCost],
    experiment: str | None = None,
) -> None:
    """Run one trial of either kind and report its metrics to Tune.

    `experiment` is the experiment folder: a restarted ResNet trial looks there for
    checkpoints newer than the one Tune hands it (see newest_state).
    """
    trial = trial_from_dict(config["trial"])
    data, holdout = datasets[trial.dataset], None
    base = {"trial_finished": False, **placement(), **_clock("started_at", "load_1m_at_start")}
    if config.get("validation") is not None:  # held out by the trial's seed, never trained on
        data, holdout = hold_out(data, config["validation"], trial.seed)
        base["validation_images"] = len(holdout)
    folder = None
    if experiment:  # on storage every node shares (cluster.check_shared_storage)
        trial_id = tune.get_context().get_trial_id()
        folder = Path(experiment) / trial_folder_name(trial_id, trial)
    if isinstance(trial, SVMConfig):
        # the memory Ray reserved for this trial is its budget (auto chooses against it)
        asked = tune.get_context().get_trial_resources().required_resources.get("memory")
        fitted = fit_predict(trial, data, config["svm_backend"], asked or None, holdout)
        result, predicted = fitted
        if folder:
            save_predictions(folder, predicted, data.test_labels)
        finished = {"trial_finished": True, **_clock("finished_at", "load_1m_at_finish")}
        tune.report({**base, **_known(asdict(result)), **finished})
        return
    options = TrainOptions.from_dict(config["options"])
    if 0 < base["assigned_gpus"] < 1:  # a packed trial: keep to its share of GPU memory
        options = replace(options, memory_fraction=base["assigned_gpus"])
    cost = costs[(trial.model, trial.dataset)]
    run_resnet(trial, data, options, cost, base, folder, holdout)


def _known(metrics: dict) -> dict:
    """Metrics without the ones this trial has no value for (no validation split)."""
    return {k: v for k, v in metrics.items() if v is not None}


def run_resnet(
    trial: ResNetConfig,
    data: Dataset,
    options: TrainOptions,
    cost: ModelCost,
    base: dict,
    folder: Path | None = None,
    validation: Holdout | None = None,
) -> None:
    """Train with a checkpoint every epoch; continue from the latest one after a failure."""
    restored = newest_state(tune.get_checkpoint(), folder)
    resume = restored.state
    epochs = trial.epochs_to_train(options.max_epochs)
    resumed_from = resume["epoch"] if resume else 0

    def metrics_for(stats: EpochStats, train_time_ms: float) -> dict:
        metrics = {**base, **_known(asdict(stats)), "train_time_ms": train_time_ms}
        metrics["resumed_from_epoch"] = resumed_from
        metrics["unreadable_checkpoints"] = restored.unreadable
        metrics["diverged"] = not math.isfinite(stats.train_loss)  # train.py stops there
        if stats.epoch == epochs and not metrics["diverged"]:
            metrics |= {"trial_finished": True, **_clock("finished_at", "load_1m_at_finish")}
            metrics |= asdict(cost)
        return metrics

    def keep_predictions(metrics: dict, predicted) -> None:
        if metrics["trial_finished"] and folder and predicted is not None:
            save_predictions(folder, predicted.numpy(), data.test_labels)

    def on_epoch(stats: EpochStats, state) -> None:
        with tempfile.TemporaryDirectory() as staging:
            saved = state()
            torch.save(saved, Path(staging) / STATE_FILE)
            metrics = metrics_for(stats, saved["train_time_ms"])
            keep_predictions(metrics, saved["predicted"])  # before Tune hears it finished
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(staging))

    if resume and resumed_from >= epochs:
        # Restarted after its last checkpoint (a driver killed before Tune recorded the
        # trial as done): nothing to train, so report the saved final epoch again.
        last = EpochStats(**resume["history"][-1])
        metrics = metrics_for(last, resume["train_time_ms"])
        keep_predictions(metrics, resume.get("predicted"))
        tune.report(metrics)
        return
    train_resnet(trial, data, options, resume=resume, on_epoch=on_epoch, validation=validation)


def newest_state(checkpoint: tune.Checkpoint | None, folder: Path | None) -> Restored:
    """The newest readable training state of a trial, from Tune's checkpoint or the folder.

    Tune records a trial's checkpoints in its experiment state at most once a second; a
    driver killed in between leaves the newest checkpoint on disk but not in that state,
    and resume would hand the trial the one before, retraining an epoch it had finished.
    So the trial folder's own checkpoints are looked at too, newest first, and one that
    cannot be read (cut short by a crash) is passed over for the next older one.
    """
    states, skipped, loaded = [], 0, {}
    if checkpoint is not None:
        with checkpoint.as_directory() as found:
            state = loaded[Path(found)] = _readable(Path(found))
            skipped += state is None
            states.append(state)
    if folder is not None and folder.is_dir():
        for candidate in sorted(folder.glob("checkpoint_*"), reverse=True):
            # on shared storage Tune's checkpoint is one of these: read it once
            state = loaded.get(candidate) or _readable(candidate)
            if state is not None:
                states.append(state)
                break
            skipped += 1
    readable = [s for s in states if s is not None]
    return Restored(max(readable, key=lambda s: s["epoch"], default=None), skipped)


@dataclass(frozen=True)
class Restored:
    """What a restarted trial continues from."""

    state: dict | None  # None: start over
    unreadable: int  # checkpoints passed over because they could not be read


def load_state(folder: Path) -> dict:
    """The training state saved in one checkpoint folder (tensors and plain types only)."""
    return torch.load(folder / STATE_FILE, weights_only=True, map_location="cpu")


def _readable(folder: Path) -> dict | None:
    try:
        return load_state(folder)
    except Exception:  # a truncated zip, a missing file, a pickle: all mean "not this one"
        return None


def _clock(time_key: str, load_key: str) -> dict[str, float]:
    """The time now, and the node's 1-minute load average: what else was running."""
    return {time_key: time.time(), load_key: os.getloadavg()[0]}


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
