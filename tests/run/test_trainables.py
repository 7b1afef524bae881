"""The Ray Tune trainable's own logic: which checkpoint a restarted trial continues from."""

import os

import pytest
import torch
from ray import tune

from tune_mnist.errors import TuneMnistError
from tune_mnist.run.trainables import STATE_FILE, newest_state


def save_epochs(folder, *epochs):
    for i, epoch in enumerate(epochs):
        checkpoint = folder / f"checkpoint_{i:06d}"
        checkpoint.mkdir(parents=True)
        torch.save({"epoch": epoch, "train_time_ms": 1.0 * epoch}, checkpoint / STATE_FILE)


def test_a_newer_checkpoint_on_disk_wins_over_the_one_tune_recorded(tmp_path):
    save_epochs(tmp_path, 1, 2)  # Tune's state still pointed at the first when killed
    recorded = tune.Checkpoint.from_directory(str(tmp_path / "checkpoint_000000"))
    assert newest_state(recorded, tmp_path).state["epoch"] == 2
    assert newest_state(None, tmp_path).state["epoch"] == 2


def test_a_truncated_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    save_epochs(tmp_path, 1, 2)
    newest = tmp_path / "checkpoint_000001" / STATE_FILE
    newest.write_bytes(newest.read_bytes()[:40])  # cut short, as by a crash mid-write
    recorded = tune.Checkpoint.from_directory(str(tmp_path / "checkpoint_000001"))
    restored = newest_state(recorded, tmp_path)
    assert restored.state["epoch"] == 1 and restored.unreadable == 2  # Tune's and the folder's


class Payload:
    """Runs a command when unpickled, as a tampered checkpoint would."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_holding_code_is_not_loaded_and_its_code_never_runs(tmp_path):
    save_epochs(tmp_path, 1)
    marker = tmp_path / "payload-ran"
    state = {"epoch": 5, "payload": Payload(marker)}
    torch.save(state, tmp_path / "checkpoint_000000" / STATE_FILE)
    assert newest_state(None, tmp_path).state is None
    assert not marker.exists()


def test_no_checkpoint_anywhere_is_a_fresh_start(tmp_path):
    assert newest_state(None, tmp_path).state is None
    assert newest_state(None, None).state is None
    assert newest_state(None, tmp_path / "absent").state is None


def test_a_custom_trainables_checkpoint_holding_code_is_one_line_and_never_runs(tmp_path):
    from tune_mnist.run.custom import STATE_FILE as CUSTOM_STATE
    from tune_mnist.run.custom import load_state

    marker = tmp_path / "payload-ran"
    torch.save({"step": 3, "payload": Payload(marker)}, tmp_path / CUSTOM_STATE)
    with pytest.raises(TuneMnistError, match="holds more than tensors and plain values"):
        load_state(tmp_path)
    assert not marker.exists()
    torch.save({"step": 3, "weights": torch.ones(2)}, tmp_path / CUSTOM_STATE)
    assert load_state(tmp_path)["step"] == 3
