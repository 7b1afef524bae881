"""The Gram matrix G = X·Xᵀ of an SVM space's training images, computed once per dataset by
the driver and shared by that dataset's SVM trials through Ray's object store.

Every SVC kernel is a function of G and of the rows' squared norms:

    linear   K = G
    poly     K = (gamma·G + coef0) ** degree
    sigmoid  K = tanh(gamma·G + coef0)
    rbf      K = exp(-gamma · max(|x|² + |y|² - 2G, 0)), zero distance on the diagonal

q1b fits RBF and Poly on the same 10,000 images of each dataset, so each trial used to
compute the same G (about half of a trial's BLAS work, on one thread: Ray pins a 1-CPU
trial to one). Here the driver computes it once per dataset with every core's BLAS, puts
it in Ray's object store, and each trial derives its own kernel from it with the same
arithmetic, in the same order, as scikit-learn's `pairwise_kernels` (kernel_from_gram).
The fit is the same libsvm solver on the same kernel values, so the predictions are plain
SVC's (tests/test_gram.py checks every kernel against `SVC(kernel=k)`).

Why the object store, not a per-node file cache: the driver already shares the datasets
that way; Ray copies an object to a node once, however many of its trials read it, and
trials map it read-only without a copy; it is freed when the sweep ends, and nothing is
left on disk to go stale. A file cache would have the first trial of each node compute G
on its one thread while the others wait.

Why train x train only, not test x train: a trial predicts from the support vectors'
kernel columns alone (svm._fit_precomputed), n_test x n_sv of them; RBF and Poly together
need 2 x n_sv/n of a full test Gram (about 0.6-0.9 at q1b's sizes), so sharing the full
one would save no arithmetic and cost n_test x n x 8 bytes more of the object store.

Memory: G takes n x n x 8 bytes (0.8 GB at 10,000 images) of the object store, once per
node that runs a trial of its dataset. Ray reserves the object store apart from the
`memory` resource trials ask for (memory = available - object store), so G is counted
there: it is shared only when every Gram of the sweep fits in SHARE_FRACTION of the
smallest object store among the nodes that run the trials. A trial's own memory does not
change (svm.estimate_memory: it still makes its own n x n kernel from G); the shared bytes
are in its estimate's `shared` field.
"""

from __future__ import annotations

import mmap
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tune_mnist.spec.configs import KERNELS  # every SVC kernel but a callable
from tune_mnist.train.data import Dataset

SHARE_FRACTION = 0.5  # of a node's object store that the sweep's Gram matrices may fill


# Above this many rows, X @ X.T (numpy's one-call SYRK path, as scikit-learn's kernels run
# it) can crash OpenBLAS (numpy issue 19685): 40,000 x 784 did, here. Larger Grams are
# made a block of rows at a time (one GEMM each), which never takes that path.
ONE_CALL_ROWS = 16_384
BLOCK_ROWS = 4_096


def populated(n: int) -> np.ndarray:
    """A new n x n float64 array (zeros), its pages mapped in one system call (Linux's
    MAP_POPULATE) rather than one fault at a time as it is first written.

    Why: numpy asks for transparent huge pages for large arrays, and on the 2-core VMs
    measured (benchmarks/RESULTS.md) the first write into a new 800 MB array took 1.9-4.0 s,
    against 0.3-0.4 s to populate it; a Gram or kernel written into it then takes 0.3-0.6 s
    longer on small pages. Elsewhere (no MAP_POPULATE): numpy's own array.
    """
    if not hasattr(mmap, "MAP_POPULATE") or n == 0:
        return np.zeros((n, n))
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE
    # the array holds the mapping; it is unmapped when the last view of it goes
    return np.frombuffer(mmap.mmap(-1, n * n * 8, flags=flags), dtype=np.float64).reshape(n, n)


def gram_matrix(features: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """X·Xᵀ of float64 features: as scikit-learn's kernels compute it (X @ X.T) up to
    ONE_CALL_ROWS rows; above, BLOCK_ROWS rows at a time (whole rows: computing only the
    upper triangle and mirroring it measured slower, 90 s against 75 s for a 40,000-image
    fit), whose values may differ from one call's in the last bits (libsvm's own kernel
    differs from both in the same way). `out`: an n x n float64 array to write it into."""
    n = len(features)
    gram = populated(n) if out is None else out
    if n <= ONE_CALL_ROWS:  # X @ X.T: the same BLAS call
        return np.matmul(features, features.T, out=gram)
    for start in range(0, n, BLOCK_ROWS):
        rows = slice(start, start + BLOCK_ROWS)
        np.matmul(features[rows], features.T, out=gram[rows])
    return gram


def kernel_from_gram(
    kernel: str, gram: np.ndarray, features: np.ndarray, params: dict, in_place: bool = False
):
    """The training kernel `pairwise_kernels(features, metric=kernel, **params)` computes,
    derived from `gram` (= gram_matrix(features)) in the same operations and order.

    Returns a new array and never writes `gram` (read-only, shared), unless `in_place`:
    then `gram` becomes the kernel, and no second n x n array is made.
    """
    if kernel not in KERNELS:
        raise ValueError(f"no Gram form for kernel {kernel!r}")
    k = gram if in_place else populated(len(gram))
    if kernel == "linear":
        if k is not gram:
            np.copyto(k, gram)
        return k
    if kernel in ("poly", "sigmoid"):
        np.multiply(gram, params["gamma"], out=k)  # sklearn: K = X @ Y.T; K *= gamma
        k += params["coef0"]
        if kernel == "poly":
            k **= params["degree"]
        else:
            np.tanh(k, out=k)
        return k
    from sklearn.utils.extmath import row_norms

    # sklearn's _euclidean_distances for float64 X is Y, then rbf_kernel's exp
    norms = row_norms(features, squared=True)[:, np.newaxis]
    np.multiply(gram, -2, out=k)
    k += norms
    k += norms.T
    np.maximum(k, 0, out=k)
    np.fill_diagonal(k, 0)
    k *= -params["gamma"]
    np.exp(k, out=k)
    return k


@dataclass(frozen=True)
class SharedGrams:
    """The Gram matrices a sweep shares: (dataset, train_samples) -> a Ray ObjectRef of the
    n x n float64 matrix, and what computing them took."""

    refs: dict[tuple[str, int], Any] = field(default_factory=dict)
    seconds: float = 0.0  # computing them in the driver, and putting them in the store
    bytes: int = 0  # of the object store, per node that runs all the datasets' trials
    reason: str = ""  # why these (or none) are shared

    def describe(self) -> str:
        return f"SVM Gram matrices: {self.reason}"


def gram_bytes(n_train: int) -> int:
    """Bytes of one shared n x n float64 Gram matrix."""
    return n_train * n_train * 8


def shareable(spec, placement) -> dict[tuple[str, int], int]:
    """(dataset, train_samples) -> images, for the SVM configurations whose Gram is worth
    sharing: at least two trials fit them with the precomputed backend."""
    if spec.trainable != "svm" or not placement.svm:
        return {}
    counts = Counter(
        (t.dataset, t.train_samples)
        for t in spec.trials
        if t.kernel in KERNELS and (t.dataset, t.train_samples) in placement.svm
    )
    return {
        key: placement.svm[key].estimate.n_train
        for key, count in counts.items()
        if count >= 2 and placement.svm[key].backend == "precomputed"
    }


def object_store_bytes(node_ids: list[str]) -> int:
    """The smallest object store among these nodes of the connected cluster (bytes)."""
    import ray

    stores = [
        node["Resources"].get("object_store_memory", 0)
        for node in ray.nodes()
        if node["Alive"] and node["NodeID"] in node_ids
    ]
    return int(min(stores, default=0))


def share_grams(spec, datasets: dict[str, Dataset], placement) -> SharedGrams:
    """Compute each shareable configuration's Gram matrix once, here, and put it in Ray's
    object store; none when they would not fit SHARE_FRACTION of the object store."""
    if spec.space.validation is not None:  # each trial trains on what its seed leaves
        return SharedGrams(reason="none (a validation split: each seed's images differ)")
    wanted = shareable(spec, placement)
    if not wanted:
        return SharedGrams(reason="none (no two precomputed SVM trials on the same images)")
    needed = sum(gram_bytes(n) for n in wanted.values())
    room = int(SHARE_FRACTION * object_store_bytes(placement.nodes))
    gib = 2**30
    if needed > room:
        return SharedGrams(
            reason=f"none: they need {needed / gib:.1f} GiB, more than {SHARE_FRACTION:.0%} "
            f"of the smallest object store ({room / gib:.1f} GiB); each trial computes its own"
        )
    import ray

    # Not overlapped with Ray's start in a thread: OpenBLAS's fork handler deadlocked with a
    # running BLAS call when ray.init forked its processes (tried: the sweep hung).
    start, refs, buffer = time.perf_counter(), {}, None
    for (name, samples), n in wanted.items():
        # One buffer for every Gram of a size: the store copies each, and writing the next
        # into pages already mapped spares mapping 8n² more bytes (see populated)
        if buffer is None or buffer.shape != (n, n):
            buffer = None  # the old one freed before the new one is made
            buffer = populated(n)
        features = svm_features(datasets[name].train_images[:n])
        refs[(name, samples)] = ray.put(gram_matrix(features, out=buffer))
    del buffer  # the store holds them now
    seconds = time.perf_counter() - start
    shown = ", ".join(f"{name} ({n:,} images)" for (name, _), n in wanted.items())
    reason = f"{shown}: {needed / gib:.1f} GiB in the object store, {seconds:.1f} s"
    return SharedGrams(refs, seconds, needed, reason)


def svm_features(images: np.ndarray) -> np.ndarray:
    """Flattened pixels scaled to [0, 1], float64 as libsvm works in double anyway."""
    features = images.reshape(len(images), -1).astype(np.float64)
    features /= 255.0  # in place: one float64 copy at a time, not two
    return features
