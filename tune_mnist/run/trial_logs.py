"""Tune's per-trial logs (result.json, progress.csv), kept whole when a trial restarts.

Tune writes each trial's log in the driver's staging folder and uploads it over the copy
in storage. On a restart it first copies the stored log back, but only for a trial it has
a checkpoint on record for. Tune records checkpoints at most once a second, so a driver
killed in between leaves trials with checkpoints in storage that its state never saw;
the trainable restarts such a trial from its newest checkpoint (trainables.newest_state),
and Tune, starting its log afresh, would upload one that has lost every earlier epoch.
These loggers copy the stored log back whenever there is one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow.fs
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

logger = logging.getLogger(__name__)


class _KeepStoredLog:
    """Restore a trial's stored log before appending to it, checkpoint on record or not
    (Tune's own copy, without its `if not trial.checkpoint: return`)."""

    def _restore_from_remote(self, file_name: str, trial) -> None:
        fs = trial.storage.storage_filesystem
        stored = Path(trial.storage.trial_fs_path, file_name).as_posix()
        try:
            if fs.get_file_info(stored).type != pyarrow.fs.FileType.File:
                return  # a trial's first start: nothing stored yet
            local = Path(trial.local_path, file_name).as_posix()
            pyarrow.fs.copy_files(stored, local, source_filesystem=fs)
        except OSError as e:  # as Tune does when its own copy fails: the trial goes on
            logger.warning("could not copy back %s of %s: %s", file_name, trial, e)


class ResultJson(_KeepStoredLog, JsonLoggerCallback):
    """Tune's result.json logger, keeping the stored lines of a restarted trial."""


class ProgressCsv(_KeepStoredLog, CSVLoggerCallback):
    """Tune's progress.csv logger, keeping the stored rows of a restarted trial."""


def loggers() -> list:
    """The loggers that replace Tune's default JSON and CSV ones in a sweep's RunConfig."""
    return [ResultJson(), ProgressCsv()]
