"""SVM baselines: scikit-learn's SVC on flattened pixels. No Ray in here.

The default backend computes the kernel matrices with multithreaded BLAS
(sklearn.metrics.pairwise_kernels) and fits `SVC(kernel="precomputed")`: the same libsvm
solver on the same kernel values, so the same model and the same predictions as plain
`SVC(kernel=...)` (checked on all of q1b, see benchmarks/RESULTS.md), several times faster.
For prediction only the support vectors' kernel columns are computed: libsvm reads no
others. `libsvm` is plain SVC; `intelex` is scikit-learn-intelex, a different solver whose
accuracy can differ (opt in, `pip install scikit-learn-intelex`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .configs import DEFAULT_SVM_BACKEND, SVM_BACKENDS, SVMConfig
from .data import Dataset
from .errors import TuneMnistError


@dataclass
class SVMResult:
    """A fitted and tested SVC."""

    test_accuracy: float  # %, whole test set
    train_time_ms: float  # fit only; for "precomputed", the training kernel matrix too
    predict_time_ms: float  # predicting the whole test set (its kernel columns included)
    train_samples: int
    n_support: int  # support vectors
    backend: str


def svm_features(images: np.ndarray) -> np.ndarray:
    """Flattened pixels scaled to [0, 1], float64 as libsvm works in double anyway."""
    return images.reshape(len(images), -1).astype(np.float64) / 255.0


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


def fit_svm(trial: SVMConfig, data: Dataset, backend: str = DEFAULT_SVM_BACKEND) -> SVMResult:
    """Fit SVC on the first `train_samples` images and test it on the whole test set."""
    return fit_predict(trial, data, backend)[0]


def fit_predict(trial: SVMConfig, data: Dataset, backend: str) -> tuple[SVMResult, np.ndarray]:
    """fit_svm, and the predicted labels of the test set."""
    n = min(trial.train_samples, len(data.train_labels))
    x_train, y_train = svm_features(data.train_images[:n]), data.train_labels[:n]
    x_test = svm_features(data.test_images)
    if backend == "precomputed":
        predicted, svc, fit_s, predict_s = _fit_precomputed(trial, x_train, y_train, x_test)
    elif backend in ("libsvm", "intelex"):
        predicted, svc, fit_s, predict_s = _fit_plain(trial, x_train, y_train, x_test, backend)
    else:
        raise TuneMnistError(f"unknown SVM backend {backend!r}: expected one of {SVM_BACKENDS}")
    result = SVMResult(
        test_accuracy=100.0 * float(np.mean(predicted == data.test_labels)),
        train_time_ms=1000 * fit_s,
        predict_time_ms=1000 * predict_s,
        train_samples=n,
        n_support=int(svc.n_support_.sum()),
        backend=backend,
    )
    return result, predicted


def _fit_precomputed(trial, x_train, y_train, x_test):
    from sklearn.metrics.pairwise import pairwise_kernels
    from sklearn.svm import SVC

    params = kernel_params(trial, x_train)
    svc = SVC(kernel="precomputed", C=trial.C, random_state=trial.seed)
    start = time.perf_counter()
    svc.fit(pairwise_kernels(x_train, metric=trial.kernel, **params), y_train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    k_test = np.zeros((len(x_test), len(x_train)))
    support = svc.support_
    k_test[:, support] = pairwise_kernels(x_test, x_train[support], metric=trial.kernel, **params)
    predicted = svc.predict(k_test)
    return predicted, svc, fit_s, time.perf_counter() - start


def _fit_plain(trial, x_train, y_train, x_test, backend):
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
        random_state=trial.seed,
    )
    start = time.perf_counter()
    svc.fit(x_train, y_train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    predicted = svc.predict(x_test)
    return predicted, svc, fit_s, time.perf_counter() - start
