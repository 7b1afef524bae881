"""Numerics check: a space's --smoke accuracies, tune-mnist's training against the plain path.

For every ResNet trial of a space at --smoke size (one epoch on the first 1,000 training
images, tested on the first 500) and for each seed, trains twice from the same initial
weights: the plain path (benchmarks/naive.py: torchvision datasets, DataLoader, eager fp32,
torch's default optimizer implementations) and tune_mnist.train.resnet.train_resnet exactly as a
trial runs it.
Prints, per configuration, the mean and std over seeds of both, and over all
(configuration, seed) pairs the paired difference ours - plain with its 95% t-interval,
beside the seed-to-seed std. Run by hand, not in CI (q1a, 3 seeds: 29 min on 2 cores):

    python benchmarks/seed_noise.py q1a --seeds 0 1 2
    python benchmarks/seed_noise.py q1a --seeds 0 1 2 --json    # one JSON object on stdout

Jobs run in `--jobs` processes with one torch thread each, as Ray runs one-CPU trials.
Without --data-dir (or $TUNE_MNIST_DATA) the bundled sample is used, as
`tune-mnist sweep q1a --smoke` does.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from functools import cache
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import naive  # benchmarks/naive.py, beside this script

from tune_mnist.analysis.stats import aggregate, paired_difference
from tune_mnist.spec.configs import ResNetConfig
from tune_mnist.spec.spaces import load_space
from tune_mnist.train.data import SMOKE_TEST, SMOKE_TRAIN, Dataset, load_dataset
from tune_mnist.train.resnet import TrainOptions, train_resnet

CONFIG = ["dataset", "model", "batch_size", "optimizer", "lr"]


@cache
def smoke_dataset(name: str, data_dir: str | None) -> Dataset:
    """A dataset at --smoke size, read once per worker process."""
    return load_dataset(name, data_dir, smoke=True)


def one_pair(trial: ResNetConfig, data_dir: str | None, torchvision_root: Path) -> dict:
    """Both paths for one trial config and seed: accuracies and training seconds."""
    torch.set_num_threads(1)
    data = smoke_dataset(trial.dataset, data_dir)
    device = torch.device("cpu")
    train_loader = naive.loader(
        torchvision_root, trial.dataset, True, SMOKE_TRAIN, trial.batch_size, shuffle=True
    )
    test_loader = naive.loader(torchvision_root, trial.dataset, False, SMOKE_TEST, 1000)
    model, plain_s = naive.train(trial, train_loader, device)
    plain_acc = naive.test_accuracy(model, test_loader, device)
    ours = train_resnet(trial, data, TrainOptions(device="cpu", max_epochs=1))
    return {
        **{key: getattr(trial, key) for key in CONFIG},
        "seed": trial.seed,
        "plain_acc": plain_acc,
        "ours_acc": ours.test_accuracy,
        "plain_s": plain_s,
        "ours_s": ours.train_time_ms / 1000,
    }


def summarize(pairs: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Per-configuration mean/std of both paths, and the overall paired difference."""
    plain = aggregate(pairs, CONFIG, "plain_acc")
    ours = aggregate(pairs, CONFIG, "ours_acc")
    table = plain[CONFIG].copy()
    table["plain_mean"], table["plain_std"] = plain["mean"], plain["std"]
    table["ours_mean"], table["ours_std"] = ours["mean"], ours["std"]
    table["diff"] = table["ours_mean"] - table["plain_mean"]
    # seed-to-seed noise of one run, pooled over configurations and both paths
    seed_std = math.sqrt(pd.concat([table["plain_std"], table["ours_std"]]).pow(2).mean())
    overall = paired_difference(pairs["plain_acc"], pairs["ours_acc"])
    overall |= {
        "seed_std": seed_std,
        "plain_mean": pairs["plain_acc"].mean(),
        "ours_mean": pairs["ours_acc"].mean(),
        "configs_beyond_2_seed_std": int((table["diff"].abs() > 2 * seed_std).sum()),
        "configs": len(table),
        "plain_train_s": pairs["plain_s"].sum(),
        "ours_train_s": pairs["ours_s"].sum(),
    }
    return table, overall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("space", nargs="?", default="q1a")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--data-dir",
        metavar="DATA",
        default=None,
        help="a folder with mnist/ and fashion-mnist/ IDX files "
        "(default: $TUNE_MNIST_DATA, else the bundled sample)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="processes, one thread each")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    trials = [t for t in load_space(args.space).trials if isinstance(t, ResNetConfig)]
    roots = {}
    for name in dict.fromkeys(t.dataset for t in trials):
        source = load_dataset(name, args.data_dir, smoke=True).source
        roots[name] = naive.torchvision_root(Path(source), name)
    start = time.perf_counter()
    try:
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = [
                pool.submit(one_pair, replace(t, seed=seed), args.data_dir, roots[t.dataset])
                for seed in args.seeds
                for t in trials
            ]
            pairs = pd.DataFrame([f.result() for f in futures])
    finally:
        for root in roots.values():
            shutil.rmtree(root, ignore_errors=True)
    table, overall = summarize(pairs)
    overall["wall_s"] = time.perf_counter() - start
    if args.json:
        report = {
            "space": args.space,
            "seeds": args.seeds,
            "torch": torch.__version__,
            "overall": overall,
            "configs": table.to_dict(orient="records"),
            "pairs": pairs.to_dict(orient="records"),
        }
        print(json.dumps(report, indent=2))
        return
    formats = ["g" if column == "lr" else ".2f" for column in table.columns]
    print(table.to_markdown(index=False, floatfmt=formats))
    print(
        f"\nours - plain over {overall['pairs']} (config, seed) pairs: {overall['diff']:+.2f} "
        f"points, 95% CI [{overall['ci_low']:+.2f}, {overall['ci_high']:+.2f}], paired t "
        f"p={overall['p']:.2f}; seed-to-seed std of one run {overall['seed_std']:.2f} points; "
        f"{overall['configs_beyond_2_seed_std']} of {overall['configs']} configurations differ "
        f"by more than 2 seed stds. Training time: plain {overall['plain_train_s']:.0f} s, "
        f"ours {overall['ours_train_s']:.0f} s; wall {overall['wall_s']:.0f} s."
    )


if __name__ == "__main__":
    main()
