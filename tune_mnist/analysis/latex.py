"""A report as one LaTeX document (`tables.tex`): the answer, then every table as a
booktabs table from pandas' Styler, with its notes; `pdflatex tables.tex` compiles it.

Cells, titles and notes are escaped for LaTeX, and the few non-ASCII characters reports
print (minus, plus-minus, dashes, comparisons) are written as LaTeX commands, so the
document needs only the standard `booktabs` package and compiles with plain pdflatex.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from tune_mnist.analysis.answer import Answer
from tune_mnist.analysis.table import Table

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "\u2212": "$-$",  # minus sign
    "±": r"$\pm$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "\u00d7": r"$\times$",  # multiplication sign
    "—": "---",
    "\u2013": "--",  # en dash
    "…": r"\ldots{}",
    "·": r"$\cdot$",
    "`": "",
}
_PATTERN = re.compile("|".join(re.escape(c) for c in _SPECIAL))


def latex_text(text: object) -> str:
    """Any value as LaTeX text: special characters escaped, other non-ASCII as "?"."""
    escaped = _PATTERN.sub(lambda m: _SPECIAL[m.group()], str(text))
    return escaped.encode("ascii", "replace").decode()


def _table(table: Table) -> str:
    if table.frame.empty:
        body = r"\emph{(no rows)}"
    else:
        frame = table.shown()
        frame.columns = [latex_text(c) for c in frame.columns]
        shown = frame.map(lambda v: "---" if pd.isna(v) else latex_text(v))
        body = shown.style.hide(axis="index").to_latex(
            hrules=True, column_format="l" * len(frame.columns)
        )
    notes = "".join(f"\n\\par\\footnotesize {latex_text(n)}\\normalsize\n" for n in table.notes)
    return (
        f"\\subsection*{{{latex_text(table.title)}}}\n"
        f"\\begin{{center}}\\resizebox{{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}}"
        f"{{!}}{{{body}}}\\end{{center}}{notes}\n"
    )


def render_latex(title: str, tables: Sequence[Table], answer: Answer | None = None) -> str:
    """The report as a standalone LaTeX document."""
    parts = [
        r"\documentclass[10pt]{article}",
        r"\usepackage[margin=1.5cm,landscape]{geometry}",
        r"\usepackage{booktabs}",
        r"\usepackage{graphicx}",
        r"\begin{document}",
        f"\\section*{{{latex_text(title)}}}",
    ]
    if answer is not None:
        parts.append(r"\subsection*{The answer}" + "\n" + latex_text(answer.run))
        items = [
            latex_text(" ".join(s for s in (f.best, f.runner_up, f.study) if s))
            for f in answer.findings
        ]
        if items:
            parts.append(
                "\\begin{itemize}\n" + "\n".join(f"\\item {i}" for i in items) + "\n\\end{itemize}"
            )
        parts += [f"\\par\\emph{{Caveat: {latex_text(c)}}}" for c in answer.caveats]
    parts += [_table(t) for t in tables]
    parts.append(r"\end{document}")
    return "\n".join(parts) + "\n"
