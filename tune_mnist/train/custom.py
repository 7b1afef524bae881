"""A space's own trainable, found by its reference (`package.module:train` or
`./loop.py:train`) and checked to take (config, data, reporter); run/custom.py runs it
under Ray Tune. No Ray in here."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from tune_mnist.errors import TuneMnistError


def load_trainable(reference: str) -> Callable:
    """The function a reference names, checked to take (config, data, reporter)."""
    from tune_mnist.train.models import load_builder  # imports a module or a file by reference

    function = load_builder(reference)
    try:
        inspect.signature(function).bind({}, None, None)
    except TypeError:
        raise TuneMnistError(
            f"{reference}: expected train(config, data, reporter), "
            f"got {getattr(function, '__name__', 'it')}{inspect.signature(function)}"
        ) from None
    except ValueError:  # no signature to read: let the call tell
        pass
    return function
