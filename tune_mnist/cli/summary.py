"""An experiment's summary on the terminal: its tables, what was written, what did not
finish, and the exit code that says so (3: trials left to resume; 143 after SIGTERM)."""

from __future__ import annotations

import typer

from tune_mnist.cli.common import (
    out,
    print_frame,
    say,
)
from tune_mnist.errors import EXIT_INCOMPLETE, EXIT_TERMINATED


def print_summary(summary, after_sweep: bool = False) -> None:
    """The tables, what was written, and what did not finish (exit 3; 143 after SIGTERM)."""
    for table in summary.tables:
        print_frame(table.shown(), title=table.title)
        for note in table.notes:
            out.print(note, style="dim", highlight=False)
    if summary.timing:  # where the time went (timing.py)
        print_frame(summary.timing.wall, title="Where the time went")
        out.print(summary.timing.note(), style="dim", highlight=False)
    if summary.answer:  # last of the tables: what a terminal shows when the output ends
        from rich.panel import Panel
        from rich.text import Text  # plain text: "[89.97, 91.12]" is no markup

        lines = Text("\n".join(summary.answer.lines()))
        out.print(Panel(lines, title="The answer", expand=False), highlight=False)
    if summary.files:
        where = summary.files[0].parent
        if summary.uri:  # the local copy's report, uploaded
            where = f"{summary.experiment}/report (local copy: {where})"
        say(f"wrote {len(summary.files)} files to {where}")
    if not summary.diverged.empty:
        print_frame(
            summary.diverged.reset_index(drop=True),
            title=f"{len(summary.diverged)} trials diverged: they ended, and resume does not "
            "rerun them",
        )
    if summary.stopped:
        say(f"stopped on its budget: {summary.stopped} (the budget table lists what did not run)")
    if not summary.complete:
        print_frame(summary.incomplete, title=f"{len(summary.incomplete)} trials did not finish")
        if summary.resumable:
            say(f"continue with `tune-mnist resume {summary.experiment}`")
        else:
            say(
                f"{summary.experiment} was not signed by this user's tune-mnist (or was changed "
                "since): `tune-mnist resume` refuses it unless told --trust"
            )
    if after_sweep:
        from tune_mnist.run.cluster import terminated

        if terminated():  # Tune stopped the sweep cleanly; the caller asked it to stop
            raise typer.Exit(EXIT_TERMINATED)
    if not summary.complete:
        raise typer.Exit(EXIT_INCOMPLETE)
