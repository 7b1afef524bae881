"""The study's own training pipeline, as the baseline the benchmarks compare against.

torchvision's MNIST / FashionMNIST datasets with ToTensor + Normalize per sample, a
shuffling DataLoader, a plain eager fp32 step with torch's default optimizer implementations
(the trial's SGD momentum and weight decay, as ours), and the running loss read every step
(`.item()`). Needs only torch and torchvision.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from tune_mnist.spec.configs import ResNetConfig
from tune_mnist.train.data import FILES, NORMALIZATION, TORCHVISION_CLASS
from tune_mnist.train.models import build_resnet


def trial(model="resnet18", batch_size=16, epochs=1, pin_memory=False) -> ResNetConfig:
    """The benchmarks' trial: Fashion-MNIST, Adam at lr 0.001, seed 0 (a q2 configuration)."""
    return ResNetConfig(
        dataset="fashion-mnist",
        model=model,
        batch_size=batch_size,
        optimizer="adam",
        lr=0.001,
        epochs=epochs,
        pin_memory=pin_memory,
    )


def torchvision_root(source: Path, name: str) -> Path:
    """A temp folder in torchvision's layout (<Class>/raw/, uncompressed) for one dataset."""
    root = Path(tempfile.mkdtemp(prefix="tv-"))
    raw = root / TORCHVISION_CLASS[name] / "raw"
    raw.mkdir(parents=True)
    for stem in FILES.values():
        gz = Path(source) / f"{stem}.gz"
        if gz.is_file():
            (raw / stem).write_bytes(gzip.decompress(gz.read_bytes()))
        else:
            shutil.copy(Path(source) / stem, raw / stem)
    return root


def loader(root: Path, name: str, train: bool, images: int, batch_size: int, **kwargs):
    """A DataLoader over the first `images` of a split, with per-sample transforms."""
    mean, std = NORMALIZATION[name]
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    dataset = getattr(datasets, TORCHVISION_CLASS[name])(
        str(root), train=train, transform=transform
    )
    return DataLoader(Subset(dataset, range(images)), batch_size=batch_size, **kwargs)


def train(trial: ResNetConfig, train_loader, device: torch.device):
    """Train one trial's model for one epoch the plain way: (model, seconds)."""
    torch.manual_seed(trial.seed)  # the same initial weights as tune-mnist's for a seed
    model = build_resnet(trial.model).to(device).train()
    if trial.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=trial.lr,
            momentum=trial.momentum,
            weight_decay=trial.weight_decay,
        )
    else:
        optimizer = torch.optim.Adam(
            model.parameters(), lr=trial.lr, weight_decay=trial.weight_decay
        )
    start = time.perf_counter()
    for x, y in train_loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        _ = loss.item()  # the usual running-loss bookkeeping: one host sync per step
    if device.type == "cuda":
        torch.cuda.synchronize()
    return model, time.perf_counter() - start


def test_accuracy(model, test_loader, device: torch.device) -> float:
    """Accuracy in % on a test loader, eval mode, no gradients."""
    model.eval()
    correct = seen = 0
    with torch.no_grad():
        for x, y in test_loader:
            correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
            seen += len(y)
    return 100.0 * correct / seen
