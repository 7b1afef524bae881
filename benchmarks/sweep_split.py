"""Where a sweep's time goes, measured from outside: `tune-mnist sweep SPACE ...` as a
subprocess, from the command's start to its tables written, with its split.

Two splits per run. The coarse one needs only what every tune-mnist version records (each
trial's started_at / finished_at and train time), so it also measures a checkout from
before the split existed (--repo OLD_CHECKOUT, the "before" figures): start-up (command
start to the first trial's start), the trials (first start to last finish), the tail
(last finish to the command's end: the report, figures, Ray's shutdown); and in the
trials, training + evaluation against everything else (per-trial overhead), in
slot-seconds. The fine one is the experiment's own timing.json (tune_mnist.analysis.timing),
where the checkout records it. Run by hand, not in CI:

    python benchmarks/sweep_split.py q1a --smoke --json --out q1a-smoke-split.json
    python benchmarks/sweep_split.py q1b --data-dir DATA --json
    python benchmarks/sweep_split.py q1b --data-dir DATA --repo ../before --json   # before

Figures are marked "quiet": false (and must not be published) when the 1-minute load
average at the start is above --max-load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # benchmarks/common.py, beside this script

ROOT = Path(__file__).resolve().parents[1]


def sweep_command(space: str, storage: Path, name: str, data_dir, smoke: bool) -> list[str]:
    command = [sys.executable, "-m", "tune_mnist", "sweep", space, "--storage-path", str(storage)]
    command += ["--name", name] + (["--smoke"] if smoke else [])
    return command + (["--data-dir", str(data_dir)] if data_dir else [])


def run_timed(command: list[str], repo: Path) -> dict:
    """Run a command with `repo`'s tune_mnist first on the path; its wall time and load."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]),
    }
    with common.LoadWatch() as load:
        start = time.time()
        done = subprocess.run(command, env=env, cwd=repo, capture_output=True, text=True)
        end = time.time()
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {
        "started_at": start,
        "ended_at": end,
        "wall_s": round(end - start, 2),
        "load": load.summary(),
    }


def coarse_split(experiment: Path, started_at: float, ended_at: float) -> dict:
    """The split every tune-mnist version's results allow (see the module's docstring)."""
    from tune_mnist.store.results import load_results, numbers

    results = load_results(experiment)
    first, last = numbers(results, "started_at").min(), numbers(results, "finished_at").max()
    train = (numbers(results, "train_time_ms") / 1000).sum()
    evaluate = numbers(results, "split_eval_s")
    if evaluate.isna().all():  # an older checkout: SVMs' prediction time, ResNets' unknown
        evaluate = numbers(results, "predict_time_ms") / 1000
    recorded = not evaluate.isna().all()
    inside = (numbers(results, "finished_at") - numbers(results, "started_at")).sum()
    trials_s = last - first
    slots = int(_peak_running(results))
    capacity = slots * trials_s
    overhead = capacity - train - evaluate.sum()
    return {
        "startup_s": round(first - started_at, 2),
        "trials_s": round(trials_s, 2),
        "tail_s": round(ended_at - last, 2),
        "slots": slots,
        "train_slot_s": round(train, 2),
        "eval_slot_s": round(float(evaluate.sum()), 2),
        "eval_recorded": recorded,  # False: evaluation counted as overhead (older ResNets)
        "inside_trials_slot_s": round(float(inside), 2),
        "per_trial_overhead_slot_s": round(float(overhead), 2),
        "per_trial_overhead_fraction": round(float(overhead / capacity), 3) if capacity else None,
        "trials": len(results),
        "finished": int((results["status"] == "finished").sum()),
    }


def _peak_running(results) -> int:
    from tune_mnist.store.results import numbers

    events = sorted(
        [(t, 1) for t in numbers(results, "started_at").dropna()]
        + [(t, -1) for t in numbers(results, "finished_at").dropna()]
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return max(peak, 1)


def fine_split(experiment: Path) -> dict | None:
    """The experiment's own timing.json split (None for a checkout that records none)."""
    from tune_mnist.analysis.timing import timing_split

    found = timing_split(experiment)
    if found is None:
        return None
    wall = found.wall.set_index("part")["seconds"]
    return {
        "wall": {k: (None if v != v else float(v)) for k, v in wall.items()},
        "trials_slot_s": {k: round(float(v), 2) for k, v in found.trials.items()},
        "per_trial_overhead_fraction": round(found.overhead_fraction, 3),
    }


def measure_sweep(space: str, data_dir, smoke: bool, repo: Path, storage: Path, name: str) -> dict:
    """One timed sweep and both of its splits."""
    timed = run_timed(sweep_command(space, storage, name, data_dir, smoke), repo)
    experiment = storage / name
    return {
        **timed,
        "experiment": str(experiment),
        "coarse": coarse_split(experiment, timed["started_at"], timed["ended_at"]),
        "fine": fine_split(experiment),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("space", help="a built-in space or a YAML file")
    parser.add_argument("--data-dir", metavar="DATA", default=os.environ.get("TUNE_MNIST_DATA"))
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose sweep is timed")
    parser.add_argument("--keep", type=Path, help="keep the experiments here (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    common.add_honesty(parser)
    args = parser.parse_args()
    if not args.smoke and not args.data_dir:
        sys.exit(common.NO_DATA)

    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        storage = (args.keep or Path(scratch)).absolute()
        runs = [
            measure_sweep(args.space, args.data_dir, args.smoke, args.repo, storage, f"split-{i}")
            for i in range(args.repeats)
        ]
    report = {
        "benchmark": "sweep_split",
        "command": f"tune-mnist sweep {args.space}"
        + (" --smoke" if args.smoke else "")
        + (" --data-dir DATA" if args.data_dir else ""),
        **common.stamp(args.repo),
        "versions": common.versions("ray", "torch", "scikit-learn", "numpy"),
        **common.verdict(load_at_start, args.max_load),
        "runs": runs,
    }
    text = json.dumps(report, indent=2, default=str)
    if args.out:
        args.out.write_text(text + "\n")
    if args.json:
        print(text)
    else:
        for run in runs:
            c = run["coarse"]
            print(
                f"{report['command']}: {run['wall_s']:.1f} s (start-up {c['startup_s']:.1f}, "
                f"trials {c['trials_s']:.1f} on {c['slots']} slots, tail {c['tail_s']:.1f}); "
                f"per-trial overhead {c['per_trial_overhead_fraction']:.1%} of the trials' "
                f"slot time; load {run['load']}"
            )


if __name__ == "__main__":
    main()
