"""Live progress: the terminal's view as a function of its state, the view during a real
sweep, and the plain lines (with the time so far and left) without a terminal."""

import re

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tune_mnist import load_space
from tune_mnist.cli.live import LiveView, render
from tune_mnist.cli.main import app
from tune_mnist.run.sweep import SweepSettings, run_sweep
from tune_mnist.run.timeleft import LiveState, RunningTrial, Work, summary_line

from ..conftest import TINY_RESNET, TINY_SVM, write_space


def shown(state: LiveState, width: int = 120) -> str:
    console = Console(record=True, width=width, force_terminal=True, color_system=None)
    console.print(render(state))
    return console.export_text()


STATE = LiveState(
    name="q1a",
    total=8,
    finished=3,
    failed=1,
    running=(
        RunningTrial("mnist/resnet18/bs32/adam/lr0.001/e5/pin/s0", 2, 5, 97.25),
        RunningTrial("mnist/resnet50/bs32/adam/lr0.001/e5/pin/s0"),  # no report yet
    ),
    elapsed_s=120.0,
    done_here=4,
)


def test_the_view_shows_counts_times_and_each_running_trial():
    text = shown(STATE)
    lines = text.splitlines()
    assert lines[0] == (
        "q1a: 3/8 finished, 2 running, 2 pending, 1 failed; 0:02:00 elapsed, ~0:02:00 left"
    )
    row = next(line for line in lines if "resnet18" in line)
    assert re.search(r"resnet18/bs32/adam/lr0\.001/e5/pin/s0\s+2/5\s+97\.25%", row), row
    row = next(line for line in lines if "resnet50" in line)
    assert re.search(r"resnet50\S+\s+—\s+—", row), row
    assert "running trial" in text and "test accuracy" in text
    assert lines[1].endswith(" 4/8")  # the bar, on a line of its own
    assert lines[2].split() == ["running", "trial", "epoch", "test", "accuracy"]


def test_the_estimate_is_the_rate_of_trials_ended_in_this_run():
    # 4 ended in 120 s: 30 s a trial, 4 left (2 running, 2 pending)
    assert STATE.remaining_s == pytest.approx(120.0)
    assert LiveState("x", 4, 0, 0, elapsed_s=50).remaining_s is None  # nothing ended yet
    assert "estimating time left" in summary_line(LiveState("x", 4, 0, 0, elapsed_s=50))
    assert LiveState("x", 4, 3, 1, elapsed_s=50, done_here=2).remaining_s == 0.0
    # a resumed sweep: 6 finished before, 1 in this run, 1 left
    resumed = LiveState("x", 8, 7, 0, elapsed_s=40, done_here=1)
    assert resumed.remaining_s == pytest.approx(40.0) and resumed.pending == 1


def test_with_work_the_estimate_spreads_it_over_the_slots_at_the_ended_trials_rate():
    # a ResNet-50 (work 300) ran 60 s; one ResNet-18 (100) is half way, another (100) waits
    running = (RunningTrial("r18-a", 1, 2, 90.0, work=100.0), RunningTrial("r18-b", work=100.0))
    work = Work(ended=300.0, ended_s=60.0, left=200.0, largest_left=100.0, slots=2)
    state = LiveState("x", 3, 1, 0, running, elapsed_s=60, done_here=1)
    assert state.remaining_s == pytest.approx(120.0)  # counted: 60 s a trial, 2 left
    weighted = LiveState(**{**state.__dict__, "work": work})
    # 5 units a second per slot; 150 left on 2 slots: 15 s, but the waiting trial alone
    # needs 20 s
    assert weighted.remaining_s == pytest.approx(20.0)
    wide = LiveState(**{**weighted.__dict__, "work": Work(300.0, 60.0, 1200.0, 100.0, 2)})
    assert wide.remaining_s == pytest.approx((1200 - 50) / 10)


def test_before_any_trial_ends_its_epochs_give_the_rate_and_a_resume_counts_its_own():
    started = RunningTrial("r18", 1, 4, 90.0, work=100.0, running_s=30.0)
    first_epoch = LiveState("x", 1, 0, 0, (started,), elapsed_s=30, work=Work(left=100.0))
    assert first_epoch.remaining_s == pytest.approx(90.0)  # 25 units in 30 s, 75 left
    waiting = RunningTrial("r18", work=100.0, running_s=30.0)
    assert LiveState("x", 1, 0, 0, (waiting,), 30, work=Work(left=100.0)).remaining_s is None
    # resumed at epoch 2 of 4, at 3 now: a quarter done here in 30 s, a quarter left
    resumed = RunningTrial("r18", 3, 4, 90.0, work=100.0, from_epoch=2, running_s=30.0)
    assert resumed.work_done == 75.0 and resumed.work_done_here == 25.0
    again = LiveState("x", 1, 0, 0, (resumed,), elapsed_s=30, work=Work(left=100.0))
    assert again.remaining_s == pytest.approx(30.0)


def test_no_running_trials_no_table():
    text = shown(LiveState("x", 2, 2, 0, elapsed_s=3, done_here=2))
    assert "running trial" not in text and "0:00:00 left" in text


@pytest.fixture(scope="module")
def live_sweep(local_ray, tiny_data, tmp_path_factory):
    """A ResNet sweep shown in a live view on a (recorded) terminal."""
    folder = tmp_path_factory.mktemp("live")
    grid = {"dataset": ["mnist"], "batch_size": [32, 48], "epochs": [3]}
    spec = load_space(write_space(folder, name="live", **{**TINY_RESNET, "grid": grid}))
    settings = SweepSettings(data_dir=str(tiny_data), storage_path=str(folder / "results"))
    console = Console(record=True, width=160, force_terminal=True, color_system=None)
    with LiveView(console) as view:
        run_sweep(spec, settings, on_event=view.say, view=view)
    return console.export_text()


def test_the_live_view_follows_a_real_sweep(live_sweep):
    assert "live: 0/2 finished, 2 running, 0 pending, 0 failed" in live_sweep
    # the trials' reported epochs give an estimate before either has finished
    assert re.search(r"live: 0/2 finished, [12] running, .* ~\d:\d\d:\d\d left", live_sweep)
    # a running trial's epoch and latest accuracy, as the trainable reported them
    assert re.search(r"mnist/resnet18/bs\d\d/\S+\s+[123]/3\s+\d+\.\d\d%", live_sweep), live_sweep
    assert "live: 2/2 finished, 0 running, 0 pending, 0 failed" in live_sweep
    # the event lines go above the view, as without a terminal
    assert re.search(r"\[2/2\] mnist/resnet18/\S+: \d+\.\d\d% in \d+\.\ds \(", live_sweep)


def test_without_a_terminal_one_line_per_event(local_ray, tiny_data, tmp_path):
    space = write_space(tmp_path, name="plain", **TINY_SVM)
    result = CliRunner().invoke(
        app,
        ["sweep", str(space), "--data-dir", str(tiny_data), "--storage-path", str(tmp_path / "r")],
    )
    assert result.exit_code == 0, result.output
    done = [line for line in result.output.splitlines() if line.startswith("[")]
    assert len(done) == 4, result.output
    for number, line in enumerate(done, start=1):
        assert re.fullmatch(
            rf"\[{number}/4\] (mnist|fashion-mnist)/svm-\S+: \d+\.\d\d% in \d+\.\ds "
            r"\(\d:\d\d:\d\d elapsed, ~\d:\d\d:\d\d left\)",
            line,
        ), line
    assert done[-1].endswith("~0:00:00 left)")
    assert "running trial" not in result.output  # no live view
