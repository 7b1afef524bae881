"""Where a sweep's time goes (timing.py): the driver's timing.json, each trial's split_*
keys, the split shown by `summarize`, and the per-trial costs that must not grow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tune_mnist.analysis.timing import split, timing_split
from tune_mnist.cli.main import app
from tune_mnist.store.results import load_results
from tune_mnist.store.timings import TIMING_FILE, RunTiming, read_timings, write_timing

from ..conftest import TINY_RESNET, write_space

ROOT = Path(__file__).resolve().parents[2]
# three one-epoch trials on two CPUs: the third runs in a worker another one started
THREE = {**TINY_RESNET, "grid": {"dataset": ["mnist"], "batch_size": [32, 48, 64], "epochs": [1]}}


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_data):
    folder = tmp_path_factory.mktemp("timing")
    space = write_space(folder, name="three", **THREE)
    storage = folder / "runs"
    result = CliRunner().invoke(
        app, ["sweep", str(space), "--data-dir", str(tiny_data), "--storage-path", str(storage)]
    )
    assert result.exit_code == 0, result.output
    return storage / "three", result.output


def test_every_run_records_where_its_wall_time_went(swept):
    experiment, _ = swept
    (run,) = read_timings(experiment)
    parts = [run.data_s, run.ray_start_s, run.shared_s, run.trials_s, run.report_s]
    assert all(p > 0 for p in parts) and run.slots in (1, 2)
    assert run.process_started_at <= run.called_at < run.ended_at
    assert sum(parts) + (run.called_at - run.process_started_at) <= run.wall_s + 1e-6


def test_the_timing_file_never_stands_in_the_way_of_a_resume(swept):
    from tune_mnist.store.trust import untrusted_files

    experiment, _ = swept
    assert (experiment / TIMING_FILE).is_file()
    assert untrusted_files(experiment) == []  # JSON, never unpickled: nothing to sign


def test_every_trial_reports_its_split(swept):
    experiment, _ = swept
    frame = load_results(experiment)
    assert set(frame["status"]) == {"finished"} and len(frame) == 3
    for _, row in frame.iterrows():
        assert row["split_train_s"] == pytest.approx(row["train_time_ms"] / 1000)
        assert row["split_eval_s"] > 0 and row["split_setup_s"] > 0
        assert row["split_checkpoint_s"] > 0  # the epoch's checkpoint was written
        inside = sum(row[f"split_{p}_s"] for p in ("setup", "train", "eval", "checkpoint"))
        assert inside <= row["split_wall_s"] + 1e-6


def test_a_trial_asking_for_what_another_had_runs_in_its_worker(swept):
    experiment, _ = swept
    frame = load_results(experiment)
    assert frame["pid"].nunique() < len(frame)  # reuse_actors: no new process per trial


def test_the_split_is_printed_and_written_with_the_report(swept):
    experiment, output = swept
    assert "Where the time went" in output and "per-trial overhead" in output
    tables = (experiment / "report" / "tables.md").read_text()
    assert "## Where the time went" in tables
    found = timing_split(experiment)
    wall = found.wall.set_index("part")["seconds"]
    assert wall["total, process start to report written"] == pytest.approx(
        wall.drop("total, process start to report written").sum(), abs=0.05
    )
    assert 0 < found.overhead_fraction < 1
    summarized = CliRunner().invoke(app, ["summarize", str(experiment), "--format", "md"])
    assert summarized.exit_code == 0 and "Where the time went" in summarized.output


def test_an_experiment_without_timing_still_summarizes(swept, tmp_path):
    experiment, _ = swept
    import shutil

    older = tmp_path / "older"
    shutil.copytree(experiment, older)
    (older / TIMING_FILE).unlink()
    assert read_timings(older) == [] and timing_split(older) is None
    summarized = CliRunner().invoke(app, ["summarize", str(older), "--format", "md"])
    assert summarized.exit_code == 0 and "Where the time went" not in summarized.output


@pytest.mark.parametrize(
    "content", ["{not json", '{"version": 99, "runs": []}', '{"version": 1, "runs": [{}]}', "[]"]
)
def test_an_unreadable_or_newer_timing_file_reads_as_none(tmp_path, content):
    (tmp_path / TIMING_FILE).write_text(content)
    assert read_timings(tmp_path) == []


def test_a_run_is_recorded_once_and_updated_with_its_report(tmp_path):
    run = RunTiming(100.0, 101.0, 1.0, 2.0, 0.5, 10.0, 2)
    write_timing(tmp_path, run)
    write_timing(tmp_path, RunTiming(100.0, 101.0, 1.0, 2.0, 0.5, 10.0, 2, 3.0, 118.0))
    write_timing(tmp_path, RunTiming(200.0, 201.0, 1.0, 2.0, 0.5, 5.0, 1, 1.0, 211.0))
    runs = read_timings(tmp_path)
    assert [r.report_s for r in runs] == [3.0, 1.0]
    assert json.loads((tmp_path / TIMING_FILE).read_text())["version"] == 1


def test_the_split_arithmetic():
    run = RunTiming(100.0, 102.0, 1.0, 3.0, 1.0, 10.0, 2, report_s=2.0, ended_at=120.0)
    results = pd.DataFrame(
        {
            "started_at": [108.0, 108.0, 150.0 - 100],  # the last: an earlier run's trial
            "split_wall_s": [9.0, 8.0, 99.0],
            "split_setup_s": [1.0, 1.0, 9.0],
            "split_train_s": [6.0, 5.0, 9.0],
            "split_eval_s": [1.0, 1.0, 9.0],
            "split_checkpoint_s": [0.5, 0.5, 9.0],
        }
    )
    found = split([run], results)
    wall = found.wall.set_index("part")["seconds"]
    assert wall.iloc[0] == 2.0  # process start to run_sweep
    assert wall["other (signing; Ray's shutdown, where not during the report)"] == pytest.approx(
        20 - 2 - 1 - 3 - 1 - 10 - 2
    )
    t = found.trials
    assert t["capacity"] == 20 and t["train"] == 11 and t["eval"] == 2
    assert t["outside"] == 3 and t["other"] == pytest.approx(17 - 16)
    assert found.overhead_fraction == pytest.approx(7 / 20)
    assert "per-trial overhead 7.0 (35%)" in found.note()


def test_an_svm_trials_worker_loads_no_torch():
    """A trial's worker imports the trainable's module: for SVMs it stays free of torch and
    torchvision, seconds of every worker start (FLOPs are counted once, in the driver)."""
    code = (
        "import sys, tune_mnist.run.trainables, tune_mnist.train.gram, tune_mnist.train.svm; "
        "print(sorted(m for m in ('torch', 'torchvision', 'fvcore') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"
