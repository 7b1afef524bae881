"""Provenance: the code version, the machine, installed packages, data checksums."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path

import pytest
import torch

from tune_mnist.errors import TuneMnistError
from tune_mnist.store import provenance
from tune_mnist.store.provenance import (
    SWEEP_KEYS,
    code_version,
    cpu,
    distributions,
    git_commit,
    gpu,
    nvidia_driver,
    report_provenance,
    sha256_files,
    torch_build,
)
from tune_mnist.train import data
from tune_mnist.train.data import FILES, dataset_files, load_dataset, sample_root

from ..conftest import write_dataset

CPUINFO = Path("/proc/cpuinfo")
linux_only = pytest.mark.skipif(not CPUINFO.is_file(), reason="reads /proc/cpuinfo")


# -- code version


def git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_code_version_separates_commit_and_dirty_flag(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "commit", "-qm", "first")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert re.fullmatch(r"[0-9a-f]{40}", head)

    (tmp_path / "untracked.txt").write_text("not part of the code\n")
    assert code_version(tmp_path) == provenance.CodeVersion(head, False)
    assert git_commit(tmp_path) == head

    (tmp_path / "a.py").write_text("x = 2\n")
    assert code_version(tmp_path) == provenance.CodeVersion(head, True)
    assert git_commit(tmp_path) == head + "+dirty"  # the version 1 field, unchanged


def test_code_version_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert code_version(tmp_path) == provenance.CodeVersion(None, None)
    assert git_commit(tmp_path) is None


# -- the machine


@linux_only
def test_cpu_as_proc_cpuinfo_and_the_os_report_it():
    text = CPUINFO.read_text()
    found = cpu()
    model_names = re.findall(r"^model name\s*:\s*(.*)$", text, flags=re.M)
    if model_names:
        assert found.model == model_names[0].strip()
    assert found.logical_cpus == os.cpu_count()
    assert found.usable_cpus == len(os.sched_getaffinity(0))
    flags = set(re.search(r"^(?:flags|Features)\s*:(.*)$", text, flags=re.M)[1].split())
    assert set(found.vector_extensions) == flags & set(provenance.VECTOR_FLAGS)
    assert ("avx2" in found.vector_extensions) == ("avx2" in flags)
    assert found.torch_capability == torch.backends.cpu.get_cpu_capability()
    if shutil.which("lscpu"):  # an independent count of physical cores
        out = subprocess.run(["lscpu", "-p=CORE,SOCKET"], capture_output=True, text=True).stdout
        pairs = {line for line in out.splitlines() if line and not line.startswith("#")}
        assert found.physical_cores == len(pairs)


def test_cpu_reports_torch_threads_as_set():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert cpu().torch_threads == 1
    finally:
        torch.set_num_threads(before)
    assert cpu().torch_threads == before
    assert cpu().torch_interop_threads == torch.get_num_interop_threads()


def test_gpu_as_torch_sees_it():
    found = gpu()
    assert found.cuda_build == torch.version.cuda
    if torch.cuda.is_available():
        assert found.devices == tuple(
            torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
        )
        assert found.cudnn == torch.backends.cudnn.version()
    else:
        assert found.devices == [] and found.cudnn is None


def fake_nvidia_smi(folder: Path, output: str) -> None:
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '{output}'\n")
    script.chmod(0o755)


def test_driver_from_nvidia_smi(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert nvidia_driver() is None  # no binary: no driver
    fake_nvidia_smi(tmp_path, "550.54.15\\n550.54.15\\n")  # one line per GPU
    assert nvidia_driver() == "550.54.15"
    assert gpu().driver == "550.54.15"


def test_torch_build_of_this_torch():
    build = torch_build()
    config = torch.__config__.show()
    assert build.config == config and build.torch == torch.__version__
    assert build.mkldnn_available == torch.backends.mkldnn.is_available()
    # each parsed field is in the text it came from, where that text has one
    for field, template in [
        ("blas", "BLAS_INFO={}"),
        ("lapack", "LAPACK_INFO={}"),
        ("onednn", "MKL-DNN v{}"),
        ("mkl", "Math Kernel Library Version {}"),
        ("openmp", "a.k.a. OpenMP {})"),
    ]:
        value = getattr(build, field)
        assert value is None or template.format(value) in config, field
    if "BLAS_INFO=" in config:
        assert build.blas is not None
    if "MKL-DNN v" in config:
        assert re.fullmatch(r"\d+(\.\d+)+", build.onednn)


ARM_CONFIG = """PyTorch built with:
  - GCC 11.2
  - C++ Version: 201703
  - Intel(R) MKL-DNN v3.5.3 (Git Hash 66f0cb9eb66affd2da3bf5f8d897376f04aae6af)
  - OpenMP 201511 (a.k.a. OpenMP 4.5)
  - LAPACK is enabled (usually provided by MKL)
  - CPU capability usage: NO AVX
  - Build settings: BLAS_INFO=open, BUILD_TYPE=Release, LAPACK_INFO=open, USE_CUDA=OFF,
"""


def test_torch_build_of_an_openblas_torch(monkeypatch):
    monkeypatch.setattr(torch.__config__, "show", lambda: ARM_CONFIG)
    build = torch_build()
    assert (build.blas, build.lapack, build.mkl) == ("open", "open", None)
    assert (build.onednn, build.openmp) == ("3.5.3", "4.5")


def test_distributions_are_every_installed_one_sorted():
    found = distributions()
    assert f"torch=={metadata.version('torch')}" in found
    # importlib reports torch's version without the local suffix (+cu130, +cpu)
    assert f"torch=={torch.__version__.split('+')[0]}" in found
    assert f"pytest=={pytest.__version__}" in found
    assert found == sorted(found, key=str.lower) and len(found) == len(set(found))
    assert all(re.fullmatch(r"[^=\s]+==\S+", line) for line in found)


# -- what gets saved


def test_sweep_provenance_keeps_the_old_keys_and_adds_the_machine():
    record = provenance.provenance()
    assert tuple(record) == SWEEP_KEYS
    assert SWEEP_KEYS[:5] == ("versions", "git_commit", "driver_devices", "host", "command")
    assert record["versions"]["torch"] == metadata.version("torch")
    code = code_version()
    assert record["code"] == {"commit": code.commit, "dirty": code.dirty}
    assert record["git_commit"] == git_commit()
    assert record["machine"]["cpu"]["logical_cpus"] == os.cpu_count()
    assert record["machine"]["torch_build"]["config"] == torch.__config__.show()
    assert record["distributions"] == distributions()
    saved = json.loads(json.dumps(record))  # plain JSON, no default= needed
    assert saved["machine"]["cpu"]["vector_extensions"] == list(cpu().vector_extensions)


def test_report_provenance_is_the_writing_process():
    before = time.time()
    record = report_provenance()
    code = code_version()
    assert (record["commit"], record["dirty"]) == (code.commit, code.dirty)
    assert record["versions"] == provenance.versions()
    written = time.mktime(time.strptime(record["written_at"], "%Y-%m-%dT%H:%M:%S%z"))
    assert before - 2 <= written <= time.time() + 1
    json.dumps(record)  # plain JSON, no default= needed


# -- data checksums


@pytest.mark.parametrize("gz", [True, False])
def test_sha256_of_the_files_a_load_reads(tmp_path, monkeypatch, gz):
    root = tmp_path / "data"
    write_dataset(root / "mnist", gz=gz)
    files = dataset_files("mnist", root)
    suffix = ".gz" if gz else ""
    assert files == [root / "mnist" / f"{stem}{suffix}" for stem in FILES.values()]

    read = []
    real = data.read_idx
    monkeypatch.setattr(
        data, "read_idx", lambda path, magic: read.append(path) or real(path, magic)
    )
    load_dataset("mnist", root)
    assert read == files

    monkeypatch.setattr(provenance, "HASH_CHUNK", 1000)  # many chunks per file
    digests = sha256_files(files)
    assert digests == {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    assert len(set(digests.values())) == 4
    assert min(p.stat().st_size for p in files) > 0


def test_dataset_files_in_torchvision_layout(tmp_path):
    write_dataset(tmp_path / "FashionMNIST" / "raw")
    files = dataset_files("fashion-mnist", tmp_path)
    assert [p.parent for p in files] == [tmp_path / "FashionMNIST" / "raw"] * 4


def test_dataset_files_of_a_smoke_run_are_the_bundled_sample():
    files = dataset_files("mnist", smoke=True)
    assert [p.parent for p in files] == [sample_root() / "mnist"] * 4
    digests = sha256_files(files)
    assert digests[str(files[0])] == hashlib.sha256(files[0].read_bytes()).hexdigest()


def test_dataset_files_never_downloads(tmp_path):
    with pytest.raises(TuneMnistError, match="mnist: not found under"):
        dataset_files("mnist", tmp_path)
    write_dataset(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(TuneMnistError, match="has no t10k-labels-idx1-ubyte"):
        dataset_files("mnist", tmp_path)
