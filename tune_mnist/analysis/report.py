"""An experiment's report in `report/`: its tables (Markdown, CSV, JSON, Parquet), figures,
provenance, and one self-contained page that holds them all (`index.html`).

`summarize` works on finished, interrupted and partly failed experiments alike:
unfinished trials are left out of the numbers and listed. Every file is written
atomically (a temporary file, then a rename), so an interruption never leaves half a file.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tune_mnist.analysis.budget_table import budget_report
from tune_mnist.analysis.timing import TimingSplit, split, timing_markdown
from tune_mnist.store.experiment import (
    Predictions,
    write_atomic,
)
from tune_mnist.store.opened import Experiment, open_experiment
from tune_mnist.store.provenance import report_provenance
from tune_mnist.store.results import DIVERGED, ENDED, ExperimentData, load_experiment
from tune_mnist.store.timings import read_timings
from tune_mnist.store.trust import untrusted_files

# The tables' statistics (scipy.stats, statsmodels: 1.7 s) and the figures' matplotlib
# are imported when a report is made, not by a sweep's start (see load_report_libraries).
if TYPE_CHECKING:
    from tune_mnist.analysis.answer import Answer
    from tune_mnist.analysis.table import Table

FORMATS = ("md", "csv", "json", "parquet", "html")  # what a report writes by default
LATEX = "latex"  # tables.tex, when asked for
MAX_CONFUSION = 16  # configurations per dataset drawn as confusion matrices


@dataclass
class Summary:
    """The tables of one experiment, and what is missing from it."""

    experiment: Path | str  # a folder, or the URI of one in object storage
    tables: list[Table]
    results: pd.DataFrame
    incomplete: pd.DataFrame  # trials not finished: label, status, error
    files: list[Path] = field(default_factory=list)  # tables, exports, provenance
    figures: list[Path] = field(default_factory=list)  # PNGs, when asked for
    resumable: bool = True  # unfinished trials can be resumed without --trust (trust.py)
    timing: TimingSplit | None = None  # where the latest run's time went (timing.py)
    uri: str | None = None  # where it lives in object storage, when it does
    stopped: str | None = None  # why a budget stopped the sweep (its trials left out are
    # listed in the budget table, not in `incomplete`)
    answer: Answer | None = None  # what the report says first (answer.py)

    @property
    def complete(self) -> bool:
        return self.incomplete.empty

    @property
    def diverged(self) -> pd.DataFrame:
        """The trials whose loss stopped being finite: ended, never rerun (label, error)."""
        return self.results.loc[self.results["status"] == DIVERGED, ["label", "error"]]


def summarize(
    experiment: str | Path | Experiment,
    formats=FORMATS,
    write: bool = True,
    plots: bool = False,
) -> Summary:
    """Load an experiment, build its tables, and (by default) write them to `report/`.

    With `plots`, or when writing the one-page `index.html` (format "html"), the figures too
    (plots.plot_experiment), from the same reading. An experiment at a URI is read through
    its local copy (storage.py), and what is written goes back to the URI's report/.
    """
    opened = open_experiment(experiment)
    experiment = opened.folder
    loaded = load_experiment(opened)
    meta, results = loaded.meta, loaded.results
    budget = budget_report(meta, results)
    left_out = budget.left_out if budget else pd.Series(False, index=results.index)
    # trials that ended for good (finished, diverged, stopped early) are not resumed
    done = results["status"].isin(ENDED)
    incomplete = results.loc[~done & ~left_out, ["label", "status", "error"]]
    from tune_mnist.analysis.table import Table
    from tune_mnist.analysis.tables import build_tables

    tables, levels = build_tables(results, meta, loaded.predictions)
    if budget:
        tables.append(
            Table(f"{meta.name}-budget", f"{meta.name}: budget", budget.frame, budget.notes)
        )
    for table in per_class_tables(results, loaded.predictions, meta.name):
        table.title += " (SMOKE RUN)" if meta.smoke else ""
        tables.append(table)
    summary = Summary(opened.uri or experiment, tables, results, incomplete.reset_index(drop=True))
    summary.uri = opened.uri
    summary.timing = split(read_timings(experiment), results)
    summary.stopped = meta.run.stopped if budget else None
    summary.answer = _answer(meta, results, loaded.predictions)
    if not summary.complete:
        summary.resumable = not untrusted_files(experiment)
    if plots or (write and "html" in formats):
        from tune_mnist.analysis.plots import (
            plot_experiment,  # matplotlib only when figures are asked for
        )

        confusion = confusion_matrices(results, loaded.predictions)
        summary.figures = plot_experiment(opened, loaded, effects=levels, confusion=confusion)
    if write:
        summary.files = write_report(opened.report, summary, loaded, formats)
    if summary.files or summary.figures:
        opened.put_report()
    return summary


def _answer(meta, results: pd.DataFrame, predictions) -> Answer | None:
    from tune_mnist.analysis.answer import answer
    from tune_mnist.analysis.table import Run
    from tune_mnist.analysis.tables import inert_factors

    return answer(Run(meta, results, predictions, inert_factors(results, meta)))


def load_report_libraries() -> None:
    """Import what a report needs (statistics and matplotlib: 2.5 s on a 2-core EPYC)
    ahead of it, e.g. while a sweep's last trials leave a CPU idle."""
    from tune_mnist.analysis import html, plots, tables  # noqa: F401


def write_report(
    folder: Path, summary: Summary, loaded: ExperimentData, formats=FORMATS
) -> list[Path]:
    """Tables (Markdown: one file; others: one file per table), the per-trial and
    per-epoch results, provenance.json, and (format "html") the one page `index.html`."""
    files = []
    if "md" in formats:
        markdown = summary.answer.to_markdown() + "\n" if summary.answer else ""
        markdown += "\n".join(t.to_markdown() for t in summary.tables)
        if not summary.complete:
            listing = summary.incomplete.to_markdown(index=False, missingval="")
            markdown += f"\n## Incomplete trials ({len(summary.incomplete)})\n\n{listing}\n"
        if summary.timing:
            markdown += "\n" + timing_markdown(summary.timing)
        files.append(_write(folder / "tables.md", markdown))
    meta, epochs = loaded.meta, loaded.epochs
    frames = {t.name: t.frame for t in summary.tables} | {"results": summary.results}
    if not epochs.empty:
        frames["epochs"] = epochs
    for fmt in (f for f in formats if f not in ("md", "html", LATEX)):
        files += [export(frame, folder / f"{name}.{fmt}") for name, frame in frames.items()]
    provenance = {
        "space": meta.space.model_dump(),
        "space_source": meta.space_source,
        "smoke": meta.smoke,
        "selection": asdict(meta.selection) if meta.selection else None,
        "settings": meta.settings.saved(),
        "data": {name: asdict(info) for name, info in meta.data.items()},
        **meta.provenance,
        "started_at": meta.started_at,
        "report_written_by": report_provenance(),
    }
    provenance["devices_used"] = sorted(
        summary.results.get("device", pd.Series()).dropna().unique()
    )
    files.append(_write(folder / "provenance.json", json.dumps(provenance, indent=2, default=str)))
    if LATEX in formats:
        from tune_mnist.analysis.latex import render_latex

        title = f"{meta.name}: report" + (" (smoke run)" if meta.smoke else "")
        latex = render_latex(title, summary.tables, summary.answer)
        files.append(_write(folder / "tables.tex", latex))
    if "html" in formats:
        notes = [] if summary.complete else [f"{len(summary.incomplete)} trials did not finish."]
        title = f"{meta.name}: report" + (" (smoke run)" if meta.smoke else "")
        from tune_mnist.analysis.html import write_html

        files.append(
            write_html(
                folder, title, summary.tables, summary.figures, notes, provenance, summary.answer
            )
        )
    return files


def confusion_matrices(
    results: pd.DataFrame, predictions: dict[str, Predictions]
) -> dict[str, dict[str, np.ndarray]]:
    """Per dataset, per configuration (`#row`), its confusion counts summed over seeds;
    left out past MAX_CONFUSION configurations, where the panels would be unreadable."""
    found: dict[str, dict[str, np.ndarray]] = {}
    for _, trial in results[results["trial_dir"].isin(predictions)].iterrows():
        saved = predictions[trial["trial_dir"]]
        classes = int(max(saved.labels.max(initial=0), saved.predicted.max(initial=0))) + 1
        counts = np.bincount(
            saved.labels.astype(int) * classes + saved.predicted.astype(int), minlength=classes**2
        ).reshape(classes, classes)
        panels = found.setdefault(trial["dataset"], {})
        key = f"#{trial['row']}"
        panels[key] = panels[key] + counts if key in panels else counts
    return {d: m for d, m in found.items() if len(m) <= MAX_CONFUSION}


def per_class_tables(
    results: pd.DataFrame, predictions: dict[str, Predictions], name: str
) -> list[Table]:
    """Per dataset: each configuration's accuracy on each class (%), over its seeds."""
    from tune_mnist.analysis.table import CLASS_NAMES, DATASET_NAMES, Table

    tables = []
    finished = results[results["status"] == "finished"]
    pooled = len(finished) > 0 and finished.groupby("row").size().max() > 1
    note = "Accuracy (%) on the test images of each class" + (
        ", pooled over each configuration's seeds." if pooled else "."
    )
    for dataset, matrices in confusion_matrices(results, predictions).items():
        rows = []
        for row, counts in matrices.items():
            right = np.diag(counts) / np.maximum(counts.sum(axis=1), 1) * 100
            names = CLASS_NAMES.get(dataset) or [str(c) for c in range(len(right))]
            rows.append({"#": row, **{n: round(v, 1) for n, v in zip(names, right, strict=False)}})
        tables.append(
            Table(
                f"{name}-classes-{dataset}",
                f"{name}: accuracy per class, {DATASET_NAMES.get(dataset, dataset)}",
                pd.DataFrame(rows),
                [note],
            )
        )
    return tables


def export(frame: pd.DataFrame, path: Path) -> Path:
    """One DataFrame as CSV, JSON (records) or Parquet, written atomically."""
    fmt = path.suffix.lstrip(".")
    if fmt == "csv":
        return _write(path, frame.to_csv(index=False))
    if fmt == "json":
        return _write(path, frame.to_json(orient="records", indent=2, default_handler=str))
    buffer = io.BytesIO()
    frame.astype({c: str for c in frame.columns if frame[c].dtype == object}).to_parquet(
        buffer, index=False
    )
    return _write(path, buffer.getvalue())


def _write(path: Path, content: str | bytes) -> Path:
    write_atomic(path, content)
    return path
