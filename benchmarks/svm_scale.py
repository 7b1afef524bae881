"""SVC cost against training-set size: fit time and peak memory per backend, beside the
memory each backend's model (tune_mnist.train.svm.estimate_memory) predicts.

Each (size, backend) runs in a fresh process, so its peak resident memory (ru_maxrss) is its
own; a backend whose estimate exceeds the available memory is skipped with its estimate,
not run into the OOM killer. Run by hand on a quiet machine (the load is recorded, and
a run started under load is marked `quiet: false`):

    python benchmarks/svm_scale.py --data-dir DATA                       # RBF on MNIST
    python benchmarks/svm_scale.py --data-dir DATA --sizes 5000 10000 --json out.json

DATA is a folder with mnist/ and fashion-mnist/ IDX files (default: $TUNE_MNIST_DATA).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # benchmarks/common.py, beside this script

from tune_mnist.spec.configs import SVMConfig
from tune_mnist.store.provenance import machine
from tune_mnist.train.svm import GiB, available_budget, estimate_memory


def one(args: argparse.Namespace) -> dict:
    """Fit and predict once in this process; its peak memory and times."""
    from tune_mnist.train.data import load_dataset
    from tune_mnist.train.svm import fit_predict

    data = load_dataset(args.dataset, args.data_dir)
    loaded_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    trial = SVMConfig(dataset=args.dataset, kernel=args.kernel, train_samples=args.one[0])
    start = time.perf_counter()
    result, _ = fit_predict(trial, data, args.one[1], budget=2**62)  # run what was asked
    return {
        "wall_s": round(time.perf_counter() - start, 2),
        "fit_s": round(result.train_time_ms / 1000, 2),
        "predict_s": round(result.predict_time_ms / 1000, 2),
        "test_accuracy": result.test_accuracy,
        "n_support": result.n_support,
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GiB, 3),
        "rss_after_loading_gib": round(loaded_rss / GiB, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_data_dir(parser)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--kernel", default="rbf")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000, 20000, 40000, 60000])
    parser.add_argument("--backends", nargs="+", default=["precomputed", "libsvm"])
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    common.add_honesty(parser)
    parser.add_argument("--one", nargs=2, metavar=("N", "BACKEND"), help=argparse.SUPPRESS)
    args = common.parse_args(parser)
    if args.one:
        args.one = (int(args.one[0]), args.one[1])
        print(json.dumps(one(args)))
        return
    budget, load_start = available_budget(), os.getloadavg()[0]
    runs = []
    for n in args.sizes:
        for backend in args.backends:
            estimate = estimate_memory(backend, n, 10_000, 784)
            row = {"n": n, "backend": backend, "estimate_gib": round(estimate.bytes / GiB, 3)}
            if estimate.bytes > budget:
                row["skipped"] = f"estimate above the {budget / GiB:.1f} GiB available"
            else:
                command = [sys.executable, __file__, "--data-dir", args.data_dir]
                command += ["--dataset", args.dataset, "--kernel", args.kernel]
                command += ["--one", str(n), backend]
                row["load_1m_before"] = os.getloadavg()[0]
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode:  # a negative code is the signal that ended it
                    last = (done.stderr.strip().splitlines() or [""])[-1]
                    row["failed"] = f"exit {done.returncode} {last}".strip()
                else:
                    row |= json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps(row), flush=True)
            runs.append(row)
    stamp = common.stamp()
    report = {
        "benchmark": "svm_scale",
        "dataset": args.dataset,
        "kernel": args.kernel,
        **stamp,
        "machine": stamp["machine"] | {"provenance": asdict(machine())},
        **common.verdict(load_start, args.max_load),
        "load_1m_at_end": os.getloadavg()[0],
        "available_gib": round(budget / GiB, 1),
        "runs": runs,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
