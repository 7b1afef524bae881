"""The report folder: every export format, provenance, the summarize command."""

import json

import pandas as pd
from typer.testing import CliRunner

from tune_mnist.analysis.report import summarize
from tune_mnist.cli.main import app


def test_every_export_format_is_written_and_reads_back(repeated):
    summary = summarize(repeated)
    folder = repeated / "report"
    markdown = (folder / "tables.md").read_text()
    assert markdown.startswith("## The answer\n")  # then the tables, the study's first
    assert markdown.split("\n## ")[1].startswith("cmp: model comparison")
    table = summary.tables[0].frame
    read = pd.read_csv(folder / "cmp.csv", dtype=str, keep_default_na=False)
    assert read.columns.tolist() == table.columns.tolist()
    assert read["train time (ms)"].tolist() == table["train time (ms)"].tolist()  # "4,000"
    assert read["test accuracy (%)"].astype(float).tolist() == [91.0, 80.5]
    assert pd.read_json(folder / "cmp.json")["n"].tolist() == [3, 3]
    assert pd.read_parquet(folder / "cmp.parquet")["test accuracy (%)"].tolist() == [91.0, 80.5]
    assert len(pd.read_parquet(folder / "epochs.parquet")) == 12
    provenance = json.loads((folder / "provenance.json").read_text())
    assert provenance["space"]["name"] == "cmp" and provenance["devices_used"] == ["cpu"]


def test_summarize_format_option_writes_only_that_format(repeated):
    result = CliRunner().invoke(app, ["summarize", str(repeated), "--format", "csv"])
    assert result.exit_code == 0, result.output
    written = {p.suffix for p in (repeated / "report").iterdir()}
    assert written == {".csv", ".json"}  # the CSVs, and provenance.json always
