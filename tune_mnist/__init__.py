"""tune-mnist: Ray Tune ablation studies of ResNets and SVMs on MNIST and Fashion-MNIST.

`import tune_mnist` stays light: the public names below load their modules on first use,
so `tune_mnist.train` (torch, torchvision, numpy) runs on a machine without Ray, fvcore,
pydantic or pandas, such as a bare GPU machine running benchmarks/gpu.py.
"""

from importlib import import_module

from .errors import TuneMnistError

__version__ = "0.1.0"
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
    "ResNetConfig": "configs",
    "SVMConfig": "configs",
    "TrainOptions": "configs",
    "Spec": "spaces",
    "load_space": "spaces",
    "SweepSettings": "settings",
    "ExperimentMeta": "experiment",
    "read_meta": "experiment",
    "load_results": "results",
    "load_epochs": "results",
    "summarize": "report",
    "run_sweep": "sweep",
    "resume_sweep": "sweep",
    "SweepResult": "sweep",
}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module 'tune_mnist' has no attribute {name!r}")
