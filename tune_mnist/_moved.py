"""Module paths of before the wings (tune_mnist.sweep, ...), for pickles that name them.

Ray Tune pickles class and function paths into an experiment's tuner.pkl and state files
(the progress callback, the trial loggers, the trial-folder namer). Experiments written
before the package moved into subpackages name the flat modules; importing such a name
gives the module it moved to, so those experiments still resume. New code never uses them.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys

MOVED = {
    "tune_mnist.sweep": "tune_mnist.run.sweep",
    "tune_mnist.progress": "tune_mnist.run.progress",
    "tune_mnist.budget": "tune_mnist.run.budget",
    "tune_mnist.trial_logs": "tune_mnist.run.trial_logs",
    "tune_mnist.mlflow_runs": "tune_mnist.run.mlflow_runs",
    "tune_mnist.trainables": "tune_mnist.run.trainables",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module name and loads it as the module it moved to."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):
        pass  # the module it moved to ran when create_module imported it


def install() -> None:
    """Put the finder on sys.meta_path once (importing tune_mnist calls this)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
