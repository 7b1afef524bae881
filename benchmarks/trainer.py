"""Training throughput: the study's naive pipeline against tune-mnist's, in one run.

naive: benchmarks/naive.py: torchvision FashionMNIST with ToTensor + Normalize, a
       shuffling DataLoader with worker processes, a plain eager step with torch's
       default Adam that reads the loss every step (.item()).
ours:  tune_mnist.train.resnet: uint8 tensors, index shuffling, normalization on the device, no
       host sync inside the epoch, fused Adam, and on the CPU convolutions that skip the
       kernel taps which only see padding (train_resnet, exactly as trials run it).
       `--option skip_padding_taps=false` (any TrainOptions field) measures without one.

Cases alternate (naive, ours, naive, ours, ...) so that drift in the machine's speed hits
both; each reports the median images/s of its repetitions. Run by hand, not in CI:

    python benchmarks/trainer.py --data-dir DATA --images 2048 --repeats 3
    python benchmarks/trainer.py --data-dir DATA --json    # one JSON object on stdout

DATA is a folder with mnist/ and fashion-mnist/ IDX files (default: $TUNE_MNIST_DATA).

Needs only torch and torchvision (no Ray), so it runs on a bare GPU machine too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # benchmarks/common.py, beside this script
import naive  # benchmarks/naive.py, beside this script

from tune_mnist.spec.configs import ResNetConfig
from tune_mnist.train.data import load_dataset
from tune_mnist.train.resnet import TrainOptions, train_resnet


def naive_images_per_s(root, trial: ResNetConfig, images, device, workers) -> float:
    """One pass over `images` training images the way the study's code trains."""
    train_loader = naive.loader(
        root,
        trial.dataset,
        True,
        images,
        trial.batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=trial.pin_memory,
    )
    _, seconds = naive.train(trial, train_loader, device)
    return images / seconds


def ours_images_per_s(data, trial: ResNetConfig, device, options) -> float:
    """tune_mnist.train.resnet.train_resnet over the same images: its last epoch's rate."""
    result = train_resnet(trial, data, TrainOptions(device=str(device), **options))
    return result.history[-1].images_per_s


def parse_option(text: str) -> tuple[str, object]:
    """'skip_padding_taps=false' -> ('skip_padding_taps', False); numbers stay numbers."""
    key, _, value = text.partition("=")
    words = {"true": True, "false": False, "none": None}
    if value.lower() in words:
        return key, words[value.lower()]
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_data_dir(parser)
    parser.add_argument("--images", type=int, default=2048, help="training images per pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 32])
    parser.add_argument("--workers", type=int, default=2, help="naive DataLoader workers")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (both)")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a TrainOptions field for ours, e.g. skip_padding_taps=false (repeatable)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=1,
        help="epochs of ours per run; the last one's rate counts (leaves out compile time)",
    )
    parser.add_argument("--json", action="store_true")
    common.add_honesty(parser)
    args = common.parse_args(parser)
    options = dict(parse_option(text) for text in args.option)
    load_at_start = os.getloadavg()[0]

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pin = device.type == "cuda"
    data = load_dataset("fashion-mnist", args.data_dir)
    data = data.head(args.images, 1000)  # testing is not timed; keep it short
    root = naive.torchvision_root(Path(data.source), "fashion-mnist")
    cases = {}
    with common.LoadWatch() as watch:
        try:
            for model in args.models:
                for batch in args.batch_sizes:
                    trial = naive.trial(model, batch, args.epochs, pin_memory=pin)
                    naive_runs, ours_runs = [], []
                    for _ in range(args.repeats):
                        naive_runs.append(
                            naive_images_per_s(root, trial, args.images, device, args.workers)
                        )
                        ours_runs.append(ours_images_per_s(data, trial, device, options))
                    n, o = statistics.median(naive_runs), statistics.median(ours_runs)
                    cases[f"{model}/bs{batch}"] = {
                        "naive_img_s": round(n, 1),
                        "ours_img_s": round(o, 1),
                        "ratio": round(o / n, 2),
                        "naive_runs": [round(v, 1) for v in naive_runs],
                        "ours_runs": [round(v, 1) for v in ours_runs],
                    }
                    if not args.json:
                        print(
                            f"{model:9s} bs{batch:<3d} naive {n:8.1f} img/s   ours {o:8.1f} img/s"
                            f"   x{o / n:.2f}   (median of {args.repeats})",
                            flush=True,
                        )
        finally:
            shutil.rmtree(root, ignore_errors=True)
    report = {
        "benchmark": "trainer",
        **common.stamp(),
        **common.verdict(load_at_start, args.max_load),
        "load": watch.summary(),
        "device": torch.cuda.get_device_name() if pin else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "images": args.images,
        "repeats": args.repeats,
        "workers": args.workers,
        "options": options,
        "ours_epochs": args.epochs,
        "cases": cases,
    }
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
