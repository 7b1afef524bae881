"""tune-mnist: Ray Tune ablation studies of ResNets and SVMs on MNIST and Fashion-MNIST.

`import tune_mnist` stays light: the public names below load their modules on first use,
so `tune_mnist.train` (torch, torchvision, numpy) runs on a machine without Ray, fvcore,
pydantic or pandas, such as a bare GPU machine running benchmarks/gpu.py.
"""

from importlib import import_module

from .errors import TuneMnistError

__version__ = "0.1.0"
__all__ = [
    "Spec",
    "SweepResult",
    "SweepSettings",
    "TuneMnistError",
    "load_epochs",
    "load_results",
    "load_space",
    "run_sweep",
]
_HOME = {
    "Spec": "spaces",
    "load_space": "spaces",
    "load_results": "results",
    "load_epochs": "results",
    "run_sweep": "sweep",
    "SweepSettings": "sweep",
    "SweepResult": "sweep",
}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module 'tune_mnist' has no attribute {name!r}")
