"""Tune's trial logs kept whole across a restart Tune has no checkpoint on record for."""

import csv
import json
from pathlib import Path

import pytest
from ray import tune
from ray.train._internal.storage import StorageContext
from ray.tune.experiment import Trial
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from tune_mnist.run.trial_logs import ProgressCsv, ResultJson


def epochs_logged(logger, trial: Trial, file_name: str, epoch: int) -> list[int]:
    """Log one report of `epoch` as a (re)started trial, then read back the epochs the
    trial's log holds."""
    logger.log_trial_result(1, trial, {"epoch": epoch})
    logger.log_trial_end(trial)
    text = Path(trial.local_path, file_name).read_text()
    if file_name.endswith(".csv"):
        return [int(row["epoch"]) for row in csv.DictReader(text.splitlines())]
    return [json.loads(line)["epoch"] for line in text.splitlines()]


@pytest.fixture
def trial(local_ray, tmp_path) -> Trial:
    """A trial of an experiment in `tmp_path` (its storage), staged where Tune stages it."""
    storage = StorageContext(
        storage_path=str(tmp_path), experiment_dir_name="exp", trial_dir_name="trial_1"
    )
    tune.register_trainable("tiny", lambda config: None)
    trial = Trial("tiny", config={}, storage=storage)
    trial.init_local_path()  # as Tune does before any logger sees the trial
    return trial


def store(trial: Trial, file_name: str, text: str) -> None:
    """The log a killed driver uploaded for this trial before Tune recorded a checkpoint."""
    stored = Path(trial.storage.trial_fs_path)
    stored.mkdir(parents=True, exist_ok=True)
    (stored / file_name).write_text(text)


LOGS = [
    (ResultJson, JsonLoggerCallback, "result.json", '{"epoch": 1}\n'),
    (ProgressCsv, CSVLoggerCallback, "progress.csv", "epoch\n1\n"),
]


@pytest.mark.parametrize("ours, tunes, file_name, stored", LOGS)
def test_a_restart_with_no_checkpoint_on_record_keeps_the_stored_log(
    trial, ours, tunes, file_name, stored
):
    assert trial.checkpoint is None  # as for a trial whose checkpoint Tune never recorded
    store(trial, file_name, stored)
    assert epochs_logged(ours(), trial, file_name, epoch=2) == [1, 2]
    # Tune's own logger starts afresh, and its upload would replace the stored log
    Path(trial.local_path, file_name).unlink()
    assert epochs_logged(tunes(), trial, file_name, epoch=2) == [2]


@pytest.mark.parametrize("ours, tunes, file_name, stored", LOGS)
def test_a_first_start_logs_from_nothing(trial, ours, tunes, file_name, stored):
    assert epochs_logged(ours(), trial, file_name, epoch=1) == [1]
