"""A live view of a sweep on a terminal: trials by state, the running ones' epochs and
accuracies, the time so far and an estimate of the time left (run/timeleft.py computes it).

`render` turns a state into what the terminal shows, so it can be checked without one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from tune_mnist.run.timeleft import LiveState, summary_line

REFRESH_S = 0.5  # the state is rebuilt at most this often; Tune's loop steps far faster


def render(state: LiveState) -> RenderableType:
    """The live view of a state: a line of counts and times, a bar, the running trials."""
    ended = state.finished + state.failed
    bar = Table.grid(padding=(0, 1))  # a bar alone ends no line: a grid row does
    bar.add_row(
        ProgressBar(total=max(state.total, 1), completed=ended, width=60), f"{ended}/{state.total}"
    )
    parts: list[RenderableType] = [Text(summary_line(state)), bar]
    if state.running:
        table = Table(show_edge=False, pad_edge=False, box=None)
        for column in ("running trial", "epoch", "test accuracy"):
            table.add_column(column, justify="left" if column == "running trial" else "right")
        for trial in state.running:
            epoch = "—"
            if trial.epoch is not None:
                epoch = f"{trial.epoch}" + (f"/{trial.epochs}" if trial.epochs else "")
            accuracy = "—" if trial.accuracy is None else f"{trial.accuracy:.2f}%"
            table.add_row(trial.label, epoch, accuracy)
        parts.append(table)
    return Group(*parts)


@dataclass
class LiveView:
    """A Rich Live area at the bottom of the terminal; lines said go above it."""

    console: Console
    live: Live | None = field(default=None, init=False)
    _last: float = field(default=0.0, init=False)

    def __enter__(self) -> LiveView:
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None

    def say(self, message: str) -> None:
        """A line above the live area (the same lines as without a terminal)."""
        self.console.print(message, highlight=False)

    def show(self, state: LiveState, force: bool = False) -> None:
        """Show a new state (at most every REFRESH_S unless forced)."""
        now = time.monotonic()
        if self.live is None or (not force and now - self._last < REFRESH_S):
            return
        self._last = now
        self.live.update(render(state))
