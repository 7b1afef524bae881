"""The commands that read an experiment's files: status, summarize, plot and best. None
starts Ray."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import typer

from tune_mnist.cli.common import (
    Format,
    JsonOpt,
    app,
    out,
    print_frame,
    say,
    user_errors,
)
from tune_mnist.cli.summary import print_summary
from tune_mnist.store.opened import open_experiment
from tune_mnist.store.results import DIVERGED, FINISHED

# A folder or a URI: kept a string, so that s3://bucket/x is not made a path (s3:/bucket/x).
ExperimentArg = Annotated[
    str, typer.Argument(help="An experiment written by sweep: its folder or s3:// URI.")
]


@app.command()
def plot(
    experiment_dir: ExperimentArg,
) -> None:
    """Draw an experiment's figures (PNG) into its report/ folder."""
    from tune_mnist.analysis.report import summarize as summarize_experiment

    with user_errors():  # the effects figure is drawn from the effects tables' model
        opened = open_experiment(experiment_dir)
        paths = summarize_experiment(opened, write=False, plots=True).figures
    for path in paths:
        say(f"wrote {path}")


@app.command()
def summarize(
    experiment_dir: ExperimentArg,
    formats: Annotated[
        list[Format] | None,
        typer.Option(
            "--format",
            "-f",
            help="File formats to write (default: md, csv, json, parquet, html; latex: "
            "tables.tex, one document for pdflatex).",
        ),
    ] = None,
) -> None:
    """Print an experiment's tables and write them to its report/ folder; no re-running.

    Exits with code 3 when some trials did not finish (they are listed).
    """
    from tune_mnist.analysis.report import FORMATS
    from tune_mnist.analysis.report import summarize as summarize_experiment

    chosen = [f.value for f in formats] if formats else FORMATS
    with user_errors():
        summary = summarize_experiment(open_experiment(experiment_dir), formats=chosen)
    print_summary(summary)


@app.command()
def best(
    experiment_dir: ExperimentArg,
    json_output: JsonOpt = False,
) -> None:
    """Print an experiment's best configuration with its test accuracy's interval.

    Chosen on validation accuracy when the space held a validation split out, else on test
    accuracy (said, since the test set then both chooses and scores).
    """
    import json

    from tune_mnist.analysis.best import best_configuration

    with user_errors():
        found = best_configuration(open_experiment(experiment_dir))
    if json_output:
        print(json.dumps(found.to_dict(), indent=2, default=str))
        return
    for line in found.describe():
        say(line)


@app.command()
def compare(
    experiment_a: ExperimentArg,
    experiment_b: ExperimentArg,
    json_output: JsonOpt = False,
) -> None:
    """Compare experiment B with experiment A, configuration by configuration.

    Configurations are matched on every field both record (the seed aside). For each: the
    two accuracies, B - A with its 95% interval and test (exact McNemar when both saved
    predictions on the same test images, else an unpaired interval), and B's train time
    over A's, marked * when either was taken beside other trials.
    """
    import json

    from tune_mnist.analysis.compare import compare as compare_experiments

    with user_errors():
        found = compare_experiments(experiment_a, experiment_b)
    if json_output:
        print(json.dumps(found.to_dict(), indent=2, default=str))
        return
    frame = found.frame
    varied = [k for k in found.keys if frame[k].nunique() > 1] or found.keys[:1]
    from tune_mnist.analysis.table import Table  # one precision per kind of column

    title = f"B: {found.b}  vs  A: {found.a}"
    table = Table("compare", title, frame.drop(columns=[k for k in found.keys if k not in varied]))
    print_frame(table.shown(), title=title)
    for note in found.notes():
        out.print(note, style="dim", highlight=False)


@app.command()
def status(
    experiment_dir: ExperimentArg,
    json_output: JsonOpt = False,
) -> None:
    """Where an experiment stands, from its files (no Ray): trials finished, running,
    pending and failed, the running ones' epochs, and the time so far."""
    from tune_mnist.analysis.status import describe, experiment_status

    with user_errors():
        found = experiment_status(open_experiment(experiment_dir))
    if json_output:
        import json
        from dataclasses import asdict

        record = {**asdict(found), "complete": found.complete}
        print(json.dumps(record, indent=2, default=str))
        return
    say(describe(found))
    unfinished = [t for t in found.trials if t.status != FINISHED]
    if unfinished:
        rows = [
            {
                "trial": t.label,
                "state": t.status,
                "epoch": None if t.epoch is None else f"{t.epoch}/{t.epochs or '?'}",
                "test accuracy (%)": None if t.accuracy is None else round(t.accuracy, 2),
            }
            for t in unfinished
        ]
        title = f"{len(rows)} trial(s) not finished"
        if any(t.status == DIVERGED for t in unfinished):
            title += " (the diverged ones ended: resume does not rerun them)"
        print_frame(pd.DataFrame(rows), title=title)
    if found.active:
        say(f"a sweep is at work on it: {found.driver}")
    elif not found.complete:
        say(f"no sweep is at work on it: continue with `tune-mnist resume {found.experiment}`")
