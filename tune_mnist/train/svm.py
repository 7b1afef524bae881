"""SVM baselines: scikit-learn's SVC on flattened pixels. No Ray in here.

The `precomputed` backend computes the kernel matrices with multithreaded BLAS
(sklearn.metrics.pairwise_kernels) and fits `SVC(kernel="precomputed")`: the same libsvm
solver on the same kernel values, so the same model and the same predictions as plain
`SVC(kernel=...)` (checked on all of q1b, see benchmarks/RESULTS.md), several times faster.
For prediction only the support vectors' kernel columns are computed: libsvm reads no
others. `libsvm` is plain SVC; `intelex` is scikit-learn-intelex, a different solver whose
accuracy can differ (opt in, `pip install scikit-learn-intelex`).

`precomputed` holds the n x n float64 training kernel: 0.8 GB at 10,000 images, 26.8 GiB
at 60,000. `auto` (the default) runs it when its memory estimate (estimate_memory) fits
the trial's budget, else plain libsvm with a kernel cache sized from the budget: the same
solver either way, so the same predictions.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np

from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.configs import DEFAULT_SVM_BACKEND, SVM_BACKENDS, SVMConfig
from tune_mnist.train.data import Dataset
from tune_mnist.train.gram import gram_matrix, kernel_from_gram, svm_features

MiB, GiB = 2**20, 2**30
# A trial's process before it fits anything: with numpy, scipy, sklearn, torch, pandas and
# Ray imported it measured 898 MiB RSS, 500 MiB of it its own (USS); the rest is shared
# libraries, whose pages one node holds once for all its workers.
PROCESS_BYTES = 768 * MiB
DEFAULT_CACHE_MB = 200  # SVC's cache_size
SAFETY = 0.8  # of the available memory: the budget of a trial that Ray reserved none for
PREDICT_ROWS = 1000  # test images per block of the precomputed test kernel
FULL_SIZES = (60_000, 10_000, 784)  # train, test images and pixels of both datasets


@dataclass(frozen=True)
class MemoryEstimate:
    """An upper bound on one SVM trial's peak memory, in bytes, and its parts.

    Fitting holds the features, the training kernel (precomputed only) and libsvm's kernel
    cache (at most `cache_size`, at most all of Q: n^2 float32); predicting holds the
    features, a copy of the support vectors and (precomputed) one block of test kernel rows
    twice (the columns computed, and the full-width rows libsvm reads). Every training
    image is assumed to become a support vector: the worst case.
    """

    backend: str
    n_train: int
    features: int  # train and test pixels as float64
    kernel: int  # the n x n float64 training kernel; 0 for libsvm
    cache: int  # libsvm's kernel cache, as much as it can fill
    support: int  # the support vectors' pixels, copied (n_sv <= n)
    test_kernel: int  # precomputed: PREDICT_ROWS x n, twice; 0 for libsvm
    process: int = PROCESS_BYTES
    # the n x n Gram matrix read from Ray's object store (gram.py), 0 if none: counted once
    # per node in the object store, which Ray reserves apart from `memory`, so not in `bytes`
    shared: int = 0

    @property
    def fit(self) -> int:
        """Bytes beyond the features while fitting."""
        return self.kernel + self.cache + (0 if self.kernel else self.support)

    @property
    def predict(self) -> int:
        """Bytes beyond the features while predicting."""
        return self.support + self.test_kernel

    @property
    def bytes(self) -> int:
        """The peak: the process, the features, and the larger of fitting and predicting."""
        return self.process + self.features + max(self.fit, self.predict)


def estimate_memory(
    backend: str,
    n_train: int,
    n_test: int,
    n_features: int,
    cache_mb: int = DEFAULT_CACHE_MB,
    shared_gram: bool = False,
) -> MemoryEstimate:
    """The peak memory of fitting `n_train` images and predicting `n_test` with `backend`.

    `shared_gram`: a precomputed trial reads its Gram matrix from the object store (gram.py);
    it still makes its own n x n kernel from it, so only `shared` changes.
    `intelex` is estimated as libsvm (an assumption: oneDAL's own buffers are not modelled).
    """
    if backend not in SVM_BACKENDS or backend == "auto":
        raise TuneMnistError(f"no memory model for SVM backend {backend!r}")
    n, pixels = n_train, n_features * 8
    precomputed = backend == "precomputed"
    return MemoryEstimate(
        backend=backend,
        n_train=n,
        features=(n + n_test) * pixels,
        kernel=n * n * 8 if precomputed else 0,
        cache=min(cache_mb * MiB, n * n * 4),
        support=n * pixels,
        test_kernel=2 * min(n_test, PREDICT_ROWS) * n * 8 if precomputed else 0,
        shared=n * n * 8 if precomputed and shared_gram else 0,
    )


@dataclass(frozen=True)
class BackendChoice:
    """The backend a trial runs, its libsvm cache, its memory estimate and why."""

    backend: str
    cache_mb: int
    estimate: MemoryEstimate
    budget: int  # bytes the choice was made against
    reason: str

    @property
    def fits(self) -> bool:
        return self.estimate.bytes <= self.budget


def choose_backend(
    backend: str, n_train: int, n_test: int, n_features: int, budget: int
) -> BackendChoice:
    """The backend to run within `budget` bytes: `auto` picks precomputed when it fits,
    else libsvm with the budget left over as its cache (never more than all of Q).

    An explicit backend is kept (with plain SVC's cache) even when it does not fit:
    refusing it is the planner's job (cluster.plan), before any trial starts.
    """
    sizes, room = (n_train, n_test, n_features), f"the {_gib(budget)} budget"
    if backend != "auto":
        estimate = estimate_memory(backend, *sizes)
        fit = "within" if estimate.bytes <= budget else "beyond"
        reason = f"--svm-backend {backend}: needs {_gib(estimate.bytes)}, {fit} {room}"
        return BackendChoice(backend, DEFAULT_CACHE_MB, estimate, budget, reason)
    precomputed = estimate_memory("precomputed", *sizes)
    if precomputed.bytes <= budget:
        reason = f"auto: precomputed needs {_gib(precomputed.bytes)}, within {room}"
        return BackendChoice("precomputed", DEFAULT_CACHE_MB, precomputed, budget, reason)
    left = budget - estimate_memory("libsvm", *sizes, cache_mb=0).bytes
    # the whole Q matrix in float32 is all the cache libsvm can ever use
    cache_mb = max(1, min(math.ceil(n_train * n_train * 4 / MiB), int(left // MiB)))
    estimate = estimate_memory("libsvm", *sizes, cache_mb=cache_mb)
    reason = (
        f"auto: precomputed needs {_gib(precomputed.bytes)}, beyond {room}; libsvm with "
        f"a {cache_mb:,} MB cache needs {_gib(estimate.bytes)}"
    )
    return BackendChoice("libsvm", cache_mb, estimate, budget, reason)


def request_memory(
    backend: str, n_train: int, n_test: int, n_features: int, node_budget: int
) -> BackendChoice:
    """What one SVM trial should ask Ray for on a node with `node_budget` bytes.

    `auto` asks for precomputed's estimate where it fits; else for libsvm with a cache of
    half of what the node has beyond libsvm's own needs (at least SVC's 200 MB), so the
    node still holds another trial beside it. The trial, given its request as its budget,
    then chooses the same backend and cache (choose_backend).
    """
    sizes = (n_train, n_test, n_features)
    choice = choose_backend(backend, *sizes, node_budget)
    if backend != "auto" or choice.backend != "libsvm":
        return choice
    base = estimate_memory("libsvm", *sizes, cache_mb=0).bytes
    room = base + max(DEFAULT_CACHE_MB * MiB, (node_budget - base) // 2)
    asked = choose_backend("auto", *sizes, min(room, node_budget))
    precomputed = estimate_memory("precomputed", *sizes).bytes
    reason = (
        f"auto: precomputed needs {_gib(precomputed)}, beyond the node's "
        f"{_gib(node_budget)}; libsvm with a {asked.cache_mb:,} MB cache needs "
        f"{_gib(asked.estimate.bytes)}"
    )
    return replace(asked, reason=reason)


def _gib(n: float) -> str:
    return f"{n / GiB:.1f} GiB" if n >= 0.1 * GiB else f"{n / MiB:.0f} MiB"


def available_budget() -> int:
    """The budget of a trial without a Ray memory request: available memory x SAFETY."""
    import psutil

    return int(psutil.virtual_memory().available * SAFETY)


@dataclass
class SVMResult:
    """A fitted and tested SVC (plain types: Tune receives it through asdict)."""

    test_accuracy: float  # %, whole test set
    # fit only; for "precomputed", the training kernel matrix too (with shared_gram: the
    # kernel made from the shared Gram matrix, whose one computation is the sweep's)
    train_time_ms: float
    predict_time_ms: float  # predicting the whole test set (its kernel columns included)
    train_samples: int
    n_support: int  # support vectors
    backend: str  # the backend that ran ("auto" resolved)
    backend_reason: str = ""  # why it ran, with the estimate and the budget
    cache_size_mb: int = DEFAULT_CACHE_MB  # libsvm's kernel cache
    memory_estimate_bytes: int = 0  # estimate_memory for what ran
    memory_budget_bytes: int = 0  # the trial's Ray memory request, else available x SAFETY
    shared_gram: bool = False  # precomputed from the dataset's shared Gram matrix (gram.py)
    setup_time_ms: float = 0.0  # features and backend choice, before fitting
    # %, held-out training images (split.py), predicted with the test set (predict time
    # counts both); None without a validation split
    validation_accuracy: float | None = None


def kernel_params(trial: SVMConfig, x_train: np.ndarray) -> dict:
    """SVC's kernel parameters, resolved as SVC resolves them (gamma='scale' and 'auto')."""
    gamma = trial.gamma
    if gamma == "scale":
        gamma = 1.0 / (x_train.shape[1] * x_train.var())
    elif gamma == "auto":
        gamma = 1.0 / x_train.shape[1]
    return {
        "rbf": {"gamma": gamma},
        "poly": {"gamma": gamma, "degree": trial.degree, "coef0": 0.0},
        "sigmoid": {"gamma": gamma, "coef0": 0.0},
        "linear": {},
    }[trial.kernel]


def fit_svm(
    trial: SVMConfig, data: Dataset, backend: str = DEFAULT_SVM_BACKEND, budget: int | None = None
) -> SVMResult:
    """Fit SVC on the first `train_samples` images and test it on the whole test set."""
    return fit_predict(trial, data, backend, budget)[0]


def fit_predict(
    trial: SVMConfig,
    data: Dataset,
    backend: str,
    budget: int | None = None,
    gram: np.ndarray | None = None,
    validation=None,
) -> tuple[SVMResult, np.ndarray]:
    """fit_svm, and the predicted labels of the test set.

    `validation`: held-out training images (split.Holdout), predicted beside the test set;
    `data` is then the training images without them.

    `budget`: the bytes this trial may use (its Ray memory request); None: the available
    memory x SAFETY. `auto` chooses its backend against it (choose_backend).
    `gram`: X·Xᵀ of the first `train_samples` training images (gram.py), used by the
    precomputed backend instead of computing it; the other backends ignore it.
    """
    start = time.perf_counter()
    if backend not in SVM_BACKENDS:
        raise TuneMnistError(f"unknown SVM backend {backend!r}: expected one of {SVM_BACKENDS}")
    n = min(trial.train_samples, len(data.train_labels))
    pixels = int(np.prod(data.train_images.shape[1:]))
    budget = available_budget() if budget is None else int(budget)
    scored = data.test_images
    if validation is not None:
        scored = np.concatenate([data.test_images, validation.images])
    choice = choose_backend(backend, n, len(scored), pixels, budget)
    x_train, y_train = svm_features(data.train_images[:n]), data.train_labels[:n]
    x_test = svm_features(scored)
    # loaded here, so that the set-up time counts a worker's first import of scikit-learn
    import sklearn.metrics.pairwise
    import sklearn.svm  # noqa: F401

    # the shared Gram is of the dataset's first n images: not of those a split leaves
    use_gram = (
        choice.backend == "precomputed"
        and gram is not None
        and gram.shape == (n, n)
        and validation is None
    )
    setup_s = time.perf_counter() - start
    if choice.backend == "precomputed":
        fitted = _fit_precomputed(trial, x_train, y_train, x_test, gram if use_gram else None)
        predicted, svc, fit_s, predict_s = fitted
    else:
        fitted = _fit_plain(trial, x_train, y_train, x_test, choice.backend, choice.cache_mb)
        predicted, svc, fit_s, predict_s = fitted
    predicted, held = predicted[: len(data.test_labels)], predicted[len(data.test_labels) :]
    result = SVMResult(
        test_accuracy=100.0 * float(np.mean(predicted == data.test_labels)),
        train_time_ms=1000 * fit_s,
        predict_time_ms=1000 * predict_s,
        train_samples=n,
        n_support=int(svc.n_support_.sum()),
        backend=choice.backend,
        backend_reason=choice.reason,
        cache_size_mb=choice.cache_mb,
        memory_estimate_bytes=choice.estimate.bytes,
        memory_budget_bytes=budget,
        shared_gram=use_gram,
        setup_time_ms=1000 * setup_s,
        validation_accuracy=(
            100.0 * float(np.mean(held == validation.labels)) if validation is not None else None
        ),
    )
    return result, predicted


def _fit_precomputed(trial, x_train, y_train, x_test, gram=None):
    from sklearn.metrics.pairwise import pairwise_kernels
    from sklearn.svm import SVC

    params = kernel_params(trial, x_train)
    svc = SVC(kernel="precomputed", C=trial.C, random_state=trial.seed)
    start = time.perf_counter()
    if gram is not None:  # the same values from the Gram matrix the sweep shares (gram.py)
        kernel = kernel_from_gram(trial.kernel, gram, x_train, params)
    else:  # sklearn's values (every space kernel is in KERNELS), never its one-call X @ X.T
        kernel = kernel_from_gram(trial.kernel, gram_matrix(x_train), x_train, params, True)
    svc.fit(kernel, y_train)
    del kernel  # libsvm keeps what it needs; the n x n matrix is not needed to predict
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    support, x_support = svc.support_, x_train[svc.support_]
    predicted = []
    # libsvm takes full-width rows but reads only the support columns; a block of rows at a
    # time keeps the test kernel at PREDICT_ROWS x n (4.8 GB for all 10,000 at n = 60,000)
    # (one buffer for every block: its other columns stay zero, only the support ones change)
    k_test = np.zeros((min(PREDICT_ROWS, len(x_test)), len(x_train)))
    for rows in range(0, len(x_test), PREDICT_ROWS):
        block = x_test[rows : rows + PREDICT_ROWS]
        k_block = k_test[: len(block)]
        k_block[:, support] = pairwise_kernels(block, x_support, metric=trial.kernel, **params)
        predicted.append(svc.predict(k_block))
    return np.concatenate(predicted), svc, fit_s, time.perf_counter() - start


def _fit_plain(trial, x_train, y_train, x_test, backend, cache_mb=DEFAULT_CACHE_MB):
    if backend == "intelex":
        try:
            from sklearnex.svm import SVC
        except ImportError:
            raise TuneMnistError(
                "the intelex SVM backend needs scikit-learn-intelex: "
                "pip install scikit-learn-intelex"
            ) from None
    else:
        from sklearn.svm import SVC
    svc = SVC(
        kernel=trial.kernel,
        C=trial.C,
        gamma=trial.gamma,
        degree=trial.degree,
        cache_size=cache_mb,
        random_state=trial.seed,
    )
    start = time.perf_counter()
    svc.fit(x_train, y_train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    predicted = svc.predict(x_test)
    return predicted, svc, fit_s, time.perf_counter() - start
