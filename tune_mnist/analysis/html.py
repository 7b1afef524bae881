"""One self-contained HTML page of a report: notes, tables, figures and provenance.

The page needs nothing but itself: CSS inline, figures as base64 data URIs, no JavaScript
and no link to anything outside it, so it can be mailed, archived or opened offline.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from tune_mnist.analysis.answer import Answer
from tune_mnist.analysis.table import Table
from tune_mnist.store.experiment import write_atomic

PAGE = "index.html"
_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 75rem;
       padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6rem; border-bottom: 2px solid #333; padding-bottom: .3rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; }
nav ul { columns: 2; }
table.data { border-collapse: collapse; font-size: .85rem; margin: .6rem 0; }
table.data th, table.data td { border: 1px solid #ccc; padding: .25rem .55rem; }
table.data th { background: #f0f0f0; text-align: left; }
table.data tbody tr:nth-child(even) { background: #fafafa; }
table.data td { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; }
.note { font-size: .85rem; color: #444; margin: .3rem 0; }
figure { margin: 1.2rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: .85rem; color: #555; }
dl.provenance dt { font-weight: 600; margin-top: .6rem; }
dl.provenance dd { margin-left: 1.2rem; }
pre { background: #f6f6f6; padding: .5rem; overflow-x: auto; font-size: .8rem; }
code { background: #f0f0f0; padding: 0 .2rem; }
section.answer { border: 2px solid #2b5797; border-radius: 6px; padding: .4rem 1rem;
                 background: #f5f8fd; margin: 1rem 0; }
section.answer h2 { margin-top: .4rem; }
section.answer li { margin: .35rem 0; }
section.answer p.caveat { color: #7a4500; font-size: .9rem; margin: .3rem 0; }
"""


def _text(note: str) -> str:
    """Escaped text, Markdown's `code` spans as <code> (the tables' notes use them)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(note))


def _anchor(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "item"


def _table(table: Table) -> str:
    body = table.shown().to_html(index=False, na_rep="—", border=0, classes="data")
    notes = "".join(f'<p class="note">{_text(note)}</p>' for note in table.notes)
    return (
        f'<section id="table-{_anchor(table.name)}"><h2>{escape(table.title)}</h2>'
        f'<div class="scroll">{body}</div>{notes}</section>'
    )


# What to read from each kind of figure (plots.plot_experiment's file names).
CAPTIONS = {
    "accuracy-vs-time": "Test accuracy against train time, by table row (#): the staircase "
    "joins the rows no other beats on both; times the tables mark * were taken beside other "
    "trials and say nothing of speed.",
    "learning-curves": "Test accuracy after each epoch: where a curve flattens, more epochs "
    "buy little; one seed's dips are within test-sampling noise.",
    "effects": "Each factor's model-based mean accuracy per level, the other factors "
    "weighted equally: a factor matters where its levels' intervals sit apart.",
    "confusion": "Which classes are taken for which (rows: true class; columns: predicted): "
    "the off-diagonal cells are the model's confusions.",
}


def _caption(path: Path) -> str:
    kind = next((k for k in CAPTIONS if k in path.stem), None)
    return f"{CAPTIONS[kind]} ({path.name})" if kind else path.name


def _figure(path: Path) -> str:
    path = Path(path)
    mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure id="figure-{_anchor(path.stem)}">'
        f'<img src="data:{mime};base64,{data}" alt="{escape(path.stem)}">'
        f"<figcaption>{escape(_caption(path))}</figcaption></figure>"
    )


def _provenance(provenance: dict[str, Any]) -> str:
    items = []
    for key, value in provenance.items():
        if isinstance(value, dict | list | tuple):
            shown = f"<pre>{escape(json.dumps(value, indent=2, default=str))}</pre>"
        else:
            shown = escape("—" if value is None else str(value))
        items.append(f"<dt>{escape(str(key))}</dt><dd>{shown}</dd>")
    return f'<dl class="provenance">{"".join(items)}</dl>'


def _answer(answer: Answer | None) -> str:
    """The answer box, first on the page (answer.py)."""
    if answer is None:
        return ""
    items = "".join(
        "<li>" + "<br>".join(escape(s) for s in (f.best, f.runner_up, f.study) if s) + "</li>"
        for f in answer.findings
    )
    caveats = "".join(f'<p class="caveat">Caveat: {escape(c)}</p>' for c in answer.caveats)
    return (
        f'<section id="answer" class="answer"><h2>The answer</h2><p>{escape(answer.run)}</p>'
        f"<ul>{items}</ul>{caveats}</section>"
    )


def render_html(
    title: str,
    tables: Sequence[Table],
    figures: Sequence[Path],
    notes: Sequence[str],
    provenance: dict[str, Any],
    answer: Answer | None = None,
) -> str:
    """The page as a string: title, the answer, notes, contents, every table with its title
    and notes, every figure embedded as a data URI, then provenance; no script, nothing
    external."""
    contents = [
        f'<li><a href="#table-{_anchor(t.name)}">{escape(t.title)}</a></li>' for t in tables
    ] + [
        f'<li><a href="#figure-{_anchor(Path(f).stem)}">{escape(Path(f).name)}</a></li>'
        for f in figures
    ]
    sections = [
        f"<h1>{escape(title)}</h1>",
        _answer(answer),
        "".join(f'<p class="note">{_text(note)}</p>' for note in notes),
        f"<nav><h2>Contents</h2><ul>{''.join(contents)}</ul></nav>" if contents else "",
        *(_table(table) for table in tables),
        '<section id="figures"><h2>Figures</h2>' if figures else "",
        *(_figure(path) for path in figures),
        "</section>" if figures else "",
        f'<section id="provenance"><h2>Provenance</h2>{_provenance(provenance)}</section>',
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(part for part in sections if part)
        + "\n</body></html>\n"
    )


def write_html(
    folder: Path,
    title: str,
    tables: Sequence[Table],
    figures: Sequence[Path],
    notes: Sequence[str],
    provenance: dict[str, Any],
    answer: Answer | None = None,
) -> Path:
    """Write render_html's page to `folder/index.html` atomically; return its path."""
    path = Path(folder) / PAGE
    write_atomic(path, render_html(title, tables, figures, notes, provenance, answer))
    return path
