"""An experiment folder as DataFrames: statuses, compute, epochs."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tune_mnist import load_epochs, load_results
from tune_mnist.analysis.report import summarize
from tune_mnist.cli.main import app
from tune_mnist.spec.spaces import load_space
from tune_mnist.store.results import load_experiment

from ..conftest import write_space
from ..experiments import COMPARE, make_experiment


def test_compute_is_accounted_per_trial_and_summed(repeated):
    results = load_results(repeated)
    first = results.iloc[0]
    assert first["gpu_seconds"] == pytest.approx(4.0 * 0.25)
    assert first["images_seen"] == 200  # 100 training images x 2 epochs
    assert first["train_pflops_est"] == pytest.approx(3 * 0.0332 * 200 / 1e6)
    compute = next(t for t in summarize(repeated, write=False).tables if t.name == "cmp-compute")
    total = compute.frame.iloc[-1]
    assert total["dataset"] == "all" and total["trials"] == 6
    assert total["GPU-seconds"] == pytest.approx(6.0)


def test_pending_trials_are_listed_not_counted(tmp_path):
    spec = load_space(write_space(tmp_path, name="cmp", **COMPARE))
    summary = summarize(make_experiment(tmp_path / "exp", spec, lambda t: 90.0, skip={0, 2}))
    assert not summary.complete and summary.incomplete["status"].tolist() == ["pending", "pending"]
    assert summary.tables[0].frame.set_index("model").loc["ResNet-18", "n"] == 1


def test_load_epochs_one_row_per_trial_and_epoch(repeated):
    epochs = load_epochs(repeated)
    assert len(epochs) == 12 and sorted(epochs["epoch"].unique()) == [1, 2]


# Damaged trial files, as a crash, a full disk or a stray tool leaves them. Each edits the
# folder of trial 0 (ResNet-18, 2 epochs, finished) and says what that trial then reads as:
# its status and how many of its epochs still count.
def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def _set_line(index: int, raw: bytes):
    def corrupt(trial: Path) -> None:
        lines = _lines(trial / "result.json")
        lines[index] = raw
        (trial / "result.json").write_bytes(b"\n".join(lines))

    return corrupt


def _append_line(raw: bytes):
    def corrupt(trial: Path) -> None:
        (trial / "result.json").write_bytes(b"\n".join([*_lines(trial / "result.json"), raw]))

    return corrupt


def _write(name: str, raw: bytes):
    return lambda trial: (trial / name).write_bytes(raw)


def _cut_last_line(trial: Path) -> None:
    last = _lines(trial / "result.json")[-1]
    _set_line(-1, last[: len(last) // 2])(trial)


def _failed_with_binary_error(trial: Path) -> None:
    _cut_last_line(trial)
    error = b"Traceback (most recent call last):\n\xff\xfeRuntimeError: boom \x80\n"
    (trial / "error.txt").write_bytes(error)


BINARY = bytes(range(128, 256)) * 4 + b"\n\xc3\x28\n\xff{}\n"
CORRUPT = {
    # A line that is not a report is skipped; the finished report before it still counts.
    "result line an array": (_append_line(b"[1, 2, 3]"), "finished", 2),
    "result line a string": (_append_line(b'"done"'), "finished", 2),
    # Without its last report the trial reads as it did before epoch 2 was written.
    "last result line a number": (_set_line(-1, b"42"), "running", 1),
    "last result line cut short": (_cut_last_line, "running", 1),
    "last result line nested too deep": (_set_line(-1, b"[" * 100_000), "running", 1),
    "last result line a 5000-digit number": (_set_line(-1, b"1" * 5000), "running", 1),
    "last report of another shape": (
        _set_line(-1, b'{"epoch": [2], "test_accuracy": 90, "trial_finished": true}'),
        "running",
        1,
    ),
    "last report with an infinite time": (
        _set_line(-1, b'{"epoch": 2, "train_time_ms": Infinity, "trial_finished": true}'),
        "running",
        1,
    ),
    "result line not UTF-8": (_set_line(0, b'{"epoch": 1, "device": "\xff\xfe"}'), "finished", 1),
    "result.json all binary": (_write("result.json", BINARY), "running", 0),
    # A folder naming no trial leaves its trial unmatched: pending, as with no folder.
    "params.json an array": (_write("params.json", b"[1]"), "pending", 0),
    "params.json a number": (_write("params.json", b"42"), "pending", 0),
    "params.json null": (_write("params.json", b"null"), "pending", 0),
    "params.json an empty object": (_write("params.json", b"{}"), "pending", 0),
    "params.json trial not an object": (_write("params.json", b'{"trial": [1]}'), "pending", 0),
    "params.json binary": (_write("params.json", BINARY), "pending", 0),
    "params.json empty": (_write("params.json", b""), "pending", 0),
    "error.txt binary": (_failed_with_binary_error, "error", 1),
}


def _snapshot(folder: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CORRUPT, ids=list(CORRUPT))
def test_a_damaged_trial_reads_as_its_status_and_leaves_the_others_alone(repeated, case):
    corrupt, status, epochs = CORRUPT[case]
    before = load_experiment(repeated)
    corrupt(repeated / "t000")
    files = _snapshot(repeated)

    after = load_experiment(repeated)
    summarize(repeated, write=False)  # the tables too take what was read

    assert _snapshot(repeated) == files  # reading wrote, moved or touched nothing
    damaged = after.results.iloc[0]
    assert damaged["status"] == status
    assert (after.epochs["label"] == damaged["label"]).sum() == epochs
    if status == "pending":
        assert pd.isna(damaged["trial_dir"])
    assert _rows(after.results.iloc[1:]) == _rows(before.results.iloc[1:])
    others = [e.epochs[e.epochs["label"] != damaged["label"]] for e in (after, before)]
    assert _rows(others[0]) == _rows(others[1])


def _rows(frame: pd.DataFrame) -> list[dict]:
    # Values, not dtypes: a column's dtype follows the damaged row too (its NaN makes ints
    # floats, its error string makes the missing errors NaN instead of None).
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def test_a_binary_error_file_gives_its_last_line_with_replacement_characters(repeated):
    _failed_with_binary_error(repeated / "t000")
    error = load_results(repeated).iloc[0]["error"]
    assert error == "\ufffd\ufffdRuntimeError: boom \ufffd"


@pytest.mark.parametrize(
    ("case", "exit_code"), [("params.json an array", 3), ("result line an array", 0)]
)
def test_summarize_a_damaged_experiment_prints_tables_not_a_traceback(repeated, case, exit_code):
    corrupt, status, _ = CORRUPT[case]
    corrupt(repeated / "t000")
    trial_files = _snapshot(repeated / "t000")

    result = CliRunner().invoke(app, ["summarize", str(repeated), "--format", "csv"])

    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    assert result.exit_code == exit_code, result.output
    assert "cmp: model comparison" in result.output
    if status != "finished":
        assert "1 trials did not finish" in result.output and status in result.output
    assert _snapshot(repeated / "t000") == trial_files


def test_a_diverged_trial_is_marked_ended_and_left_out_of_the_tables(repeated):
    trial_dir = repeated / "t000"
    lines = (trial_dir / "result.json").read_text().splitlines()
    report = json.loads(lines[0]) | {"diverged": True, "train_loss": float("nan")}
    (trial_dir / "result.json").write_text(json.dumps(report) + "\n")
    frame = load_results(repeated)
    first = frame.iloc[0]
    assert first["status"] == "diverged"
    assert first["error"] == (
        "training loss nan in epoch 1: not finite, or over 10x an untrained classifier's"
    )
    summary = summarize(repeated, write=False)
    assert summary.tables[0].frame.set_index("model").loc["ResNet-18", "n"] == 2
    # it has ended: nothing is left for resume, and the summary lists it as diverged
    assert summary.complete and summary.diverged["label"].tolist() == [first["label"]]
