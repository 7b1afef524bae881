"""The Ray Tune trainable: a thin wrapper over train.py that reports, checkpoints, resumes.

Each trial's config is `{"trial": <configs.trial_to_dict>, "options": <TrainOptions as a
dict>, "svm_backend": <name>}` (plain values, as Tune writes them to params.json); here
they become the typed configs again. The datasets and model costs arrive through
`tune.with_parameters` (Ray's object store), so trials on every node share the copy the
driver loaded.

torch loads only for ResNet trials: an SVM trial's worker never imports it (nor
torchvision), which saves seconds of every SVM worker's start.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray import tune

from tune_mnist.spec.configs import (
    CustomConfig,
    ResNetConfig,
    SVMConfig,
    TrainOptions,
    trial_from_dict,
)
from tune_mnist.store import storage
from tune_mnist.store.experiment import save_predictions, trial_folder_name
from tune_mnist.train.data import Dataset
from tune_mnist.train.split import Holdout, hold_out
from tune_mnist.train.svm import fit_predict

if TYPE_CHECKING:
    from tune_mnist.train.models import ModelCost

STATE_FILE = "state.pt"


def run_trial(
    config: dict,
    datasets: dict[str, Dataset],
    costs: dict[tuple[str, str, int | None], ModelCost],
    experiment: str | None = None,
    grams: dict | None = None,
) -> None:
    """Run one trial of either kind and report its metrics to Tune.

    `experiment` is the experiment folder: a restarted ResNet trial looks there for
    checkpoints newer than the one Tune hands it (see newest_state). `grams`: (dataset,
    train_samples) -> ObjectRef of the Gram matrix the sweep shares (gram.py).
    """
    clock = TrialClock()
    trial = trial_from_dict(config["trial"])
    data, holdout = datasets[trial.dataset], None
    resnet = not isinstance(trial, SVMConfig)
    base = {
        "trial_finished": False,
        **placement(torch_too=resnet),
        **_clock("started_at", "load_1m_at_start"),
    }
    if config.get("validation") is not None:  # held out by the trial's seed, never trained on
        data, holdout = hold_out(data, config["validation"], trial.seed)
        base["validation_images"] = len(holdout)
    folder = None
    if experiment:  # on storage every node shares (cluster.check_shared_storage)
        trial_id = tune.get_context().get_trial_id()
        folder = _trial_folder(experiment, trial_folder_name(trial_id, trial))
    if isinstance(trial, CustomConfig):
        from tune_mnist.run.custom import run_custom  # torch with it, as for ResNets

        finish = partial(_clock, "finished_at", "load_1m_at_finish")
        run_custom(trial, data, config["metric"], base, finish)
        return
    if isinstance(trial, SVMConfig):
        # the memory Ray reserved for this trial is its budget (auto chooses against it)
        asked = tune.get_context().get_trial_resources().required_resources.get("memory")
        ref = (grams or {}).get((trial.dataset, trial.train_samples))
        gram = ray.get(ref) if ref is not None and holdout is None else None  # mapped, not copied
        fetched = time.perf_counter()
        svm_backend = config["svm_backend"]
        result, predicted = fit_predict(trial, data, svm_backend, asked or None, gram, holdout)
        clock.setup = fetched - clock.start + result.setup_time_ms / 1000
        clock.train, clock.eval = result.train_time_ms / 1000, result.predict_time_ms / 1000
        saving = time.perf_counter()
        if folder:
            save_predictions(folder, predicted, data.test_labels)
        clock.checkpoint = time.perf_counter() - saving
        finished = {"trial_finished": True, **_clock("finished_at", "load_1m_at_finish")}
        tune.report({**base, **_known(asdict(result)), **finished, **clock.keys()})
        return
    options = TrainOptions.from_dict(config["options"])
    if 0 < base["assigned_gpus"] < 1:  # a packed trial: keep to its share of GPU memory
        options = replace(options, memory_fraction=base["assigned_gpus"])
    cost = costs[trial.cost_key]
    run_resnet(trial, data, options, cost, base, folder, clock, holdout)


def _trial_folder(experiment: str, name: str) -> Path | str:
    """A trial's folder: a path, or a URI when the experiment is in object storage."""
    return storage.join(experiment, name) if storage.is_uri(experiment) else Path(experiment) / name


def _known(metrics: dict) -> dict:
    """Metrics without the ones this trial has no value for (no validation split)."""
    return {k: v for k, v in metrics.items() if v is not None}


def run_resnet(
    trial: ResNetConfig,
    data: Dataset,
    options: TrainOptions,
    cost: ModelCost,
    base: dict,
    folder: Path | str | None = None,
    clock: TrialClock | None = None,
    validation: Holdout | None = None,
) -> None:
    """Train with a checkpoint every epoch; continue from the latest one after a failure."""
    clock = clock or TrialClock()
    import torch

    from tune_mnist.train.resnet import EpochStats, diverged, train_resnet

    restored = newest_state(tune.get_checkpoint(), folder)
    resume = restored.state
    epochs = trial.epochs_to_train(options.max_epochs)
    resumed_from = resume["epoch"] if resume else 0

    def metrics_for(stats: EpochStats, train_time_ms: float) -> dict:
        metrics = {**base, **_known(asdict(stats)), "train_time_ms": train_time_ms}
        metrics["resumed_from_epoch"] = resumed_from
        metrics["unreadable_checkpoints"] = restored.unreadable
        metrics["diverged"] = diverged(stats.train_loss, data.classes)  # training stops there
        if stats.epoch == epochs and not metrics["diverged"]:
            metrics |= {"trial_finished": True, **_clock("finished_at", "load_1m_at_finish")}
            metrics |= asdict(cost)
        return metrics

    def keep_predictions(metrics: dict, predicted) -> None:
        if metrics["trial_finished"] and folder and predicted is not None:
            save_predictions(folder, predicted.numpy(), data.test_labels)

    def on_epoch(stats: EpochStats, state) -> None:
        arrived = time.perf_counter()
        clock.epoch_done(arrived, stats.epoch_seconds, stats.eval_seconds)
        with tempfile.TemporaryDirectory() as staging:
            saved = state()
            metrics = metrics_for(stats, saved["train_time_ms"])
            if metrics["trial_finished"]:
                # Nothing trains on from a finished trial: its checkpoint keeps the model,
                # predictions and history, not the optimizer's state (Adam's is twice the
                # model), a third of the bytes to write and copy
                saved["optimizer"] = None
            torch.save(saved, Path(staging) / STATE_FILE)
            keep_predictions(metrics, saved["predicted"])  # before Tune hears it finished
            clock.checkpoint += time.perf_counter() - arrived
            metrics |= clock.keys()
            sending = time.perf_counter()
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(staging))
        clock.checkpoint += time.perf_counter() - sending  # in the next epoch's report

    if resume and resumed_from >= epochs:
        # Restarted after its last checkpoint (a driver killed before Tune recorded the
        # trial as done): nothing to train, so report the saved final epoch again.
        last = EpochStats(**resume["history"][-1])
        metrics = metrics_for(last, resume["train_time_ms"]) | clock.keys()
        keep_predictions(metrics, resume.get("predicted"))
        tune.report(metrics)
        return
    train_resnet(trial, data, options, resume=resume, on_epoch=on_epoch, validation=validation)


def newest_state(checkpoint: tune.Checkpoint | None, folder: Path | str | None) -> Restored:
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
    for candidate in _checkpoint_folders(folder):
        # on shared storage Tune's checkpoint is one of these: read it once
        state = loaded.get(candidate) or _readable_at(candidate)
        if state is not None:
            states.append(state)
            break
        skipped += 1
    readable = [s for s in states if s is not None]
    return Restored(max(readable, key=lambda s: s["epoch"], default=None), skipped)


def _checkpoint_folders(folder: Path | str | None) -> list[Path | str]:
    """A trial folder's checkpoints, newest first: paths, or URIs in object storage."""
    if isinstance(folder, str):
        return [storage.join(folder, n) for n in storage.folders(folder, "checkpoint_")[::-1]]
    if folder is not None and folder.is_dir():
        return sorted(folder.glob("checkpoint_*"), reverse=True)
    return []


def _readable_at(candidate: Path | str) -> dict | None:
    if isinstance(candidate, Path):
        return _readable(candidate)
    try:  # a URI: Tune downloads it to a temporary folder
        fs, path = storage.filesystem(candidate)
        with tune.Checkpoint(path, filesystem=fs).as_directory() as found:
            return _readable(Path(found))
    except Exception:  # unreachable or damaged: not this one
        return None


@dataclass
class TrialClock:
    """This run of one trial, split (seconds; timing.py reads the `split_*` keys): set-up
    (features or model built, data and Gram fetched, a checkpoint restored), training,
    evaluation on the test set, checkpoints and predictions written and reports sent (the
    last report's own sending is not in it: it happens after its keys are made)."""

    start: float = field(default_factory=time.perf_counter)
    setup: float = 0.0
    train: float = 0.0
    eval: float = 0.0
    checkpoint: float = 0.0
    epochs: int = 0  # epochs trained in this run

    def epoch_done(self, now: float, train_s: float, eval_s: float) -> None:
        """An epoch's training and testing ended at `now`; before the first, set-up."""
        if self.epochs == 0:
            self.setup = now - self.start - train_s - eval_s
        self.epochs += 1
        self.train += train_s
        self.eval += eval_s

    def keys(self) -> dict[str, float]:
        return {
            "split_wall_s": time.perf_counter() - self.start,
            "split_setup_s": self.setup,
            "split_train_s": self.train,
            "split_eval_s": self.eval,
            "split_checkpoint_s": self.checkpoint,
        }


@dataclass(frozen=True)
class Restored:
    """What a restarted trial continues from."""

    state: dict | None  # None: start over
    unreadable: int  # checkpoints passed over because they could not be read


def load_state(folder: Path) -> dict:
    """The training state saved in one checkpoint folder (tensors and plain types only)."""
    import torch

    return torch.load(folder / STATE_FILE, weights_only=True, map_location="cpu")


def _readable(folder: Path) -> dict | None:
    try:
        return load_state(folder)
    except Exception:  # a truncated zip, a missing file, a pickle: all mean "not this one"
        return None


def _clock(time_key: str, load_key: str) -> dict[str, float]:
    """The time now, and the node's 1-minute load average: what else was running."""
    return {time_key: time.time(), load_key: os.getloadavg()[0]}


def placement(torch_too: bool = True) -> dict[str, Any]:
    """Where this trial runs and with what: node, host, process, Ray's assigned resources;
    with `torch_too`, torch's device and threads (an SVM trial: the CPU, torch not loaded)."""
    context = ray.get_runtime_context()
    assigned = context.get_assigned_resources()
    where = {
        "node_id": context.get_node_id(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "assigned_gpus": assigned.get("GPU", 0.0),
        "assigned_cpus": assigned.get("CPU", 0.0),
        "gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()),
        "device": "cpu",
    }
    if torch_too:
        import torch

        where["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        where["torch_threads"] = torch.get_num_threads()
    return where
