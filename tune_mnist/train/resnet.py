"""Plain training functions for a ResNet trial config (SVMs: svm.py). No Ray in here.

The ResNet loop keeps the dataset as uint8 tensors, shuffles indices each epoch, gathers
a batch on the host and normalizes it on the device: no per-sample transforms and no
DataLoader workers. pin_memory keeps its meaning: with True a host batch is copied from
pinned memory with non_blocking=True, with False from pageable memory. Loss and accuracy
are summed on the device and read once per epoch, so nothing syncs inside an epoch.
Optimizers are fused (one kernel for all parameters, on CUDA and CPU), and on the CPU the
convolutions skip the kernel taps that only ever see padding (models.PaddingSkippingConv2d):
the two changes that made a CPU step about 2x faster (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.configs import DIVERGED_FACTOR, ResNetConfig, TrainOptions
from tune_mnist.train.data import NORMALIZATION, Dataset
from tune_mnist.train.models import build_model, skip_padding_taps
from tune_mnist.train.split import Holdout

__all__ = ["EpochStats", "ResNetConfig", "ResNetResult", "TrainOptions", "train_resnet"]


@dataclass
class EpochStats:
    """Metrics of one epoch; times exclude testing."""

    epoch: int  # 1-based
    train_loss: float  # mean cross-entropy over the epoch's batches
    train_accuracy: float  # %, on the batches as they were trained
    test_accuracy: float  # %, whole test set after this epoch
    epoch_seconds: float  # wall time of this epoch's training loop
    images_per_s: float  # training images per second in this epoch
    peak_gpu_mem_mb: float = 0.0  # torch.cuda.max_memory_allocated so far; 0 on CPU
    # wall time of testing after this epoch (the whole test set, and the validation split)
    eval_seconds: float = 0.0
    validation_accuracy: float | None = None  # %, held-out training images (split.py)


@dataclass
class ResNetResult:
    """A finished ResNet trial."""

    test_accuracy: float  # %, whole test set after the last epoch
    train_time_ms: float  # training loops of all epochs, testing excluded
    epochs_trained: int
    history: list[EpochStats] = field(default_factory=list)
    diverged: bool = False  # the loss became NaN, infinite or huge (diverged()): stopped there
    options: dict[str, Any] = field(default_factory=dict)  # TrainOptions as resolved
    predicted: torch.Tensor | None = None  # the test set's predicted classes, last epoch


def diverged(loss: float, classes: int) -> bool:
    """Whether an epoch's mean training loss says the trial diverged: not finite, or more
    than DIVERGED_FACTOR times an untrained classifier's (about ln(classes): a loss that
    high is no model at all, though still finite; a sane lr ends every epoch below it)."""
    return not math.isfinite(loss) or loss > DIVERGED_FACTOR * math.log(max(classes, 2))


def pick_device(requested: str = "auto") -> torch.device:
    """cuda when asked or available, else cpu."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    """Seed torch's CPU and CUDA generators (model init, dropout-free training)."""
    torch.manual_seed(seed)


def make_optimizer(trial: ResNetConfig, params) -> torch.optim.Optimizer:
    """SGD (torch defaults, momentum only if the space sets it) or Adam."""
    # fused: one kernel updates every parameter, on CUDA and on the CPU, where Adam's step
    # took 6-7 ms against foreach's 44 ms (its sqrt pass alone: 32 ms) on 2 cores
    if trial.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=trial.lr,
            momentum=trial.momentum,
            weight_decay=trial.weight_decay,
            fused=True,
        )
    return torch.optim.Adam(params, lr=trial.lr, weight_decay=trial.weight_decay, fused=True)


class Batches:
    """Shuffled training batches, normalized on the device, as (images, labels).

    Images are uint8 N x H x W (one channel) or N x H x W x C; batches are N x C x H x W.
    `normalization` is the per-channel (mean, std) (Dataset.normalization); without it,
    `dataset` names a built-in whose constants apply. `size`: batches resized (bilinear)
    to size x size on the device, so that the data stays uint8 and small until then.
    """

    def __init__(
        self,
        images,
        labels,
        batch_size,
        device,
        *,
        pin_memory,
        preload,
        dataset=None,
        normalization=None,
        size=None,
    ):
        self.device, self.batch_size, self.pin_memory = device, batch_size, pin_memory
        self.size = size
        home = device if preload else torch.device("cpu")
        with warnings.catch_warnings():  # arrays from Ray's object store are read-only and
            warnings.simplefilter("ignore", UserWarning)  # shared; we only ever read them
            self.images = torch.as_tensor(images).to(home)
        self.labels = torch.as_tensor(labels).long().to(home)
        mean, std = normalization or tuple((v,) for v in NORMALIZATION[dataset])
        # one channel: plain floats, exactly the built-ins' arithmetic as it always was
        self.mean, self.std = (
            (mean[0], std[0])
            if len(mean) == 1
            else (
                torch.tensor(mean, device=device).view(1, -1, 1, 1),
                torch.tensor(std, device=device).view(1, -1, 1, 1),
            )
        )
        self.channels_last = False

    def __len__(self) -> int:
        return len(self.labels)

    def epoch(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.labels), generator=generator)
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size].to(self.images.device)
            if len(index) < 2:  # BatchNorm cannot train on a batch of one image
                break
            yield self.to_device(self.images[index], self.labels[index])

    def to_device(self, images: torch.Tensor, labels: torch.Tensor):
        if images.device != self.device:
            if self.pin_memory:
                images, labels = images.pin_memory(), labels.pin_memory()
            images = images.to(self.device, non_blocking=self.pin_memory)
            labels = labels.to(self.device, non_blocking=self.pin_memory)
        x = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
        x = x.float().div_(255).sub_(self.mean).div_(self.std)
        if self.size and x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, labels.to(self.device)


def predict(model: nn.Module, batches: Batches, amp: bool) -> torch.Tensor:
    """The predicted class of every image of a set (on the CPU), in large batches, one
    host sync at the end."""
    model.eval()
    predicted = []
    with torch.inference_mode(), _autocast(batches.device, amp):
        for start in range(0, len(batches), batches.batch_size):
            end = start + batches.batch_size
            x, _ = batches.to_device(batches.images[start:end], batches.labels[start:end])
            predicted.append(model(x).argmax(1))
    if not predicted:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat(predicted).cpu()


def evaluate(model: nn.Module, batches: Batches, amp: bool) -> float:
    """Test accuracy in % over a whole set."""
    return accuracy(predict(model, batches, amp), batches.labels)


def accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """% of predictions equal to the labels (0 for an empty set)."""
    return 100.0 * (predicted == labels.cpu()).sum().item() / max(len(labels), 1)


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(enabled))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


EpochCallback = Callable[[EpochStats, Callable[[], dict]], None]


def train_resnet(
    trial: ResNetConfig,
    data: Dataset,
    options: TrainOptions | None = None,
    *,
    resume: dict | None = None,
    on_epoch: EpochCallback | None = None,
    validation: Holdout | None = None,
) -> ResNetResult:
    """Train and test one ResNet as a trial config says; resumable from a state dict.

    `validation`: held-out training images (split.hold_out), scored after every epoch
    beside the test set; `data` is then the training images without them.

    `on_epoch(stats, state)` runs after every epoch; `state()` returns everything needed to
    continue (model, optimizer, RNG states, time so far) for a checkpoint. Its tensors are
    the live ones: save or copy them before on_epoch returns. `resume` is
    such a state: training continues after its epoch with the same shuffles it would have
    had, and train_time_ms counts only epochs actually trained.
    """
    device = pick_device((options or TrainOptions()).device)
    options = (options or TrainOptions()).resolved(str(device))
    with _within_gpu_share(options.memory_fraction if device.type == "cuda" else None):
        return _train_resnet(trial, data, options, device, resume, on_epoch, validation)


def _train_resnet(
    trial: ResNetConfig,
    data: Dataset,
    options: TrainOptions,
    device,
    resume,
    on_epoch,
    validation: Holdout | None = None,
) -> ResNetResult:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick kernels
        if options.memory_fraction:
            torch.cuda.set_per_process_memory_fraction(options.memory_fraction, device)
    seed_everything(trial.seed)
    model = build_model(trial.model, trial.input_shape(data.shape), data.classes).to(device)
    if options.skip_padding_taps:
        skip_padding_taps(model)
    if options.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(trial, model.parameters())
    shuffle = torch.Generator().manual_seed(trial.seed)
    epochs = trial.epochs_to_train(options.max_epochs)
    done, train_ms, history, predicted = 0, 0.0, [], None
    if resume:
        optimizer_state = resume.get("optimizer")  # None in a finished trial's last one
        if optimizer_state is None and resume["epoch"] < epochs:
            raise TuneMnistError(
                f"the checkpoint is of a trial that finished after epoch {resume['epoch']}: "
                f"it holds no optimizer state to train on to epoch {epochs}"
            )
        model.load_state_dict(resume["model"])
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
        shuffle.set_state(resume["shuffle_rng"])
        torch.set_rng_state(resume["torch_rng"])
        done, train_ms = resume["epoch"], resume["train_time_ms"]
        history = [EpochStats(**h) for h in resume["history"]]
        predicted = resume.get("predicted")
    step = model
    if options.compile:
        step = torch.compile(model, mode=None if options.compile == "default" else options.compile)
    pin = trial.pin_memory and device.type == "cuda" and not options.preload
    batches = Batches(
        data.train_images,
        data.train_labels,
        trial.batch_size,
        device,
        pin_memory=pin,
        preload=options.preload,
        normalization=data.normalization,
        size=trial.image_size,
    )

    def scored(images, labels) -> Batches:  # the test set, or the held-out validation split
        made = Batches(
            images,
            labels,
            options.eval_batch_size,
            device,
            pin_memory=False,
            preload=options.preload,
            normalization=data.normalization,
            size=trial.image_size,
        )
        made.channels_last = options.channels_last
        return made

    batches.channels_last = options.channels_last
    test_batches = scored(data.test_images, data.test_labels)
    held_out = scored(validation.images, validation.labels) if validation is not None else None

    def state() -> dict:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "shuffle_rng": shuffle.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": done,
            "train_time_ms": train_ms,
            "history": [asdict(h) for h in history],
            "predicted": predicted,  # the last epoch's, so a restart can report them
        }

    for epoch in range(done + 1, epochs + 1):
        seconds, loss, train_acc = _train_epoch(step, optimizer, batches, shuffle, device, options)
        tested = time.perf_counter()
        predicted = predict(step, test_batches, options.amp)  # ends in a host copy: synced
        test_acc = accuracy(predicted, test_batches.labels)
        valid_acc = evaluate(step, held_out, options.amp) if held_out is not None else None
        tested = time.perf_counter() - tested
        done, train_ms = epoch, train_ms + 1000 * seconds
        peak_mb = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0
        rate = len(batches) / seconds if seconds else 0.0
        stats = (loss, train_acc, test_acc, seconds, rate, peak_mb, tested, valid_acc)
        history.append(EpochStats(epoch, *stats))
        if on_epoch:
            on_epoch(history[-1], state)
        if diverged(loss, data.classes):  # no later epoch can bring it back
            break
    return ResNetResult(
        test_accuracy=history[-1].test_accuracy if history else float("nan"),
        train_time_ms=train_ms,
        epochs_trained=done,
        history=history,
        diverged=bool(history) and diverged(history[-1].train_loss, data.classes),
        options=asdict(options),
        predicted=predicted,
    )


@contextmanager
def _within_gpu_share(fraction: float | None):
    """Say plainly when a packed trial ran out of its share of GPU memory."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as error:
        if not fraction:
            raise
        raise GPUShareExceeded(
            f"out of GPU memory within this trial's share ({fraction:g} of the GPU): "
            "give ResNet trials a larger --gpus-per-trial"
        ) from error


class GPUShareExceeded(RuntimeError):
    """A trial needed more GPU memory than its fraction allows; its neighbours are unharmed."""


def _train_epoch(model, optimizer, batches: Batches, shuffle, device, options):
    """One pass over the training set: (seconds, mean loss, accuracy %)."""
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    _sync(device)
    start = time.perf_counter()
    for x, y in batches.epoch(shuffle):
        with _autocast(device, options.amp):
            logits = model(x)
            loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
    _sync(device)
    seconds = time.perf_counter() - start
    return seconds, loss_sum.item() / max(seen, 1), 100.0 * correct.item() / max(seen, 1)
