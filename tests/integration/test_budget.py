"""Budgets on a real local Ray (2 CPUs), tiny data: --max-trials, --time-budget, resume;
and repeats in balanced order."""

import json
import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tune_mnist import load_results, load_space
from tune_mnist.cli.main import app
from tune_mnist.run.sweep import SweepSettings, resume_sweep, run_sweep
from tune_mnist.run.tune_inputs import check_experiment_dir
from tune_mnist.spec.budget import make_budget, parse_duration
from tune_mnist.spec.spaces import parse_space
from tune_mnist.store.experiment import META_FILE, Budget, TuneRun, read_meta, write_meta
from tune_mnist.store.opened import open_experiment

from ..conftest import TINY_RESNET, write_space
from ..experiments import make_experiment

# three kernels, two seeds: six trials, the first three one complete design at seed 0
KERNELS = dict(
    trainable="svm",
    fixed={"train_samples": 80, "dataset": "mnist"},
    grid={"kernel": ["rbf", "poly", "linear"]},
    repeats=2,
)


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def trial_files(experiment: Path) -> dict[str, int]:
    """Every file in the experiment's trial folders, with its modification time."""
    return {
        str(p): p.stat().st_mtime_ns
        for p in experiment.rglob("*")
        if p.is_file() and (p.parent / "params.json").is_file()
    }


# ------------------------------------------------------------------ no Ray


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1.5h", 5400), ("1h30m", 5400)],
)
def test_durations_read_in_seconds_minutes_and_hours(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--time-budget", "2x"], "--time-budget 2x: expected a duration such as 90s, 30m, 2h"),
        (["--time-budget", "h"], "--time-budget h: expected a duration"),
        (["--time-budget", "0s"], "--time-budget 0s: expected more than 0 seconds"),
        (["--max-trials", "0"], "--max-trials 0: expected 1 or more"),
        (["--max-gpu-hours", "-1"], "--max-gpu-hours -1: expected more than 0"),
    ],
)
def test_a_bad_budget_is_one_line_and_exit_1(tmp_path, args, message):
    space = write_space(tmp_path, **KERNELS)
    result = invoke("sweep", space, *args)
    assert result.exit_code == 1
    assert message in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "ray_results").exists()


def test_budget_options_make_a_budget():
    assert make_budget() is None
    assert make_budget("1h", 4, 0.5) == Budget(time_s=3600, max_trials=4, gpu_seconds=1800)


def test_repeats_run_in_balanced_order():
    spec = parse_space({"name": "r", **KERNELS, "repeats": 3})
    assert [(t.kernel, t.seed) for t in spec.trials] == [
        (kernel, seed) for seed in range(3) for kernel in ("rbf", "poly", "linear")
    ]
    # any prefix of whole seeds is a complete design: every configuration once per seed
    for seeds in (1, 2):
        kept = spec.trials[: 3 * seeds]
        assert {t.kernel for t in kept} == {"rbf", "poly", "linear"}
        assert sorted(t.seed for t in kept) == sorted(list(range(seeds)) * 3)


def test_an_experiment_of_the_old_order_still_resumes(tmp_path):
    spec = load_space(write_space(tmp_path, **KERNELS))
    old_order = sorted(spec.trials, key=lambda t: (t.kernel != "rbf", t.kernel, t.seed))
    assert old_order != spec.trials  # seeds side by side, as before balanced order
    folder = make_experiment(tmp_path / "exp", replace(spec, trials=old_order), lambda t: 90.0)
    assert (
        check_experiment_dir(open_experiment(folder), spec, resume=True)
        == read_meta(folder).version
    )


def test_the_budget_and_what_it_spent_are_saved_and_older_files_have_none(tmp_path):
    spec = load_space(write_space(tmp_path, **KERNELS))
    folder = make_experiment(tmp_path / "exp", spec, lambda t: 90.0)
    meta = read_meta(folder)
    assert meta.runs == [TuneRun()] and meta.run.budget is None  # as a version 2 file reads
    record = json.loads((folder / META_FILE).read_text())
    del record["runs"]
    (folder / META_FILE).write_text(json.dumps({**record, "version": 2}))
    assert read_meta(folder).runs == [TuneRun()]
    budget = Budget(time_s=60, max_trials=2)
    run = TuneRun("extend-1", spec.trials[:2], budget, spent_s=12.5, spent_gpu_s=3.0, stopped="x")
    write_meta(folder, replace(meta, runs=[TuneRun(), run]))
    assert read_meta(folder).runs == [TuneRun(), run]


# ------------------------------------------------------------------ --max-trials


@pytest.fixture(scope="module")
def by_trials(local_ray, tiny_data, tmp_path_factory):
    """A CLI sweep of six trials stopped by --max-trials 3, then a resume of it."""
    folder = tmp_path_factory.mktemp("trials")
    space = write_space(folder, **KERNELS)
    storage = folder / "runs"
    swept = invoke(
        "sweep", space, "--data-dir", tiny_data, "--storage-path", storage, "--max-trials", 3
    )
    experiment = storage / "tiny"
    before = trial_files(experiment)
    resumed = invoke("resume", experiment)
    return swept, resumed, experiment, before


def test_max_trials_runs_the_first_trials_a_complete_design(by_trials):
    swept, _, experiment, _ = by_trials
    assert swept.exit_code == 0, swept.output
    assert "stopped on its budget: --max-trials 3 reached" in swept.output
    results = load_results(experiment)
    done = results[results["status"] == "finished"]
    assert len(done) == 3 and set(done["seed"]) == {0}
    assert set(done["kernel"]) == {"rbf", "poly", "linear"}  # every configuration, once
    assert (results.loc[results["status"] != "finished", "status"] == "pending").all()
    assert len(list(experiment.glob("*/params.json"))) == 3  # the rest were never created


def test_the_report_says_the_budget_stopped_it_and_what_did_not_run(by_trials):
    _, _, experiment, _ = by_trials
    tables = (experiment / "report" / "tables.md").read_text()
    assert "## tiny: budget" in tables
    assert "The sweep stopped on its budget (--max-trials 3 reached): 3 of 6 trials" in tables
    assert tables.count("not started") == 3
    assert "Incomplete trials" not in tables  # left out on purpose, not failed
    run = read_meta(experiment).run
    assert run.budget == Budget(max_trials=3) and run.stopped == "--max-trials 3 reached"
    assert run.spent_s > 0


def test_resume_after_the_budget_ran_out_runs_nothing(by_trials):
    _, resumed, experiment, before = by_trials
    assert resumed.exit_code == 0, resumed.output
    assert "nothing to resume: --max-trials 3 reached" in resumed.output
    assert trial_files(experiment) == before


# ------------------------------------------------------------------ --time-budget


@pytest.fixture(scope="module")
def by_time(local_ray, tiny_data, tmp_path_factory):
    """A CLI sweep of two 3-epoch ResNet trials given one second of wall-clock time."""
    folder = tmp_path_factory.mktemp("time")
    space = write_space(folder, **{**TINY_RESNET, "grid": {**TINY_RESNET["grid"], "epochs": [3]}})
    storage = folder / "runs"
    swept = invoke(
        "sweep", space, "--data-dir", tiny_data, "--storage-path", storage, "--time-budget", "1s"
    )
    experiment = storage / "tiny"
    before = trial_files(experiment)
    resumed = invoke("resume", experiment)
    return swept, resumed, experiment, before


def test_time_budget_stops_the_sweep_and_the_report_says_so(by_time):
    swept, _, experiment, _ = by_time
    assert swept.exit_code == 0, swept.output
    assert "stopped on its budget: time budget of 1s spent" in swept.output
    results = load_results(experiment)
    assert (results["status"] != "finished").any()
    left = results[results["status"] != "finished"]
    tables = (experiment / "report" / "tables.md").read_text()
    assert "The sweep stopped on its budget (time budget of 1s spent" in tables
    for label in left["label"]:
        assert label in tables.split("## tiny: budget")[1]
    run = read_meta(experiment).run
    assert run.stopped.startswith("time budget of 1s spent") and run.spent_s >= 1


def test_resume_after_the_time_ran_out_runs_nothing(by_time):
    _, resumed, experiment, before = by_time
    assert resumed.exit_code == 0, resumed.output
    assert "nothing to resume: time budget of 1s spent" in resumed.output
    assert trial_files(experiment) == before


# ------------------------------------------------------------------ interrupted, resumed


def test_a_resumed_sweep_has_only_what_is_left_of_its_budget(local_ray, tiny_data, tmp_path):
    spec = load_space(write_space(tmp_path, **KERNELS))
    settings = SweepSettings(data_dir=str(tiny_data), storage_path=str(tmp_path / "runs"))

    def ctrl_c_after_the_first_trial(message: str) -> None:
        if message.startswith("[1/"):
            os.kill(os.getpid(), signal.SIGINT)  # Tune's handler: a clean stop, as Ctrl-C

    budget = Budget(time_s=3600, max_trials=4)
    first = run_sweep(spec, settings, ctrl_c_after_the_first_trial, budget)
    run = read_meta(first.experiment_dir).run
    assert run.stopped is None and run.spent_s > 0  # interrupted, not stopped by its budget
    assert (first.results["status"] == "finished").sum() < 4

    resumed = resume_sweep(first.experiment_dir)
    status = resumed.results["status"].tolist()
    assert status == ["finished"] * 4 + ["pending"] * 2  # 4 in all, over both runs
    after = read_meta(first.experiment_dir).run
    assert after.stopped == "--max-trials 4 reached"
    assert after.spent_s > run.spent_s  # the resumed run's time added to the first's
