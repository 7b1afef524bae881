"""tune-mnist: Ray Tune ablation studies of ResNets and SVMs on MNIST and Fashion-MNIST.

`import tune_mnist` stays light (no Ray, no fvcore): `run_sweep` imports Ray when used,
so `tune_mnist.train` runs on machines without Ray.
"""

from .errors import TuneMnistError
from .results import load_epochs, load_results
from .spaces import Spec, load_space

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


def __getattr__(name: str):
    if name in ("run_sweep", "SweepSettings", "SweepResult"):
        from . import sweep

        return getattr(sweep, name)
    raise AttributeError(f"module 'tune_mnist' has no attribute {name!r}")
