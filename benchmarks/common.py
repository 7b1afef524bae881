"""What the benchmarks that read the full datasets share: the `--data-dir DATA` option.

Standard library only, so that every benchmark can import it (svm.py needs no torch).
Also what every published figure carries: the CPU model and vector extensions, the load
average before and during the run, and whether it was quiet enough to publish.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

NO_DATA = (
    "pass --data-dir DATA (a folder with mnist/ and fashion-mnist/ IDX files) "
    "or set TUNE_MNIST_DATA"
)


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    """`--data-dir DATA`, by default $TUNE_MNIST_DATA; parse_args checks one was given."""
    parser.add_argument(
        "--data-dir",
        metavar="DATA",
        default=os.environ.get("TUNE_MNIST_DATA"),
        help="a folder with mnist/ and fashion-mnist/ IDX files (default: $TUNE_MNIST_DATA)",
    )


def parse_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The parsed arguments; a one-line error exit when no data folder was given."""
    args = parser.parse_args()
    if not args.data_dir:
        sys.exit(NO_DATA)
    return args


# ------------------------------------------------ honest figures: the machine and its load

VECTOR_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_bf16")
DEFAULT_MAX_LOAD = 0.5  # 1-minute load average at the start above which a run is not quiet


def machine() -> dict:
    """The CPU's model and vector extensions (from /proc/cpuinfo), cores, memory, Python."""
    import platform

    from tune_mnist.store.provenance import cpuinfo  # the project's own /proc/cpuinfo reader

    first = (cpuinfo() or [{}])[0]
    model = platform.processor() or "unknown"
    if model in ("unknown", "x86_64", ""):
        model = first.get("model name", model)
    flags = set(first.get("flags", "").split())
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 2**20, 1)  # kB -> GiB
    except OSError:
        pass
    return {
        "cpu_model": model,
        "vector_extensions": [f for f in VECTOR_FLAGS if f in flags],
        "avx2": "avx2" in flags,
        "avx512": "avx512f" in flags,
        "cpus": os.cpu_count(),
        "memory_gib": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


class LoadWatch:
    """The 1-minute load average before a run and, sampled every `every` s, during it."""

    def __init__(self, every: float = 1.0):
        import threading

        self.every, self.samples = every, []
        self.before = os.getloadavg()[0]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        during = self.samples or [os.getloadavg()[0]]
        return {
            "before": round(self.before, 2),
            "during_max": round(max(during), 2),
            "during_mean": round(sum(during) / len(during), 2),
        }


def add_honesty(parser: argparse.ArgumentParser) -> None:
    """`--max-load`: the start load above which the figures are marked not quiet."""
    parser.add_argument(
        "--max-load",
        type=float,
        default=DEFAULT_MAX_LOAD,
        help="1-minute load average at the start above which the run is marked quiet: false "
        f"and must not be published (default {DEFAULT_MAX_LOAD})",
    )


def verdict(load_at_start: float, max_load: float) -> dict:
    """Whether the figures may be published; warns on stderr when not."""
    quiet = load_at_start <= max_load
    if not quiet:
        print(
            f"NOT QUIET: the load average was {load_at_start:.2f} at the start (> {max_load}): "
            "do not publish these figures; rerun on a quiet machine",
            file=sys.stderr,
        )
    return {"quiet": quiet, "load_at_start": round(load_at_start, 2), "max_load": max_load}


def versions(*packages: str) -> dict:
    """Installed versions of these distributions (None where absent)."""
    from importlib import metadata

    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_commit(folder) -> str | None:
    """The commit checked out in `folder` (with "+dirty" when it has changes), or None."""
    import subprocess

    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def stamp(repo=None) -> dict:
    """What every published figure carries about when and where it was taken: the date
    (UTC), the commit of `repo` (default: this checkout) and the machine."""
    import time

    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "repo_commit": git_commit(repo or Path(__file__).resolve().parents[1]),
        "machine": machine(),
    }
