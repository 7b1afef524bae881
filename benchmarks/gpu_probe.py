"""Fashion-MNIST at larger inputs on a GPU (issue 31): do q2's two Fashion-MNIST ResNet-18
rows reach the study's 92.07% (Adam 0.001) and 92.27% (Adam 0.0001) when trained from
scratch on images resized to 96x96 or 224x224, as many course pipelines do?

Each (row, size) trains 5 epochs at batch 16, seed 0, with tune_mnist.train.resnet exactly
as a sweep's trial (the trial's `image_size`: bilinear resize on the device), in its own
process, --slots at a time on the one GPU, each with its share of GPU memory. Prints a
line per epoch (test and train accuracy, ms per iteration) and, last, one JSON object.
Needs only torch and torchvision (no Ray, fvcore, pydantic or pandas), as gpu.py.
Sized for a few minutes on one H100: four trials side by side. A dry run anywhere (CPU,
tiny): --device cpu --images 64 --epochs 1 --sizes 16 --slots 1.

    python benchmarks/gpu_probe.py --data-dir DATA 2>&1 | tee gpu-probe.log

DATA is a folder with mnist/ and fashion-mnist/ IDX files (default: $TUNE_MNIST_DATA).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # benchmarks/common.py, beside this script
from gpu import dataset, say  # benchmarks/gpu.py: a dataset read once per process

from tune_mnist.spec.configs import ResNetConfig
from tune_mnist.train.resnet import TrainOptions, train_resnet

STUDY = {0.001: 92.07, 0.0001: 92.27}  # the study's q2 Fashion-MNIST ResNet-18 rows


def probe(trial: ResNetConfig, data_dir, images, options: dict, threads: int) -> dict:
    """Train one (row, size) in this process; print and return each epoch's figures."""
    torch.set_num_threads(threads)
    data = dataset(trial.dataset, data_dir, images)
    steps = math.ceil(len(data.train_labels) / trial.batch_size)
    epochs = []

    def on_epoch(stats, state) -> None:
        ms = 1000 * stats.epoch_seconds / steps
        epochs.append(
            {
                "epoch": stats.epoch,
                "test_accuracy": stats.test_accuracy,
                "train_accuracy": stats.train_accuracy,
                "epoch_s": stats.epoch_seconds,
                "ms_per_iteration": ms,
            }
        )
        say(
            f"{trial.image_size}px lr {trial.lr:g} epoch {stats.epoch}: test "
            f"{stats.test_accuracy:.2f}%  train {stats.train_accuracy:.2f}%  "
            f"{ms:.1f} ms/iteration"
        )

    result = train_resnet(trial, data, TrainOptions(**options), on_epoch=on_epoch)
    return {
        "image_size": trial.image_size,
        "lr": trial.lr,
        "test_accuracy": result.test_accuracy,
        "study": STUDY.get(trial.lr),
        "epochs": epochs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_data_dir(parser)
    parser.add_argument("--sizes", nargs="+", type=int, default=[96, 224])
    parser.add_argument("--lrs", nargs="+", type=float, default=[0.001, 0.0001])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--images", type=int, default=None, help="training images (all)")
    parser.add_argument("--slots", type=int, default=4, help="trials at a time on the GPU")
    parser.add_argument("--device", default=None, help="cuda (default when there is one), cpu")
    args = common.parse_args(parser)

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    options = {"device": device}
    if device == "cuda":
        options["memory_fraction"] = 1 / args.slots
    trials = [
        ResNetConfig("fashion-mnist", "resnet18", 16, "adam", lr, args.epochs, image_size=size)
        for size in args.sizes
        for lr in args.lrs
    ]
    threads = max(1, (os.cpu_count() or 1) // args.slots)
    jobs = [(t, args.data_dir, args.images, options, threads) for t in trials]
    say(f"{len(trials)} trials on {device}, {args.slots} at a time")
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(args.slots) as pool:
        results = pool.starmap(probe, jobs)
    wall = time.perf_counter() - start
    for r in results:
        gap = "" if r["study"] is None else f" (study {r['study']:.2f}%)"
        say(f"{r['image_size']}px lr {r['lr']:g}: {r['test_accuracy']:.2f}%{gap}")
    say(f"wall {wall:.0f} s")
    print(json.dumps({**common.stamp(), "wall_s": wall, "device": device, "trials": results}))


if __name__ == "__main__":
    main()
