"""summarize --format latex: one document, escaped, that pdflatex compiles."""

import shutil
import subprocess

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.experiments import make_experiment
from tune_mnist.analysis.latex import latex_text, render_latex
from tune_mnist.analysis.table import Table
from tune_mnist.cli.main import app
from tune_mnist.spec.spaces import parse_space


def test_special_characters_are_escaped_and_unicode_written_as_commands():
    assert latex_text("50% of a_b & #1 {x} $5") == r"50\% of a\_b \& \#1 \{x\} \$5"
    assert latex_text("\u22120.5 ± 1.2 — ok") == r"$-$0.5 $\pm$ 1.2 --- ok"
    assert latex_text("\\") == r"\textbackslash{}"
    assert latex_text("naïve") == "na?ve"  # what plain pdflatex cannot set


def test_a_document_holds_every_table_title_and_note():
    table = Table("t", "t: 100% & more", pd.DataFrame({"a_b": [1.5, None]}), ["note #1"])
    document = render_latex("r: report", [table])
    assert document.startswith(r"\documentclass") and document.rstrip().endswith(r"\end{document}")
    assert r"t: 100\% \& more" in document and r"note \#1" in document
    assert r"\toprule" in document and r"a\_b" in document and "---" in document


@pytest.mark.skipif(
    shutil.which("pdflatex") is None,
    reason="no pdflatex (apt-get install texlive-latex-base texlive-latex-recommended)",
)
def test_summarize_format_latex_compiles_with_pdflatex(tmp_path):
    raw = {
        "name": "s_1",
        "trainable": "svm",
        "fixed": {"dataset": "mnist"},
        "grid": {"kernel": ["rbf", "poly"]},
        "repeats": 2,
    }
    folder = make_experiment(tmp_path / "exp", parse_space(raw, "s.yaml"), lambda t: 90.0 + t.seed)
    result = CliRunner().invoke(app, ["summarize", str(folder), "-f", "latex"])
    assert result.exit_code == 0, result.output
    report = folder / "report"
    assert sorted(p.name for p in report.iterdir()) == ["provenance.json", "tables.tex"]
    compiled = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "tables.tex"],
        cwd=report,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert compiled.returncode == 0, compiled.stdout[-3000:]
    assert (report / "tables.pdf").stat().st_size > 10_000
