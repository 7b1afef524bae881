"""Experiments written by the code before the package moved into wings (tests/fixtures/old,
made at f5ebf7b by tests/fixtures/make_fixtures.py) still open, report and resume.

Tune pickled class paths into their tuner.pkl and state files (the progress callback, the
trial loggers, the trainable); a copy of each folder is used, never the fixture itself.
"""

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tune_mnist import load_results
from tune_mnist.cli.main import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "old"
ROOT = FIXTURES.parents[2]


@pytest.fixture
def old(tmp_path, monkeypatch):
    """A copy of the old experiments; the ResNet one's model is `tests.fixtures.tinynet`,
    found from the repository root by the driver and by Ray's workers."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.chdir(ROOT)
    copy = tmp_path / "old"
    shutil.copytree(FIXTURES, copy)
    return copy


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def test_status_of_old_experiments(old):
    done = cli("status", str(old / "q1b-smoke"))
    assert done.exit_code == 0, done.output
    assert "4 finished" in done.output
    stopped = cli("status", str(old / "resnet-interrupted-smoke"))
    assert stopped.exit_code == 0, stopped.output
    assert "2 finished" in stopped.output and "of 5 trials" in stopped.output


@pytest.mark.parametrize(("name", "code"), [("q1b-smoke", 0), ("resnet-interrupted-smoke", 3)])
def test_summarize_old_experiments(old, name, code):
    report = old / name / "report"
    shutil.rmtree(report)
    result = cli("summarize", str(old / name))
    # 3: the report is written, and some trials are left for `tune-mnist resume`
    assert result.exit_code == code, result.output
    assert (report / "index.html").is_file() and (report / "tables.md").is_file()


def test_resume_an_old_interrupted_experiment(old):
    experiment = old / "resnet-interrupted-smoke"
    before = {
        p.parent.name: p.read_text()
        for p in experiment.glob("*/result.json")
        if '"trial_finished": true' in p.read_text()
    }
    result = cli("resume", "--trust", str(experiment))
    assert result.exit_code == 0, result.output
    frame = load_results(experiment)
    assert len(frame) == 5 and set(frame["status"]) == {"finished"}
    for name, log in before.items():  # trials finished before the move are not rerun
        assert (experiment / name / "result.json").read_text() == log
