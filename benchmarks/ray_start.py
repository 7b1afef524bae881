"""A local Ray's start with and without its dashboard, as a sweep starts it.

Each round starts a fresh Python process per variant (alternating which goes first) that
imports Ray, runs `ray.init(address="local", ...)` as tune_mnist.run.cluster.ray_session does,
runs one task on each CPU (a worker started and answering), and shuts Ray down; the
process reports each part's seconds. Run by hand on a quiet machine, not in CI:

    python benchmarks/ray_start.py --rounds 5 --json --out ray-start.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # benchmarks/common.py, beside this script

ONE_START = """
import json, os, sys, time
start = time.perf_counter()
import ray
imported = time.perf_counter()
ray.init(address="local", include_dashboard=sys.argv[1] == "on", dashboard_host="127.0.0.1",
         logging_level="ERROR", log_to_driver=False)
started = time.perf_counter()
one = ray.remote(num_cpus=1)(lambda: os.getpid())
ray.get([one.remote() for _ in range(int(ray.cluster_resources()["CPU"]))])
answered = time.perf_counter()
ray.shutdown()
print(json.dumps({"import_s": imported - start, "init_s": started - imported,
                  "first_tasks_s": answered - started,
                  "shutdown_s": time.perf_counter() - answered}))
"""


def one_start(dashboard: str) -> dict:
    """One fresh process's timings, and its wall time from outside."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # loopback, as the CLI
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", ONE_START, dashboard],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    wall = time.perf_counter() - began
    timing = json.loads(done.stdout.strip().splitlines()[-1])
    return {**{k: round(v, 2) for k, v in timing.items()}, "wall_s": round(wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    common.add_honesty(parser)
    args = parser.parse_args()
    runs = {"off": [], "on": []}
    with common.LoadWatch() as load:
        for index in range(args.rounds):
            for variant in ("off", "on") if index % 2 == 0 else ("on", "off"):
                runs[variant].append(one_start(variant))
    medians = {
        variant: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        for variant, rows in runs.items()
    }
    figures = {
        "benchmark": "ray_start",
        "command": "python benchmarks/ray_start.py " + " ".join(sys.argv[1:]),
        **common.stamp(),
        "versions": common.versions("ray"),
        **common.verdict(load.before, args.max_load),
        "load": load.summary(),
        "median_by_dashboard": medians,
        "runs_by_dashboard": runs,
    }
    text = json.dumps(figures, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    if args.json:
        print(text)
    for variant, median in medians.items():
        parts = ", ".join(f"{k} {v:.2f}" for k, v in median.items())
        print(f"dashboard {variant}: {parts} (median of {args.rounds})", file=sys.stderr)


if __name__ == "__main__":
    main()
