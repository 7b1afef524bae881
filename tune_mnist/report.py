"""An experiment's report: its tables, exports, plots and provenance in `report/`.

`summarize` works on finished, interrupted and partly failed experiments alike:
unfinished trials are left out of the numbers and listed. Every file is written
atomically (a temporary file, then a rename), so an interruption never leaves half a file.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from .experiment import report_dir, write_atomic
from .results import Experiment, load_experiment
from .tables import Table, build_tables
from .trust import untrusted_files

FORMATS = ("md", "csv", "json", "parquet")


@dataclass
class Summary:
    """The tables of one experiment, and what is missing from it."""

    experiment: Path
    tables: list[Table]
    results: pd.DataFrame
    incomplete: pd.DataFrame  # trials not finished: label, status, error
    files: list[Path] = field(default_factory=list)  # tables, exports, provenance
    figures: list[Path] = field(default_factory=list)  # PNGs, when asked for
    resumable: bool = True  # unfinished trials can be resumed without --trust (trust.py)

    @property
    def complete(self) -> bool:
        return self.incomplete.empty


def summarize(
    experiment: str | Path, formats=FORMATS, write: bool = True, plots: bool = False
) -> Summary:
    """Load an experiment, build its tables, and (by default) write them to `report/`.

    With `plots`, the figures too (plots.plot_experiment), from the same reading.
    """
    experiment = Path(experiment)
    loaded = load_experiment(experiment)
    meta, results = loaded.meta, loaded.results
    incomplete = results.loc[results["status"] != "finished", ["label", "status", "error"]]
    summary = Summary(
        experiment, build_tables(results, meta), results, incomplete.reset_index(drop=True)
    )
    if not summary.complete:
        summary.resumable = not untrusted_files(experiment)
    if write:
        summary.files = write_report(report_dir(experiment), summary, loaded, formats)
    if plots:
        from .plots import plot_experiment  # matplotlib only when figures are asked for

        summary.figures = plot_experiment(experiment, loaded)
    return summary


def write_report(folder: Path, summary: Summary, loaded: Experiment, formats=FORMATS) -> list[Path]:
    """Tables (Markdown: one file; others: one file per table), the per-trial and
    per-epoch results, and provenance.json."""
    files = []
    if "md" in formats:
        markdown = "\n".join(t.to_markdown() for t in summary.tables)
        if not summary.complete:
            listing = summary.incomplete.to_markdown(index=False, missingval="")
            markdown += f"\n## Incomplete trials ({len(summary.incomplete)})\n\n{listing}\n"
        files.append(_write(folder / "tables.md", markdown))
    meta, epochs = loaded.meta, loaded.epochs
    frames = {t.name: t.frame for t in summary.tables} | {"results": summary.results}
    if not epochs.empty:
        frames["epochs"] = epochs
    for fmt in (f for f in formats if f != "md"):
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
    }
    provenance["devices_used"] = sorted(
        summary.results.get("device", pd.Series()).dropna().unique()
    )
    files.append(_write(folder / "provenance.json", json.dumps(provenance, indent=2, default=str)))
    return files


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
