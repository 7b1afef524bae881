"""SVM memory: estimates against measured peaks, `auto` within a budget, and Ray's `memory`
resource keeping a node from running more SVM trials than its memory holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tune_mnist import load_space
from tune_mnist.cli.main import app
from tune_mnist.errors import TuneMnistError
from tune_mnist.run.cluster import plan
from tune_mnist.run.sweep import SweepSettings, run_sweep
from tune_mnist.spec.configs import SVMConfig
from tune_mnist.train.data import load_dataset
from tune_mnist.train.svm import (
    DEFAULT_CACHE_MB,
    GiB,
    MiB,
    choose_backend,
    estimate_memory,
    fit_predict,
    request_memory,
)

from ..conftest import write_dataset, write_space

ROOT = Path(__file__).resolve().parents[2]
# The stated margin: beyond the process itself, the estimate is within 30% of the measured
# increase of the peak RSS, plus 40 MiB for what numpy, BLAS and libsvm allocate on the side.
RELATIVE, FIXED = 0.3, 40 * MiB

MEASURE = textwrap.dedent(
    """
    import json, sys
    import sklearn.metrics.pairwise, sklearn.svm  # imported before the baseline: not the fit's
    from tests.conftest import patterned_split
    from tune_mnist.spec.configs import SVMConfig
    from tune_mnist.train.data import Dataset
    from tune_mnist.train.svm import fit_predict

    n, n_test, backend, kernel = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    (xs, ys), (xt, yt) = patterned_split(n, 0), patterned_split(n_test, 1)
    data = Dataset("mnist", xs, ys, xt, yt, "generated")

    def peak():
        status = open("/proc/self/status").read()
        return int(status.split("VmHWM:")[1].split()[0]) * 1024  # kB

    # importing tune_mnist (torch) peaks higher than the fit: start the peak from now
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    before = peak()
    fit_predict(SVMConfig("mnist", kernel, train_samples=n), data, backend, budget=2**50)
    print(json.dumps({"before": before, "peak": peak()}))
    """
)


def measure(n: int, n_test: int, backend: str, kernel: str) -> dict:
    """Peak RSS (VmHWM) before and after one fit and prediction, in a fresh process."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(n), str(n_test), backend, kernel],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="resets the peak RSS through /proc (Linux)"
)
@pytest.mark.parametrize(
    ("n", "n_test", "backend", "kernel"),
    [
        (3000, 2000, "precomputed", "rbf"),  # the training kernel dominates
        (1000, 500, "precomputed", "poly"),  # small: the fixed part dominates
        (2000, 1000, "libsvm", "rbf"),  # features, cache and support vectors
    ],
)
def test_estimate_is_within_the_margin_of_the_measured_peak(n, n_test, backend, kernel):
    measured = measure(n, n_test, backend, kernel)
    estimate = estimate_memory(backend, n, n_test, 784)
    increase = measured["peak"] - measured["before"]
    beyond_process = estimate.bytes - estimate.process
    assert abs(beyond_process - increase) <= RELATIVE * increase + FIXED, (
        f"estimated {beyond_process / MiB:.0f} MiB, measured {increase / MiB:.0f} MiB"
    )
    assert estimate.bytes >= measured["peak"]  # the whole estimate bounds the process


def test_the_documented_sizes():
    full = estimate_memory("precomputed", 60_000, 10_000, 784)
    assert full.kernel / GiB == pytest.approx(26.8, abs=0.05)
    assert estimate_memory("precomputed", 10_000, 10_000, 784).kernel / 1e9 == 0.8
    libsvm = estimate_memory("libsvm", 60_000, 10_000, 784)
    assert libsvm.kernel == 0 and libsvm.cache == DEFAULT_CACHE_MB * MiB
    assert libsvm.bytes < 2 * GiB
    # a small problem's cache is bounded by all of Q (n^2 float32), not by cache_size
    assert estimate_memory("libsvm", 100, 50, 784).cache == 100 * 100 * 4


@pytest.fixture(scope="module")
def sample():
    """Real digits (the bundled sample): 300 of them are a non-separable problem."""
    return load_dataset("mnist", smoke=True)


def test_auto_chooses_precomputed_within_the_budget_else_libsvm(sample):
    trial = SVMConfig(dataset="mnist", kernel="rbf", train_samples=300)
    sizes = (300, len(sample.test_labels), 784)
    needed = estimate_memory("precomputed", *sizes).bytes
    fits, _ = fit_predict(trial, sample, "auto", budget=needed)
    assert fits.backend == "precomputed" and fits.memory_budget_bytes == needed
    assert (
        fits.backend_reason.startswith("auto: precomputed needs")
        and "within" in fits.backend_reason
    )
    over, over_predicted = fit_predict(trial, sample, "auto", budget=needed - 1)
    assert over.backend == "libsvm" and "beyond" in over.backend_reason
    # the budget left beyond libsvm's own needs, capped by all of Q (300^2 float32: 1 MB)
    assert over.cache_size_mb == 1 and over.memory_estimate_bytes <= needed
    assert np.array_equal(over_predicted, fit_predict(trial, sample, "precomputed")[1])


@pytest.mark.parametrize("kernel", ["rbf", "poly"])
def test_predictions_identical_across_backends(sample, kernel):
    trial = SVMConfig(dataset="mnist", kernel=kernel, train_samples=250)
    predicted = {
        backend: fit_predict(trial, sample, backend)[1]
        for backend in ("precomputed", "libsvm", "auto")
    }
    small = fit_predict(trial, sample, "auto", budget=GiB // 2)  # forced onto libsvm
    assert small[0].backend == "libsvm"
    assert all(np.array_equal(p, predicted["libsvm"]) for p in [*predicted.values(), small[1]])


def test_precomputed_predicts_in_blocks_like_one_matrix(sample, monkeypatch):
    trial = SVMConfig(dataset="mnist", kernel="rbf", train_samples=200)
    whole = fit_predict(trial, sample, "precomputed")[1]
    monkeypatch.setattr("tune_mnist.train.svm.PREDICT_ROWS", 64)  # 8 blocks, a ragged last one
    assert np.array_equal(fit_predict(trial, sample, "precomputed")[1], whole)


def test_a_trial_asked_for_is_what_the_trial_then_chooses():
    sizes = (60_000, 10_000, 784)
    node = int(22.1 * GiB)
    asked = request_memory("auto", *sizes, node)
    assert asked.backend == "libsvm" and asked.fits
    # half of what the node has beyond libsvm's own needs: another trial still fits beside
    assert asked.estimate.bytes < node / 2 + 2 * GiB
    again = choose_backend("auto", *sizes, asked.estimate.bytes)  # inside the trial
    assert (again.backend, again.cache_mb) == (asked.backend, asked.cache_mb)
    small = request_memory("auto", 10_000, 10_000, 784, node)
    assert small.backend == "precomputed"
    assert (
        choose_backend("auto", 10_000, 10_000, 784, small.estimate.bytes).backend == "precomputed"
    )


def nodes(memory_gib: float) -> pd.DataFrame:
    return pd.DataFrame(
        [{"node_id": "n1", "address": "a", "hostname": "h", "cpus": 2.0, "gpus": 0.0,
          "memory": memory_gib * GiB, "custom": {}}]
    )  # fmt: skip


def test_explicit_precomputed_that_fits_no_node_is_refused_with_the_numbers():
    with pytest.raises(TuneMnistError) as refused:
        plan("svm", nodes(22.1), gpu=0, cpu=1, gpu_explicit=False, svm_cpus=1,
             svm_resource="svm_worker", svm_backend="precomputed",
             svm_trials={("mnist", 60_000): (60_000, 10_000, 784)})  # fmt: skip
    assert str(refused.value) == (
        "--svm-backend precomputed needs 28.2 GiB for 60,000 images of mnist; this machine "
        "has 22.1 GiB available: use --svm-backend auto or libsvm"
    )
    placed = plan("svm", nodes(22.1), gpu=0, cpu=1, gpu_explicit=False, svm_cpus=1,
                  svm_resource="svm_worker", svm_backend="auto",
                  svm_trials={("mnist", 60_000): (60_000, 10_000, 784)})  # fmt: skip
    asks = placed.asks_for({"dataset": "mnist", "train_samples": 60_000})
    assert asks["cpu"] == 1 and 1 * GiB < asks["memory"] < 22.1 * GiB
    assert "GiB of memory" in placed.describe()


# ------------------------------------------------------------ on a real local Ray

TWO_SVMS = dict(
    trainable="svm",
    fixed={"train_samples": 80, "dataset": "mnist"},
    grid={"kernel": ["rbf", "poly"]},
)


def tiny_request(n_train: int = 80, n_test: int = 40) -> int:
    return estimate_memory("precomputed", n_train, n_test, 784).bytes


@pytest.fixture(scope="module")
def ray_with_little_memory():
    """A real local Ray with 2 CPUs whose `memory` holds one tiny SVM trial, not two."""
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        _memory=int(1.5 * tiny_request()),
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
    )
    yield
    ray.shutdown()


def test_ray_runs_one_svm_trial_at_a_time_when_memory_holds_one(
    ray_with_little_memory, tmp_path, tiny_data
):
    spec = load_space(write_space(tmp_path, **TWO_SVMS))
    result = run_sweep(spec, SweepSettings(data_dir=str(tiny_data)))  # 2 CPUs: 2 could run
    frame = result.results.sort_values("started_at")
    assert len(frame) == 2 and set(frame["status"]) == {"finished"}
    assert result.peak_running == 1
    first, second = frame.iloc[0], frame.iloc[1]
    assert first["finished_at"] <= second["started_at"]
    # each trial's budget was its request, and auto ran precomputed within it
    assert (frame["memory_budget_bytes"] == tiny_request()).all()
    assert (frame["backend"] == "precomputed").all()


def test_cli_refuses_a_trial_no_node_can_hold(ray_with_little_memory, tmp_path):
    data = write_dataset(tmp_path / "data" / "mnist", n_train=8000, n_test=40).parent
    space = write_space(tmp_path, name="big", trainable="svm",
                        fixed={"train_samples": 8000, "dataset": "mnist"},
                        grid={"kernel": ["rbf"]})  # fmt: skip
    storage = tmp_path / "results"
    result = CliRunner().invoke(
        app,
        ["sweep", str(space), "--data-dir", str(data), "--storage-path", str(storage),
         "--svm-backend", "precomputed"],
    )  # fmt: skip
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    needed = estimate_memory("precomputed", 8000, 40, 784).bytes / GiB
    assert lines[-1].startswith(
        f"error: --svm-backend precomputed needs {needed:.1f} GiB for 8,000"
    )
    assert lines[-1].endswith("available: use --svm-backend auto or libsvm")
    assert not (storage / "big").exists()


def test_auto_fits_every_budget_that_holds_libsvm_itself():
    """The cache is rounded down to whole MB: a budget never loses a trial by rounding
    (seen: 60,000 images refused with 'needs 8.7 GiB' on a 15.9 GiB node)."""
    base = estimate_memory("libsvm", 60000, 10000, 784, cache_mb=0).bytes
    budgets = range(base + 200 * 2**20, 24 * 2**30, 7_777_777)
    refused = [b for b in budgets if not request_memory("auto", 60000, 10000, 784, b).fits]
    assert refused == []
