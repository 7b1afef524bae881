"""One-shot GPU check without Ray: a ResNet-18 epoch, naive against ours; packed trials; q2.

Sections (all by default, or pick with --sections):
  epoch    one Fashion-MNIST training epoch of ResNet-18 at batch 16: the study's naive
           pipeline (benchmarks/naive.py, 4 DataLoader workers, pinned), ours, ours with
           the dataset preloaded on the GPU. Target: ours <= 6 s (the study: 81.6 s).
  packing  2, 4 and 8 processes on the one GPU, each training that same epoch with its
           share of GPU memory (as packed Ray trials do): wall time, images/s for the GPU,
           peak memory per process (for choosing default GPU fractions per model).
  q2       the ten q2 trials as processes, --slots at a time (the space asks 0.25 GPU:
           4). Target: all ten <= 5 minutes.
Prints a line per measurement and, last, one JSON object. Needs only torch and torchvision
(q2 also PyYAML, to read search_spaces/q2.yaml): no pydantic, pandas, Ray or fvcore.
A dry run anywhere (CPU, tiny): --images 256 --max-epochs 1 --packs 2.

    python benchmarks/gpu.py --data-dir DATA 2>&1 | tee gpu.log

DATA is a folder with mnist/ and fashion-mnist/ IDX files (default: $TUNE_MNIST_DATA).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from functools import cache
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # benchmarks/common.py, beside this script
import naive  # benchmarks/naive.py, beside this script

from tune_mnist.spec.configs import ResNetConfig
from tune_mnist.train.data import Dataset, load_dataset
from tune_mnist.train.resnet import TrainOptions, train_resnet

EPOCH_TRIAL = naive.trial("resnet18", batch_size=16, pin_memory=True)


@cache
def dataset(name: str, data_dir: str | None, images: int | None) -> Dataset:
    """A dataset read once per process, cut to `images` training images (all if None)."""
    data = load_dataset(name, data_dir)
    return data.head(images or len(data.train_labels), len(data.test_labels))


def ours(trial: ResNetConfig, data_dir, images, options, threads=None) -> dict:
    """Train one trial with tune_mnist.train.resnet in this process: its last epoch's figures."""
    if threads:  # packed processes share the host's cores, as Ray's OMP_NUM_THREADS does
        torch.set_num_threads(threads)
    result = train_resnet(trial, dataset(trial.dataset, data_dir, images), TrainOptions(**options))
    last = result.history[-1]
    return {
        "epoch_s": last.epoch_seconds,
        "train_s": result.train_time_ms / 1000,
        "img_s": last.images_per_s,
        "test_accuracy": result.test_accuracy,
        "peak_mb": last.peak_gpu_mem_mb,
        "epochs": result.epochs_trained,
    }


def in_processes(jobs: list[tuple], slots: int) -> tuple[list[dict], float]:
    """Run `ours(*job)` for every job in `slots` spawned processes: (results, wall seconds)."""
    threads = max(1, (os.cpu_count() or 1) // slots)
    jobs = [(*job, threads) for job in jobs]
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(slots) as pool:
        results = pool.starmap(ours, jobs)
    return results, time.perf_counter() - start


def epoch_section(args, device, report) -> None:
    data = dataset("fashion-mnist", args.data_dir, args.images)
    images = len(data.train_labels)
    root = naive.torchvision_root(Path(data.source), "fashion-mnist")
    try:
        pin = device.type == "cuda"
        loader = naive.loader(
            root, "fashion-mnist", True, images, 16, shuffle=True, num_workers=4, pin_memory=pin
        )
        _, seconds = naive.train(EPOCH_TRIAL, loader, device)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report["epoch"] = {"naive_s": seconds, "images": images}
    say(f"naive     ResNet-18 bs16 epoch: {seconds:7.1f} s  ({images / seconds:7.0f} img/s)")
    for label, options in (("ours", {}), ("preload", {"preload": True})):
        figures = ours(EPOCH_TRIAL, args.data_dir, args.images, options)
        report["epoch"][label] = figures
        say(
            f"{label:9s} ResNet-18 bs16 epoch: {figures['epoch_s']:7.1f} s  "
            f"({figures['img_s']:7.0f} img/s, peak {figures['peak_mb']:.0f} MB, "
            f"x{seconds / figures['epoch_s']:.1f} naive)"
        )


def packing_section(args, device, report) -> None:
    report["packing"] = {}
    for n in args.packs:
        options = {"memory_fraction": 1 / n} if device.type == "cuda" else {}
        jobs = [(EPOCH_TRIAL, args.data_dir, args.images, options)] * n
        results, wall = in_processes(jobs, n)
        # the epochs run side by side (each process loads data first, then trains), so the
        # device's rate is all their images over the slowest epoch
        images = sum(r["img_s"] * r["epoch_s"] for r in results)
        rate = images / max(r["epoch_s"] for r in results)
        report["packing"][n] = {"wall_s": wall, "img_s": rate, "trials": results}
        say(
            f"packed x{n}: {n} epochs, {wall:6.1f} s wall with start-up and testing, "
            f"~{rate:7.0f} img/s for the device, epochs {min(r['epoch_s'] for r in results):.1f}-"
            f"{max(r['epoch_s'] for r in results):.1f} s, peak "
            f"{max(r['peak_mb'] for r in results):.0f} MB"
        )


def q2_trials() -> list[ResNetConfig]:
    """q2's ten trials (fixed + each row), built without spaces.py: GPU images lack pydantic."""
    import yaml  # only here: the other sections run without PyYAML

    path = Path(__file__).resolve().parents[1] / "search_spaces" / "q2.yaml"
    space = yaml.safe_load(path.read_text())
    return [ResNetConfig(**space["fixed"], **row) for row in space["rows"]]


def q2_section(args, device, report) -> None:
    trials = q2_trials()
    options = {"max_epochs": args.max_epochs}
    if device.type == "cuda":
        options["memory_fraction"] = 1 / args.slots
    jobs = [(trial, args.data_dir, args.images, options) for trial in trials]
    results, wall = in_processes(jobs, args.slots)
    report["q2"] = {"wall_s": wall, "slots": args.slots, "trials": results}
    epochs = sum(r["epochs"] for r in results)
    say(f"q2: {len(trials)} trials ({epochs} epochs), {args.slots} at a time: {wall:.0f} s wall")
    for trial, r in zip(trials, results, strict=True):
        say(
            f"  {trial.model} bs{trial.batch_size} {trial.optimizer} lr {trial.lr}"
            f" x{r['epochs']}: {r['train_s']:.0f} s, {r['test_accuracy']:.2f}%"
        )


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_data_dir(parser)
    parser.add_argument("--images", type=int, default=None, help="training images (all)")
    parser.add_argument("--sections", nargs="+", default=["epoch", "packing", "q2"])
    parser.add_argument("--packs", nargs="+", type=int, default=[2, 4, 8])
    parser.add_argument("--slots", type=int, default=4, help="q2 trials at a time")
    parser.add_argument("--max-epochs", type=int, default=None, help="cap q2 epochs")
    args = common.parse_args(parser)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    report = {"device": name, "torch": torch.__version__, "images": args.images}
    say(f"{name}, torch {torch.__version__}")
    sections = {"epoch": epoch_section, "packing": packing_section, "q2": q2_section}
    for section in args.sections:
        sections[section](args, device, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
