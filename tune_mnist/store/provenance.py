"""Where numbers came from: code version, packages, machine, data files, the command.

`provenance()` is saved with a sweep when it starts; `report_provenance()` describes the
process that writes a report later, which may run other code on another machine.
Everything here uses the standard library and torch only, and never fails for want of a
GPU, a git checkout or /proc: what cannot be found is None.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
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
# The keys `provenance()` writes; the first five are those of every older experiment.
SWEEP_KEYS = (
    "versions",
    "git_commit",
    "driver_devices",
    "host",
    "command",
    "code",
    "machine",
    "distributions",
)
# Instruction-set extensions that decide which CPU kernels torch runs, as cpuinfo names them.
VECTOR_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "asimd",
    "sve",
)
HASH_CHUNK = 1 << 20


def versions() -> dict[str, str]:
    """Installed versions of the packages the numbers depend on."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def distributions() -> list[str]:
    """Every installed distribution as `name==version`, sorted case-insensitively."""
    found = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:  # a broken install can leave a dist-info without metadata
            found.add(f"{name}=={dist.version}")
    return sorted(found, key=str.lower)


@dataclass(frozen=True)
class CodeVersion:
    """The git commit of a checkout, and whether tracked files differ from it."""

    commit: str | None  # None outside a git checkout (an installed wheel)
    dirty: bool | None

    @property
    def label(self) -> str | None:
        """The commit with '+dirty' when tracked files changed: the version 1 field."""
        return self.commit and self.commit + ("+dirty" if self.dirty else "")


def code_version(folder: Path | None = None) -> CodeVersion:
    """The commit of the checkout this package runs from, or of `folder`."""
    folder = folder or Path(__file__).resolve().parent
    try:
        run = lambda *args: subprocess.run(  # noqa: E731
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        commit = run("rev-parse", "HEAD")
        return CodeVersion(commit, bool(run("status", "--porcelain", "--untracked-files=no")))
    except (OSError, subprocess.SubprocessError):
        return CodeVersion(None, None)


def git_commit(folder: Path | None = None) -> str | None:
    """The commit with '+dirty' when tracked files changed, or None."""
    return code_version(folder).label


@dataclass(frozen=True)
class Cpu:
    """The processor, as the OS and torch see it."""

    model: str
    physical_cores: int | None  # distinct (package, core) pairs in /proc/cpuinfo
    logical_cpus: int | None  # os.cpu_count(): hardware threads of the machine
    usable_cpus: int | None  # those this process may run on (affinity, cgroup cpusets)
    vector_extensions: list[str]  # of VECTOR_FLAGS, those the CPU has
    # None where torch was not imported (a sweep of SVMs only)
    torch_capability: str | None = None  # the kernel set torch dispatches to, e.g. AVX2
    torch_threads: int | None = None
    torch_interop_threads: int | None = None


@dataclass(frozen=True)
class Gpu:
    """CUDA as torch was built for it and as the machine has it."""

    devices: list[str]  # names of the GPUs this process sees; empty without any
    cuda_build: str | None  # torch.version.cuda: the toolkit torch was built with
    cudnn: int | None
    driver: str | None  # from nvidia-smi; None where it is not installed


@dataclass(frozen=True)
class TorchBuild:
    """The libraries torch's CPU kernels come from, parsed from torch.__config__.show()."""

    torch: str
    blas: str | None  # BLAS_INFO, e.g. mkl, open (OpenBLAS), accelerate
    lapack: str | None
    mkl: str | None  # MKL's version when torch bundles it
    onednn: str | None  # oneDNN (MKL-DNN) version
    mkldnn_available: bool
    openmp: str | None  # the OpenMP standard torch was built against, e.g. "4.5"
    parallel_backend: str | None  # ATen's: OpenMP, native thread pool, TBB
    config: str  # the full text, for what the fields above leave out


@dataclass(frozen=True)
class Machine:
    """The host a sweep ran its driver on."""

    host: str
    os: str
    python: str
    cpu: Cpu
    gpu: Gpu | None  # None: not looked up (a sweep of SVMs only does not import torch)
    torch_build: TorchBuild | None


def cpuinfo(path: Path = Path("/proc/cpuinfo")) -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per logical CPU; empty where there is none (macOS)."""
    try:
        text = path.read_text()
    except OSError:
        return []
    blocks = []
    for block in text.split("\n\n"):
        fields = dict(
            (key.strip(), value.strip())
            for key, _, value in (line.partition(":") for line in block.splitlines())
        )
        if fields:
            blocks.append(fields)
    return blocks


def cpu(with_torch: bool = True) -> Cpu:
    """The CPU model, its cores, its vector extensions and torch's threads (None without
    `with_torch`)."""
    blocks = cpuinfo()
    first = blocks[0] if blocks else {}
    # x86 says "model name"; some ARM kernels name only the implementer and part
    model = first.get("model name") or platform.processor() or platform.machine()
    cores = {(b.get("physical id", "0"), b["core id"]) for b in blocks if "core id" in b}
    flags = set((first.get("flags") or first.get("Features") or "").split())
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on macOS or Windows
        usable = os.cpu_count()
    return Cpu(
        model=model,
        physical_cores=len(cores) or None,
        logical_cpus=os.cpu_count(),
        usable_cpus=usable,
        vector_extensions=[f for f in VECTOR_FLAGS if f in flags],
        **(_torch_cpu() if with_torch else {}),
    )


def _torch_cpu() -> dict:
    import torch

    return {
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
    }


def nvidia_driver() -> str | None:
    """The NVIDIA driver version nvidia-smi reports, or None without it."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None
    try:
        out = subprocess.run(
            [binary, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return lines[0] if lines else None  # one driver serves every GPU of a host


def gpu() -> Gpu:
    """The GPUs this process sees, torch's CUDA and cuDNN, and the driver."""
    import torch

    seen = torch.cuda.is_available()
    count = torch.cuda.device_count() if seen else 0
    return Gpu(
        devices=[torch.cuda.get_device_name(i) for i in range(count)],
        cuda_build=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if seen else None,
        driver=nvidia_driver(),
    )


def _search(pattern: str, text: str) -> str | None:
    found = re.search(pattern, text)
    return found.group(1) if found else None


def torch_build() -> TorchBuild:
    """BLAS, LAPACK, oneDNN and OpenMP of this torch, and the text they were parsed from."""
    import torch

    config = torch.__config__.show()
    try:
        parallel = torch.__config__.parallel_info()
    except (AttributeError, RuntimeError):
        parallel = ""
    return TorchBuild(
        torch=torch.__version__,
        blas=_search(r"BLAS_INFO=([^,\s]+)", config),
        lapack=_search(r"LAPACK_INFO=([^,\s]+)", config),
        mkl=_search(r"Math Kernel Library Version ([\d.]+)", config),
        onednn=_search(r"MKL-DNN v([\d.]+)", config),
        mkldnn_available=torch.backends.mkldnn.is_available(),
        openmp=_search(r"OpenMP \d+ \(a\.k\.a\. OpenMP ([\d.]+)\)", config),
        parallel_backend=_search(r"ATen parallel backend: (.+)", parallel),
        config=config,
    )


def machine(with_torch: bool = True) -> Machine:
    """This host: OS, Python, CPU, GPU and torch's build (None without `with_torch`)."""
    return Machine(
        host=platform.node(),
        os=platform.platform(),
        python=sys.version.split()[0],
        cpu=cpu(with_torch),
        gpu=gpu() if with_torch else None,
        torch_build=torch_build() if with_torch else None,
    )


def devices() -> list[str]:
    """The accelerators this process sees, or the CPU."""
    import torch

    if torch.cuda.is_available():
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return [f"cpu: {platform.processor() or platform.machine()}"]


# user:password@ in any URI of a command line: what `redacted` blanks out
_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def redacted(text: str) -> str:
    """`text` with the user and password of every URI in it replaced by `***@`."""
    return _CREDENTIALS.sub("***@", text)


def command() -> str:
    """The command line of this process, shell-quoted, credentials in URIs redacted (it
    goes into the experiment's metadata, provenance and report)."""
    return redacted(shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]))


def sha256_files(paths: Iterable[str | Path]) -> dict[str, str]:
    """Hex SHA-256 of each file's bytes (as stored: a .gz is hashed gzipped), by path."""
    digests = {}
    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            # a chunk at a time: a full training file is 47 MB raw
            while chunk := stream.read(HASH_CHUNK):
                digest.update(chunk)
        digests[str(path)] = digest.hexdigest()
    return digests


def now() -> str:
    """Local time with its UTC offset, as the experiment files write it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def provenance(with_torch: bool = True) -> dict:
    """The sweep's provenance, saved when it starts: SWEEP_KEYS, JSON-ready.

    Without `with_torch` (a sweep whose trials use no torch: SVMs) the driver does not
    import torch, which takes seconds, and its devices and build are None: none was used.
    """
    code = code_version()
    return {
        "versions": versions(),
        "git_commit": code.label,
        "driver_devices": devices() if with_torch else None,
        "host": platform.node(),
        "command": command(),
        "code": asdict(code),
        "machine": asdict(machine(with_torch)),
        "distributions": distributions(),
    }


def report_provenance() -> dict:
    """The process writing a report: its code, package versions, time and command."""
    code = code_version()
    return {
        "commit": code.commit,
        "dirty": code.dirty,
        "versions": versions(),
        "written_at": now(),
        "host": platform.node(),
        "command": command(),
    }
