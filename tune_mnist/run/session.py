"""The driver session: the one object through which Tune's pickled callbacks reach the
sweep this process is running.

Tune pickles the RunConfig's callbacks and stopper into the experiment (tuner.pkl) and a
restored sweep runs the unpickled copies, so they cannot hold the sweep's objects. They
hold nothing and ask `current()` instead: the progress report and budget clock of the
sweep now in `fit` (None outside it), and whether SIGTERM asked this process to stop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class DriverSession:
    """What the running sweep lends its callbacks; one per driver process."""

    progress: Any = None  # progress.ProgressReport while Tune's fit runs
    clock: Any = None  # budget.BudgetClock while a budgeted fit runs
    terminated: bool = False  # SIGTERM arrived (cluster.py turns it into Ctrl-C)


_SESSION = DriverSession()


def current() -> DriverSession:
    """This process's driver session."""
    return _SESSION


@contextlib.contextmanager
def lent(name: str, value: Any) -> Iterator[Any]:
    """Lend `value` to the callbacks as the session's `name` while the block runs."""
    setattr(_SESSION, name, value)
    try:
        yield value
    finally:
        setattr(_SESSION, name, None)
