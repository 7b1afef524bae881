"""q1b end to end: plain scikit-learn in one process against `tune-mnist sweep q1b`, in
the same run, alternating, with identical predictions checked.

plain: one Python process (benchmarks/plain_svc.py) that reads the IDX files and runs
       `SVC(kernel=k).fit(first 10,000 training images / 255).predict(whole test set)`
       for k in rbf, poly on MNIST and Fashion-MNIST, timed from the process's start to
       its end (Python, imports and data reading included, as for the sweep).
sweep: `tune-mnist sweep q1b --data-dir DATA` as a subprocess, from the command's start
       to its tables written; its split (sweep_split.py) and each trial's predictions
       (predictions.npz), compared with plain's, trial by trial.

Rounds alternate which goes first (plain, sweep; sweep, plain; ...) so that drift in the
machine's speed hits both. Every figure carries the CPU model, its vector extensions and
the load average before and during; a run that started above --max-load is marked
"quiet": false and must not be published. Run by hand, not in CI:

    python benchmarks/end_to_end.py --data-dir DATA --rounds 2 --json --out e2e.json
    python benchmarks/end_to_end.py --data-dir DATA --repo ../before --json   # "before"

DATA is a folder with mnist/ and fashion-mnist/ IDX files (default: $TUNE_MNIST_DATA).
--repo times another checkout's sweep (e.g. a worktree at the commit before a change).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # benchmarks/common.py, beside this script
import sweep_split  # benchmarks/sweep_split.py, beside this script

ROOT, HERE = Path(__file__).resolve().parents[1], Path(__file__).resolve().parent

CASES = [(d, k) for d in ("mnist", "fashion-mnist") for k in ("rbf", "poly")]  # q1b's grid


def run_plain(data_dir: str, out: Path) -> dict:
    """plain_svc.py in a fresh process: its wall time, load, per-case times, predictions."""
    command = [sys.executable, str(HERE / "plain_svc.py"), "--data-dir", data_dir]
    with common.LoadWatch() as load:
        start = time.time()
        done = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True)
        end = time.time()
    if done.returncode != 0:
        sys.exit(f"plain_svc.py failed ({done.returncode}):\n{done.stderr[-3000:]}")
    cases = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_s": round(end - start, 2), "load": load.summary(), "cases": cases}


def sweep_predictions(experiment: Path) -> dict[str, np.ndarray]:
    """Each finished q1b trial's saved test predictions, by "dataset/kernel"."""
    from tune_mnist.store.experiment import read_predictions
    from tune_mnist.store.results import load_results

    found = {}
    for _, row in load_results(experiment).iterrows():
        saved = read_predictions(Path(row["trial_dir"])) if row["trial_dir"] else None
        if saved is not None:
            found[f"{row['dataset']}/{row['kernel']}"] = saved.predicted
    return found


def sweep_trials(experiment: Path) -> dict[str, dict]:
    """Each trial's fit and predict ms, backend and whether it read a shared Gram matrix."""
    from tune_mnist.store.results import load_results

    keys = ["train_time_ms", "predict_time_ms", "backend", "shared_gram", "test_accuracy"]
    frame = load_results(experiment)
    return {
        f"{row['dataset']}/{row['kernel']}": {k: row.get(k) for k in keys}
        for _, row in frame.iterrows()
    }


def one_round(number: int, args, scratch: Path) -> dict:
    plain_out = scratch / f"plain-{number}.npz"
    order = ["plain", "sweep"] if number % 2 == 0 else ["sweep", "plain"]
    measured = {}
    for which in order:
        if which == "plain":
            measured["plain"] = run_plain(args.data_dir, plain_out)
        else:
            measured["sweep"] = sweep_split.measure_sweep(
                "q1b", args.data_dir, False, args.repo, scratch, f"q1b-{number}"
            )
    experiment = Path(measured["sweep"]["experiment"])
    ours = sweep_predictions(experiment)
    with np.load(plain_out) as plain:
        same = {
            case: bool(case in ours and np.array_equal(plain[case.replace("/", "_")], ours[case]))
            for case in (f"{d}/{k}" for d, k in CASES)
        }
    measured["sweep"]["trials"] = sweep_trials(experiment)
    return {
        "order": order,
        **measured,
        "speedup": round(measured["plain"]["wall_s"] / measured["sweep"]["wall_s"], 2),
        "same_predictions": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_data_dir(parser)
    parser.add_argument("--rounds", type=int, default=2, help="plain and sweep, each (default 2)")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose sweep is timed")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    common.add_honesty(parser)
    args = common.parse_args(parser)
    args.data_dir = str(Path(args.data_dir).absolute())

    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        rounds = [one_round(i, args, Path(scratch)) for i in range(args.rounds)]
    plain = [r["plain"]["wall_s"] for r in rounds]
    sweep = [r["sweep"]["wall_s"] for r in rounds]
    report = {
        "benchmark": "end_to_end",
        "command": "tune-mnist sweep q1b --data-dir DATA  vs  plain_svc.py --data-dir DATA",
        **common.stamp(args.repo),
        "versions": common.versions("scikit-learn", "numpy", "scipy", "ray", "torch"),
        **common.verdict(load_at_start, args.max_load),
        "plain_s_median": statistics.median(plain),
        "sweep_s_median": statistics.median(sweep),
        "speedup_median": round(statistics.median(plain) / statistics.median(sweep), 2),
        "same_predictions": all(all(r["same_predictions"].values()) for r in rounds),
        "rounds": rounds,
    }
    text = json.dumps(report, indent=2, default=str)
    if args.out:
        args.out.write_text(text + "\n")
    if args.json:
        print(text)
    else:
        for i, r in enumerate(rounds):
            print(
                f"round {i + 1} ({' then '.join(r['order'])}): plain {r['plain']['wall_s']:.1f} s, "
                f"sweep {r['sweep']['wall_s']:.1f} s, x{r['speedup']}; identical predictions: "
                f"{all(r['same_predictions'].values())}"
            )
        print(
            f"median: plain {report['plain_s_median']:.1f} s, sweep {report['sweep_s_median']:.1f} "
            f"s, x{report['speedup_median']}; quiet: {report['quiet']} "
            f"(load {report['load_at_start']} at the start); {report['machine']['cpu_model']}, "
            f"{' '.join(report['machine']['vector_extensions'])}"
        )


if __name__ == "__main__":
    main()
