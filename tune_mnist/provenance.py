"""Where numbers came from: versions, git commit, devices, the command that ran."""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "tune-mnist",
    "torch",
    "torchvision",
    "ray",
    "scikit-learn",
    "fvcore",
    "numpy",
    "pandas",
)


def versions() -> dict[str, str]:
    """Installed versions of the packages the numbers depend on."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def git_commit(folder: Path | None = None) -> str | None:
    """The commit of the checkout this package runs from (with '+dirty'), or None."""
    folder = folder or Path(__file__).resolve().parent
    try:
        run = lambda *args: subprocess.run(  # noqa: E731
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        commit = run("rev-parse", "HEAD")
        return commit + ("+dirty" if run("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def devices() -> list[str]:
    """The accelerators this process sees, or the CPU."""
    import torch

    if torch.cuda.is_available():
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return [f"cpu: {platform.processor() or platform.machine()}"]


def command() -> str:
    """The command line of this process, shell-quoted."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def provenance() -> dict:
    """All of the above, for saving beside results."""
    return {
        "versions": versions(),
        "git_commit": git_commit(),
        "driver_devices": devices(),
        "host": platform.node(),
        "command": command(),
    }
