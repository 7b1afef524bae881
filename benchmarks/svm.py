"""q1b end to end: plain sklearn SVC against tune-mnist's precomputed-kernel backend.

For each of the four q1b trials (MNIST and Fashion-MNIST, RBF and Poly, the first 10,000
training images, the whole test set), in the same run, alternating: fit ms, predict ms,
accuracy, and whether the two backends' test predictions are identical. Run by hand:

    python benchmarks/svm.py --data-dir DATA
    python benchmarks/svm.py --data-dir DATA --json
    python benchmarks/svm.py --data-dir DATA --backends libsvm precomputed intelex  # if installed

DATA is a folder with mnist/ and fashion-mnist/ IDX files (default: $TUNE_MNIST_DATA).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # benchmarks/common.py, beside this script

from tune_mnist.spec.configs import SVM_BACKENDS, SVMConfig
from tune_mnist.spec.spaces import load_space
from tune_mnist.train.data import load_dataset
from tune_mnist.train.svm import fit_predict


def run(trial: SVMConfig, data, backend: str) -> tuple[dict, np.ndarray]:
    """One fit and prediction, timed end to end, and its predicted labels."""
    start = time.perf_counter()
    result, predicted = fit_predict(trial, data, backend)
    total_s = time.perf_counter() - start
    return {
        "fit_ms": round(result.train_time_ms),
        "predict_ms": round(result.predict_time_ms),
        "total_ms": round(1000 * total_s),
        "accuracy": result.test_accuracy,
        "n_support": result.n_support,
    }, predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_data_dir(parser)
    parser.add_argument(
        "--backends", nargs="+", choices=SVM_BACKENDS, default=["libsvm", "precomputed"]
    )
    parser.add_argument("--json", action="store_true")
    args = common.parse_args(parser)

    trials = load_space("q1b").trials
    datasets = {name: load_dataset(name, args.data_dir) for name in ("mnist", "fashion-mnist")}
    cases = {}
    for trial in trials:
        name = f"{trial.dataset}/{trial.kernel}"
        runs = {b: run(trial, datasets[trial.dataset], b) for b in args.backends}
        cases[name] = {b: measured for b, (measured, _) in runs.items()}
        first = runs[args.backends[0]][1]
        cases[name]["same_predictions"] = {
            b: bool(np.array_equal(first, labels)) for b, (_, labels) in runs.items()
        }
        if not args.json:
            print(name, json.dumps(cases[name]), flush=True)
    base, ours = args.backends[0], args.backends[1]
    total = {b: sum(c[b]["total_ms"] for c in cases.values()) for b in args.backends}
    report = {
        "cpus": os.cpu_count(),
        "cases": cases,
        "total_ms": total,
        "speedup": round(total[base] / total[ours], 2),
        "same_predictions": all(c["same_predictions"][ours] for c in cases.values()),
    }
    print(
        json.dumps(report, indent=2)
        if args.json
        else f"q1b end to end: {base} {total[base]} ms, {ours} {total[ours]} ms, "
        f"x{report['speedup']}; identical test predictions: {report['same_predictions']}"
    )


if __name__ == "__main__":
    main()
