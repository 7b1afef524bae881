"""The Gram matrix shared between an SVM sweep's kernels (gram.py): the same kernels as
scikit-learn, plain SVC's predictions, shared on a real local Ray, and its memory."""

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
from sklearn.metrics.pairwise import pairwise_kernels
from sklearn.svm import SVC

from tune_mnist import load_space
from tune_mnist.run.sweep import SweepSettings, run_sweep
from tune_mnist.spec.configs import SVMConfig
from tune_mnist.store.experiment import read_predictions
from tune_mnist.train.data import load_dataset
from tune_mnist.train.gram import gram_matrix, kernel_from_gram, populated, share_grams, shareable
from tune_mnist.train.svm import MiB, estimate_memory, fit_predict, kernel_params, svm_features

from ..conftest import write_dataset, write_space

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ["rbf", "poly", "linear", "sigmoid"]


@pytest.fixture(scope="module")
def sample():
    """Real digits (the bundled sample): 300 of them are a non-separable problem."""
    return load_dataset("mnist", smoke=True)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("gamma", ["scale", 0.02])
def test_kernels_from_the_gram_are_sklearns_to_the_bit(sample, kernel, gamma):
    x = svm_features(sample.train_images[:300])
    params = kernel_params(SVMConfig("mnist", kernel, train_samples=300, gamma=gamma), x)
    ours = kernel_from_gram(kernel, gram_matrix(x), x, params)
    assert np.array_equal(ours, pairwise_kernels(x, metric=kernel, **params))


@pytest.mark.parametrize("kernel", KERNELS)
def test_predictions_from_the_shared_gram_are_plain_svcs(sample, kernel):
    n = 300
    trial = SVMConfig("mnist", kernel, train_samples=n)  # gamma="scale", SVC's default
    x = svm_features(sample.train_images[:n])
    gram = gram_matrix(x)
    gram.flags.writeable = False  # as it arrives from the object store
    result, predicted = fit_predict(trial, sample, "precomputed", gram=gram)
    plain = SVC(kernel=kernel).fit(
        sample.train_images[:n].reshape(n, -1) / 255, sample.train_labels[:n]
    )
    expected = plain.predict(sample.test_images.reshape(len(sample.test_images), -1) / 255)
    assert result.shared_gram and result.backend == "precomputed"
    assert np.array_equal(predicted, expected)
    assert result.n_support == plain.n_support_.sum()
    # gamma="scale" is 1 / (n_features * X.var()), as SVC resolves it
    if kernel != "linear":
        assert kernel_params(trial, x)["gamma"] == pytest.approx(plain._gamma, rel=1e-15)


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernels_made_in_place_are_the_same_and_leave_no_second_matrix(sample, kernel):
    x = svm_features(sample.train_images[:300])
    params = kernel_params(SVMConfig("mnist", kernel, train_samples=300), x)
    gram = gram_matrix(x)
    made = kernel_from_gram(kernel, gram, x, params, in_place=True)
    assert made is gram and np.array_equal(made, pairwise_kernels(x, metric=kernel, **params))


@pytest.mark.parametrize("kernel", ["rbf", "poly"])
def test_large_grams_are_made_in_blocks_and_predict_as_plain_svc(sample, kernel, monkeypatch):
    # numpy's one-call X @ X.T crashed OpenBLAS at 40,000 x 784 (numpy issue 19685):
    # above ONE_CALL_ROWS the Gram is made BLOCK_ROWS rows at a time, here from 50
    from tune_mnist.train import gram as gram_module

    monkeypatch.setattr(gram_module, "ONE_CALL_ROWS", 50)
    monkeypatch.setattr(gram_module, "BLOCK_ROWS", 16)
    n = 300
    x = svm_features(sample.train_images[:n])
    blocked = gram_module.gram_matrix(x)
    assert blocked.shape == (n, n) and np.allclose(blocked, x @ x.T, rtol=1e-13, atol=0)
    result, predicted = fit_predict(
        SVMConfig("mnist", kernel, train_samples=n), sample, "precomputed"
    )
    plain = SVC(kernel=kernel).fit(x, sample.train_labels[:n])
    assert not result.shared_gram and result.n_support == plain.n_support_.sum()
    assert np.array_equal(predicted, plain.predict(svm_features(sample.test_images)))


def test_a_gram_of_other_images_or_another_backend_is_not_used(sample):
    trial = SVMConfig("mnist", "rbf", train_samples=200)
    gram = gram_matrix(svm_features(sample.train_images[:100]))  # 100 images, not 200
    assert not fit_predict(trial, sample, "precomputed", gram=gram)[0].shared_gram
    right = gram_matrix(svm_features(sample.train_images[:200]))
    assert not fit_predict(trial, sample, "libsvm", gram=right)[0].shared_gram


def test_the_shared_gram_is_counted_apart_from_the_trials_own_peak():
    alone = estimate_memory("precomputed", 10_000, 10_000, 784)
    shared = estimate_memory("precomputed", 10_000, 10_000, 784, shared_gram=True)
    assert alone.shared == 0 and shared.shared == 10_000**2 * 8  # 0.8 GB in the object store
    assert shared.bytes == alone.bytes  # the trial still makes its own n x n kernel from it
    assert estimate_memory("libsvm", 10_000, 10_000, 784, shared_gram=True).shared == 0


MEASURE = textwrap.dedent(
    """
    import json, sys
    import sklearn.metrics.pairwise, sklearn.svm
    from tests.conftest import patterned_split
    from tune_mnist.spec.configs import SVMConfig
    from tune_mnist.train.data import Dataset
    from tune_mnist.train.gram import gram_matrix
    from tune_mnist.train.svm import fit_predict, svm_features

    n, n_test = int(sys.argv[1]), int(sys.argv[2])
    (xs, ys), (xt, yt) = patterned_split(n, 0), patterned_split(n_test, 1)
    data = Dataset("mnist", xs, ys, xt, yt, "generated")
    gram = gram_matrix(svm_features(xs))  # resident before the baseline, as a mapped object
    gram.flags.writeable = False

    def peak():
        status = open("/proc/self/status").read()
        return int(status.split("VmHWM:")[1].split()[0]) * 1024  # kB

    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    before = peak()
    result, _ = fit_predict(SVMConfig("mnist", "rbf", train_samples=n), data, "precomputed",
                            budget=2**50, gram=gram)
    print(json.dumps({"before": before, "peak": peak(), "shared": result.shared_gram}))
    """
)


@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="resets the peak RSS through /proc (Linux)"
)
def test_a_trial_reading_a_shared_gram_stays_within_its_estimate():
    n, n_test = 2500, 1000
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(n), str(n_test)],
        capture_output=True, text=True, check=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    estimate = estimate_memory("precomputed", n, n_test, 784, shared_gram=True)
    increase = measured["peak"] - measured["before"]
    beyond_process = estimate.bytes - estimate.process
    assert measured["shared"]
    # the margin of tests/test_svm_memory.py: 30% of the increase, plus 40 MiB
    assert abs(beyond_process - increase) <= 0.3 * increase + 40 * MiB, (
        f"estimated {beyond_process / MiB:.0f} MiB, measured {increase / MiB:.0f} MiB"
    )


# ------------------------------------------------------------ on a real local Ray

SVMS = dict(
    trainable="svm",
    fixed={"train_samples": 150},
    grid={"dataset": ["mnist", "fashion-mnist"], "kernel": ["rbf", "poly"]},
)


@pytest.fixture(scope="module")
def small_store_ray():
    """A real local Ray with 2 CPUs and a 1 GiB object store, stopped afterwards."""
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        object_store_memory=2**30,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("gramdata")
    for name in ("mnist", "fashion-mnist"):
        write_dataset(root / name, n_train=150, n_test=60)
    return root


@pytest.fixture(scope="module")
def swept(small_store_ray, tmp_path_factory, data_root):
    folder = tmp_path_factory.mktemp("gramsweep")
    spec = load_space(write_space(folder, name="grams", **SVMS))
    events = []
    result = run_sweep(
        spec,
        SweepSettings(data_dir=str(data_root), storage_path=str(folder / "runs")),
        on_event=events.append,
    )
    return result, events


def test_a_sweep_shares_one_gram_per_dataset_and_predicts_as_plain_svc(swept, data_root):
    result, events = swept
    frame = result.results
    assert set(frame["status"]) == {"finished"} and len(frame) == 4
    assert frame["shared_gram"].all() and (frame["backend"] == "precomputed").all()
    said = [e for e in events if e.startswith("SVM Gram matrices:")]
    assert len(said) == 1 and "mnist (150 images)" in said[0]
    assert "fashion-mnist (150 images)" in said[0]
    for _, row in frame.iterrows():
        data = load_dataset(row["dataset"], data_root)
        plain = SVC(kernel=row["kernel"]).fit(
            data.train_images.reshape(150, -1) / 255, data.train_labels
        )
        expected = plain.predict(data.test_images.reshape(60, -1) / 255)
        assert np.array_equal(read_predictions(Path(row["trial_dir"])).predicted, expected)


def test_a_gram_is_shared_only_where_two_precomputed_trials_fit_the_same_images(tmp_path):
    from tune_mnist.run.cluster import plan, svm_sizes

    nodes = pd.DataFrame(
        [{"node_id": "n1", "address": "a", "hostname": "h", "cpus": 2.0, "gpus": 0.0,
          "memory": 20 * 2**30, "custom": {}}]
    )  # fmt: skip

    def shared(name, backend="auto", **space):
        spec = load_space(write_space(tmp_path, name=name, trainable="svm", **space))
        placement = plan("svm", nodes, gpu=0, cpu=1, gpu_explicit=False, svm_cpus=1,
                         svm_resource="svm_worker", svm_backend=backend,
                         svm_trials=svm_sizes(spec))  # fmt: skip
        return shareable(spec, placement)

    q1b = {"fixed": {"train_samples": 10_000}, "grid": SVMS["grid"]}
    assert shared("q1b", **q1b) == {("mnist", 10_000): 10_000, ("fashion-mnist", 10_000): 10_000}
    assert shared("plain", "libsvm", **q1b) == {}  # libsvm computes kernels itself
    one_each = {"fixed": {"train_samples": 10_000}, "grid": {**SVMS["grid"], "kernel": ["rbf"]}}
    assert shared("one", **one_each) == {}
    # all 60,000 images: auto runs libsvm (precomputed needs 28 GiB): nothing to share
    assert shared("full", **{**q1b, "fixed": {"train_samples": 60_000}}) == {}


def test_grams_that_would_crowd_the_object_store_are_not_shared(small_store_ray, tmp_path):
    from tune_mnist.run.cluster import trial_resources

    big = write_dataset(tmp_path / "big" / "mnist", n_train=9000, n_test=20).parent
    spec = load_space(write_space(tmp_path, name="big", trainable="svm",
                                  fixed={"train_samples": 9000, "dataset": "mnist"},
                                  grid={"kernel": ["rbf", "poly"]}))  # fmt: skip
    datasets = {"mnist": load_dataset("mnist", big)}
    settings = SweepSettings(data_dir=str(big))
    placement = trial_resources(spec, settings, {"mnist": (9000, 20, 784)})
    assert placement.svm[("mnist", 9000)].backend == "precomputed"
    # 9,000^2 x 8 bytes = 0.6 GiB: more than half of the fixture's 1 GiB object store
    shared = share_grams(spec, datasets, placement)
    assert shared.refs == {} and shared.reason.startswith("none: they need 0.6 GiB")


def test_grams_of_one_size_made_in_one_buffer_each_keep_their_own_values(small_store_ray, tmp_path):
    import ray

    from tune_mnist.run.cluster import trial_resources

    spec = load_space(write_space(tmp_path, name="both", **SVMS))
    datasets = {name: load_dataset(name, smoke=True) for name in ("mnist", "fashion-mnist")}
    settings = SweepSettings(smoke=True)
    placement = trial_resources(spec, settings, {n: (150, 60, 784) for n in datasets})
    shared = share_grams(spec, datasets, placement)
    assert len(shared.refs) == 2
    for name, data in datasets.items():  # different images: the store holds each one's own
        expected = gram_matrix(svm_features(data.train_images[:150]))
        assert np.array_equal(ray.get(shared.refs[(name, 150)]), expected)


def resident_bytes() -> int:
    """This process's resident memory, from /proc (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads Linux's /proc")
def test_a_populated_matrix_is_in_memory_before_it_is_written():
    n = 2048  # 32 MiB
    before = resident_bytes()
    matrix = populated(n)
    grown = resident_bytes() - before
    assert grown >= 0.9 * n * n * 8  # np.zeros((n, n)) would map no page until written
    assert matrix.shape == (n, n) and matrix.dtype == np.float64 and matrix.flags.writeable
    assert not matrix.any()
    matrix[-1, -1] = 1.0  # writable to its last byte
    assert matrix.sum() == 1.0
    assert populated(0).shape == (0, 0)
