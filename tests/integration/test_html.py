"""The HTML report page: self-contained, and rendered by a real headless Chromium."""

import base64
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from tune_mnist.analysis.html import render_html, write_html
from tune_mnist.analysis.table import Table

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM = next((path for name in BROWSERS if (path := shutil.which(name))), None)
# What Chromium logs about a page that throws or misses a resource.
PAGE_ERRORS = ("Uncaught", "Failed to load resource", "net::ERR_")


class Elements(HTMLParser):
    """Every start tag of a document with its attributes, and its text."""

    def __init__(self, document: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(document)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.tags if name == tag]


def red_and_blue_png(path: Path) -> Path:
    """A small real matplotlib figure: a red bar and a blue bar."""
    figure, axes = plt.subplots(figsize=(4, 2.5), dpi=100)
    axes.bar([0, 1], [1, 2], color=["red", "blue"], width=0.9)
    figure.savefig(path, format="png")
    plt.close(figure)
    return path


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A report page: two tables (one with a missing value), two figures, notes, provenance."""
    folder = tmp_path_factory.mktemp("report")
    tables = [
        Table(
            "cmp",
            "cmp: model comparison <ResNets & co>",
            pd.DataFrame(
                {"model": ["ResNet-18", "ResNet-50"], "test accuracy (%)": [91.0, float("nan")]}
            ),
            ["Mean over `n` seeds."],
        ),
        Table(
            "cmp-compute",
            "cmp: compute used",
            pd.DataFrame({"dataset": ["MNIST", "all"], "GPU-seconds": [1.5, 3.0]}),
        ),
    ]
    figures = [
        red_and_blue_png(folder / "cmp-accuracy-vs-time.png"),
        red_and_blue_png(folder / "cmp-learning-curves.png"),
    ]
    provenance = {"space": {"name": "cmp", "grid": {"model": ["resnet18"]}}, "smoke": True}
    path = write_html(folder, "cmp: report", tables, figures, ["Smoke run."], provenance)
    return path, tables, figures


def run_chromium(page_path: Path, profile: Path, *flags: str) -> subprocess.CompletedProcess:
    """Chromium headless on a file, its own profile, logging to stderr."""
    if CHROMIUM is None:
        pytest.skip("no Chromium binary found (apt-get install chromium)")
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *flags,
        page_path.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def page_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if any(e in line for e in PAGE_ERRORS)]


def test_page_holds_every_table_figure_note_and_provenance(page):
    path, tables, figures = page
    document = path.read_text()
    elements = Elements(document)
    assert len(elements.all("table")) == len(tables)
    sources = [img["src"] for img in elements.all("img")]
    prefix = "data:image/png;base64,"
    assert [base64.b64decode(s.removeprefix(prefix)) for s in sources] == [
        f.read_bytes() for f in figures
    ]
    text = "".join(elements.text)
    assert "cmp: model comparison <ResNets & co>" in text  # escaped in the page, read back
    assert "—" in text  # the missing value
    assert "Smoke run." in text and "GPU-seconds" in text
    assert len(elements.all("code")) == 1  # the note's `n`
    assert '"grid": {' in text  # nested provenance as JSON


def test_page_needs_nothing_outside_itself(page):
    elements = Elements(page[0].read_text())
    for tag in ("script", "link", "iframe", "object", "embed"):
        assert not elements.all(tag), tag
    assert all(a["href"].startswith("#") for a in elements.all("a"))
    assert all(img["src"].startswith("data:") for img in elements.all("img"))
    assert "url(" not in page[0].read_text()


def test_write_html_replaces_the_page_whole(tmp_path):
    first = write_html(tmp_path, "one", [], [], [], {})
    second = write_html(tmp_path, "two", [], [], [], {"k": None})
    assert first == second == tmp_path / "index.html"
    assert second.read_text() == render_html("two", [], [], [], {"k": None})
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]  # no temporary file left


def test_chromium_dom_shows_every_table_and_embedded_image(page, tmp_path):
    path, tables, figures = page
    result = run_chromium(path, tmp_path / "profile", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = Elements(result.stdout)
    assert len(dom.all("table")) == len(tables)
    assert len(dom.all("img")) == len(figures)
    assert all(img["src"].startswith("data:image/png;base64,") for img in dom.all("img"))
    assert page_errors(result.stderr) == []


def test_chromium_screenshot_paints_the_figures(page, tmp_path):
    shot = tmp_path / "page.png"
    result = run_chromium(
        page[0], tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,2000"
    )
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.var() > 0 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10
    red = (pixels[..., 0] > 0.8) & (pixels[..., 1] < 0.2) & (pixels[..., 2] < 0.2)
    assert red.sum() > 2000  # the embedded PNG's red bar, decoded and painted
    assert page_errors(result.stderr) == []


def test_chromium_log_check_catches_a_broken_page(tmp_path):
    """The error check is not vacuous: a page whose script throws is caught."""
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>throw new Error('boom')</script></body></html>")
    result = run_chromium(broken, tmp_path / "profile", "--dump-dom")
    assert any("Uncaught" in line for line in page_errors(result.stderr))


MEASURE = """<script>
addEventListener("load", () => {
  const box = document.getElementById("answer").getBoundingClientRect();
  document.body.setAttribute("data-answer-bottom", String(Math.ceil(box.bottom)));
  document.body.setAttribute("data-viewport", innerWidth + "x" + innerHeight);
});
</script></body>"""


def test_the_answer_is_above_the_fold_at_1280x800(tmp_path):
    """A real report of a hand-made experiment (a best, its interval, a runner-up with its
    test), laid out by Chromium in a 1280x800 window: the answer box ends within it."""
    from tests.experiments import make_experiment, write_predictions
    from tune_mnist.analysis.report import summarize
    from tune_mnist.spec.spaces import parse_space

    raw = {"name": "q", "trainable": "svm", "fixed": {"dataset": "mnist"}}
    spec = parse_space({**raw, "grid": {"kernel": ["rbf", "poly", "linear", "sigmoid"]}}, "q.yaml")
    folder = make_experiment(tmp_path / "exp", spec, lambda t: 80.0 + len(t.kernel))
    labels = np.zeros(50, dtype=np.int64)
    for i in range(4):
        write_predictions(folder, i, (np.arange(50) < 5 + i).astype(np.int64), labels)
    summarize(folder, formats=("md", "html"))
    page = (folder / "report" / "index.html").read_text()
    measured = tmp_path / "measured.html"
    measured.write_text(page.replace("</body>", MEASURE, 1))

    result = run_chromium(measured, tmp_path / "profile", "--window-size=1280,800", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    body = next(attrs for tag, attrs in Elements(result.stdout).tags if tag == "body")
    # the window's 800 pixels less what the browser takes itself: what a reader sees
    width, height = map(int, body["data-viewport"].split("x"))
    assert width == 1280 and 600 < height <= 800
    assert 0 < int(body["data-answer-bottom"]) <= height, body
    text = " ".join(Elements(result.stdout).text)
    for said in ("is best of 4 configurations", "95% CI", "Runner-up #", "exact McNemar"):
        assert said in text
