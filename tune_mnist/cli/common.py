"""What every command shares: the Typer app, the consoles, option types, and the wrappers
that turn errors, interrupts and frames into what a terminal shows."""

from __future__ import annotations

import contextlib
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from tune_mnist.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED, TuneMnistError
from tune_mnist.spec.configs import (
    SVM_BACKENDS,
)

app = typer.Typer(
    help="Ray Tune ablation studies of ResNets and SVMs on MNIST and Fashion-MNIST.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        print(f"tune-mnist {version('tune-mnist')}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print tune-mnist's version and exit.",
        ),
    ] = False,
) -> None:
    """Ray Tune ablation studies of ResNets and SVMs on MNIST and Fashion-MNIST."""


# Tables are the output: when piped or captured, do not squeeze them into 80 columns.
_width = None if sys.stdout.isatty() else 200


out = Console(soft_wrap=True, width=_width)


err = Console(stderr=True, soft_wrap=True, width=_width)


SVMBackend = Enum("SVMBackend", {name: name for name in SVM_BACKENDS}, type=str)


class CompileMode(str, Enum):
    default = "default"
    reduce_overhead = "reduce-overhead"
    max_autotune = "max-autotune"


class Format(str, Enum):
    md = "md"
    csv = "csv"
    json = "json"
    parquet = "parquet"
    html = "html"
    latex = "latex"


SpaceArg = Annotated[
    str,
    typer.Argument(help="A built-in space (q1a, q1b, q1b-full, q2, q2-full) or a YAML file."),
]


SVMBackendOpt = Annotated[
    SVMBackend,
    typer.Option(
        help="auto: precomputed when its kernel fits the trial's memory, else libsvm; "
        "precomputed: plain SVC's predictions, faster; intelex: another solver."
    ),
]


AddressOpt = Annotated[
    str | None,
    typer.Option(envvar="RAY_ADDRESS", help="Join this Ray cluster; else start a local Ray."),
]


WhereOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--where",
        help="Run only trials with KEY=VALUE (repeatable; several values of one key: any).",
    ),
]


TrialOpt = Annotated[
    list[int] | None,
    typer.Option("--trial", help="Run only trial N, as numbered by `show` (repeatable)."),
]


LimitOpt = Annotated[
    int,
    typer.Option(min=1, help="Refuse a space that expands to more trials than this."),
]


TrustOpt = Annotated[
    bool,
    typer.Option(
        help="Resume or extend even if this user's tune-mnist did not sign the experiment's "
        "files. Risk: Tune unpickles them and the metadata names code to import, so this "
        "runs whatever the folder holds. Only for folders you know."
    ),
]


JsonOpt = Annotated[bool, typer.Option("--json", help="Print it as JSON (for scripts and pipes).")]


InsecureOpt = Annotated[
    bool,
    typer.Option(
        help="A local Ray without token authentication (still on loopback only); not advised."
    ),
]


DashboardOpt = Annotated[
    bool,
    typer.Option(
        help="Start a local Ray with its dashboard (http://127.0.0.1:8265); off by default "
        "because its processes slow start-up on a small machine."
    ),
]


VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Ray's own logs; tracebacks on errors.")
]


@contextlib.contextmanager
def user_errors(verbose: bool = False):
    """Turn TuneMnistError into one red line and exit code 1 (a traceback with --verbose)."""
    try:
        yield
    except TuneMnistError as e:
        if verbose:
            raise
        err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)  # [extra]: text
        raise typer.Exit(EXIT_ERROR) from None


def loopback_if_local(address: str | None, insecure: bool = False) -> None:
    """A local Ray started for this command listens on 127.0.0.1 only, with token auth
    (without it only if `insecure`, said loudly).

    Ray decides which interfaces its servers bind when it is imported: with this setting
    off (as on macOS and Windows) every server of a local node binds to loopback; left on,
    the GCS, raylet and workers listen on every interface. Joining a cluster
    (--address, $RAY_ADDRESS) needs the node's routable address, so it is left alone.
    """
    if address or os.environ.get("RAY_ADDRESS"):
        return
    if "ray" in sys.modules:  # read at import: changed now, Ray's parts would disagree
        return
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if insecure:
        err.print(
            "[yellow]warning:[/yellow] --insecure: this local Ray runs WITHOUT token "
            "authentication: any process of any user on this machine can run code in it",
            highlight=False,
        )
    # whatever the environment says: nobody else in, unless the user said so here
    os.environ["RAY_AUTH_MODE"] = "disabled" if insecure else "token"


@contextlib.contextmanager
def interruptible(experiment: Path | str):
    """Ctrl-C or SIGTERM: say how to continue and exit 130 or 143 (128 + the signal)."""
    from tune_mnist.run.cluster import terminated

    try:
        yield
    except KeyboardInterrupt:
        err.print(f"interrupted: continue with `tune-mnist resume {experiment}`", highlight=False)
        raise typer.Exit(EXIT_TERMINATED if terminated() else EXIT_INTERRUPTED) from None


@contextlib.contextmanager
def progress():
    """(say, view) for a sweep: on a terminal a live view with the event lines above it
    (live.py); otherwise (CI, job logs) one plain line per event and no view."""
    if not out.is_terminal:
        yield say, None
        return
    from tune_mnist.cli.live import LiveView

    with LiveView(out) as view:
        yield view.say, view


def print_frame(frame: pd.DataFrame, title: str | None = None) -> None:
    """A DataFrame as a Rich table, missing values as a dash."""
    table = RichTable(title=title, title_justify="left", show_lines=False)
    for column in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[column]) and frame[column].dtype != bool
        table.add_column(str(column), justify="right" if numeric else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*("—" if pd.isna(v) else str(v) for v in row))
    out.print(table)


def say(message: str) -> None:
    """A line for the user on standard output, as written (no Rich highlighting)."""
    out.print(message, highlight=False)
