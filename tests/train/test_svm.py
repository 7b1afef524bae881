import numpy as np
import pytest
from sklearn.svm import SVC

from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.configs import SVMConfig
from tune_mnist.train.data import load_dataset
from tune_mnist.train.svm import fit_svm, svm_features

RBF = SVMConfig(dataset="mnist", kernel="rbf", train_samples=80)


@pytest.fixture(scope="module")
def mnist(tiny_data):
    return load_dataset("mnist", tiny_data)


@pytest.fixture(scope="module")
def sample():
    """Real digits (the bundled sample): a harder, non-separable case."""
    return load_dataset("mnist", smoke=True)


@pytest.mark.parametrize("kernel", ["rbf", "poly", "linear", "sigmoid"])
@pytest.mark.parametrize("gamma", ["scale", "auto", 0.01])
def test_precomputed_kernels_predict_exactly_like_plain_svc(sample, kernel, gamma):
    trial = SVMConfig(dataset="mnist", kernel=kernel, gamma=gamma, train_samples=300)
    ours = fit_svm(trial, sample, "precomputed")
    plain = fit_svm(trial, sample, "libsvm")
    assert ours.test_accuracy == plain.test_accuracy
    assert ours.n_support == plain.n_support
    assert ours.backend == "precomputed" and plain.backend == "libsvm"


def test_plain_backend_is_sklearn_svc(mnist):
    result = fit_svm(RBF, mnist, "libsvm")
    plain = SVC(kernel="rbf").fit(svm_features(mnist.train_images[:80]), mnist.train_labels[:80])
    expected = 100 * np.mean(plain.predict(svm_features(mnist.test_images)) == mnist.test_labels)
    assert result.test_accuracy == pytest.approx(expected)
    assert result.test_accuracy > 90  # the block patterns are easy
    assert result.train_samples == 80 and result.train_time_ms > 0 and result.predict_time_ms > 0


def test_features_are_pixels_in_0_1(mnist):
    features = svm_features(mnist.train_images[:3])
    assert features.shape == (3, 784) and features.dtype == np.float64
    assert features.min() >= 0 and features.max() == 1.0


def test_unknown_backend(mnist):
    with pytest.raises(TuneMnistError, match="unknown SVM backend 'gpu'"):
        fit_svm(RBF, mnist, "gpu")


def test_intelex_backend_says_how_to_install(mnist):
    pytest.importorskip("sklearn", reason="always there")
    try:
        import sklearnex  # noqa: F401
    except ImportError:
        with pytest.raises(TuneMnistError, match="pip install scikit-learn-intelex"):
            fit_svm(RBF, mnist, "intelex")
    else:
        assert fit_svm(RBF, mnist, "intelex").backend == "intelex"
