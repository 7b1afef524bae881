"""The Ray Tune trainable's own logic: which checkpoint a restarted trial continues from."""

import torch
from ray import tune

from tune_mnist.trainables import STATE_FILE, newest_state


def save_epochs(folder, *epochs):
    for i, epoch in enumerate(epochs):
        checkpoint = folder / f"checkpoint_{i:06d}"
        checkpoint.mkdir(parents=True)
        torch.save({"epoch": epoch, "train_time_ms": 1.0 * epoch}, checkpoint / STATE_FILE)


def test_a_newer_checkpoint_on_disk_wins_over_the_one_tune_recorded(tmp_path):
    save_epochs(tmp_path, 1, 2)  # Tune's state still pointed at the first when killed
    recorded = tune.Checkpoint.from_directory(str(tmp_path / "checkpoint_000000"))
    assert newest_state(recorded, tmp_path)["epoch"] == 2
    assert newest_state(None, tmp_path)["epoch"] == 2


def test_no_checkpoint_anywhere_is_a_fresh_start(tmp_path):
    assert newest_state(None, tmp_path) is None
    assert newest_state(None, None) is None
    assert newest_state(None, tmp_path / "absent") is None
