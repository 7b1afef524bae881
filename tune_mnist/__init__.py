"""tune-mnist: Ray Tune ablation studies of ResNets and SVMs on MNIST and Fashion-MNIST.

`import tune_mnist` stays light: the public names below load their modules on first use,
so `tune_mnist.train` (torch, torchvision, numpy) runs on a machine without Ray, fvcore,
pydantic or pandas, such as a bare GPU machine running benchmarks/gpu.py.

The package's wings, each importing only the ones below it (pyproject.toml's
import-linter contract): cli > run > analysis > store | train > spec > errors.
"""

from importlib import import_module

from tune_mnist import _moved
from tune_mnist.errors import TuneMnistError

__version__ = "0.1.0"
_moved.install()
__all__ = [
    "ExperimentMeta",
    "ResNetConfig",
    "SVMConfig",
    "Spec",
    "SweepResult",
    "SweepSettings",
    "TrainOptions",
    "TuneMnistError",
    "load_epochs",
    "load_results",
    "load_space",
    "read_meta",
    "resume_sweep",
    "run_sweep",
    "summarize",
]
_HOME = {
    "ResNetConfig": "spec.configs",
    "SVMConfig": "spec.configs",
    "TrainOptions": "spec.configs",
    "Spec": "spec.spaces",
    "load_space": "spec.spaces",
    "SweepSettings": "store.settings",
    "ExperimentMeta": "store.experiment",
    "read_meta": "store.experiment",
    "load_results": "store.results",
    "load_epochs": "store.results",
    "summarize": "analysis.report",
    "run_sweep": "run.sweep",
    "resume_sweep": "run.sweep",
    "SweepResult": "run.sweep",
}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(import_module(f"tune_mnist.{_HOME[name]}"), name)
    raise AttributeError(f"module 'tune_mnist' has no attribute {name!r}")
