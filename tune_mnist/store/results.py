"""An experiment directory as pandas DataFrames, read from files: no Ray, no re-running.

The folder's layout and metadata belong to experiment.py; this module reads the trial
folders Ray Tune writes (`params.json`, `result.json` with one JSON report per line,
`error.txt` on failure) against the trials the metadata declares. Trials declared
but no folder holds are listed as `pending`, so an
interrupted sweep reads as exactly what it is. A sampled search (search.py) declares no
trials ahead: its trials are the ones its folders hold, in the order Tune made them. A
trial its scheduler stopped early reads as `stopped early`, never as finished.

Every file is checked for the shape Ray writes, and a damaged one never stops the reading
(nor is it touched): a folder whose params.json is unreadable names no trial (its trial
reads as pending); a result.json line that is cut short, not UTF-8 or not a report object
is skipped, the readable ones still count.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tune_mnist.spec.configs import (
    ALL_CONFIG_FIELDS,
    BUILTIN_SHAPE,
    DATASETS,
    DIVERGED_FACTOR,
    TrialConfig,
    trial_from_dict,
    trial_key,
    trial_to_dict,
)
from tune_mnist.store.experiment import (
    ExperimentMeta,
    Predictions,
    read_predictions,
    read_stopped_early,
)
from tune_mnist.store.opened import Experiment, open_experiment

# A trial's status as its files tell it. The sets below are the one definition every
# command uses: status, summarize, the report, resume and --extend agree on them.
FINISHED, DIVERGED, STOPPED_EARLY = "finished", "diverged", "stopped early"
# Ended for good: resume and --extend never run these again, and an experiment whose
# trials all ended is complete (a diverged trial included: its loss cannot come back).
ENDED = (FINISHED, DIVERGED, STOPPED_EARLY)
# With a last accuracy to report: what the report's tables count as done.
SCORED = (FINISHED, STOPPED_EARLY)

# Ray adds these to every report; they say nothing about the trial we did not keep.
_RAY_KEYS = {
    "config",
    "date",
    "done",
    "node_ip",
    "hostname_ray",
    "iterations_since_restore",
    "time_since_restore",
    "time_this_iter_s",
    "timesteps_since_restore",
    "checkpoint_dir_name",
    "should_checkpoint",
    "timestamp",
    "time_total_s",
}


# The types the trainable reports these keys with: a report that has one of another type
# was not written by it (or was damaged), and one wrong value would otherwise break a sort,
# a set or a table further on.
_NUMBER = (int, float, type(None))
_REPORT_TYPES: dict[str, tuple[type, ...]] = {
    "epoch": (int,),
    "trial_finished": (bool,),
    "device": (str,),
    "test_accuracy": _NUMBER,
    "train_time_ms": _NUMBER,
    "gflops_fvcore": _NUMBER,
    "assigned_gpus": _NUMBER,
    "assigned_cpus": _NUMBER,
    "gflops": _NUMBER,
    "params_m": _NUMBER,
}
_SCALARS = (str, int, float, bool, type(None))
_LARGEST = 2**53  # the integers a float, and so a DataFrame column, holds exactly


def _parse_json(raw: bytes) -> Any:
    """A JSON value from bytes; None when they are not UTF-8 JSON.

    ValueError covers malformed JSON, bytes that are not UTF-8 and integers too long to
    parse; RecursionError, arrays nested too deep for the parser.
    """
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return None


def _fits(value: Any, types: tuple[type, ...]) -> bool:
    # bool is an int to isinstance, but true is no epoch and no accuracy.
    if isinstance(value, bool):
        return bool in types
    if not isinstance(value, types):
        return False
    if isinstance(value, int | float):
        # NaN reads as a missing value; an infinite or astronomically large one (no
        # trainable reports it) would overflow the integer columns of the tables.
        return math.isnan(value) or abs(value) < _LARGEST
    return True


def _as_report(value: Any) -> dict | None:
    """One result.json line as a report, or None when it is not one the trainable wrote."""
    if not isinstance(value, dict):
        return None
    if any(k in value and not _fits(value[k], types) for k, types in _REPORT_TYPES.items()):
        return None
    # Ray's own nested entries (config) are dropped anyway; other nested values would
    # not fit a table cell, so only plain values are kept.
    return {k: v for k, v in value.items() if isinstance(v, _SCALARS)}


def _read_reports(folder: Path) -> list[dict]:
    """The reports of one trial, one per line.

    A line cut short by a crash, not UTF-8, or not a report object is skipped, so the
    readable reports around it still count; an unreadable file has none.
    """
    path = folder / "result.json"
    try:
        # Bytes, not text: one bad byte sequence must cost its own line, not the file.
        lines = path.read_bytes().splitlines() if path.is_file() else []
    except OSError:
        return []
    reports = []
    for line in lines:
        report = _as_report(_parse_json(line))
        if report is not None:
            reports.append(report)
    return reports


def _trial_folders(runs: list[Path]) -> dict[str, Path]:
    """Trial config key -> its folder in any of the experiment's Tune runs (the newest, if
    Ray made two for one config: a trial `--extend` ran again after a budget stopped it).

    A folder whose params.json is unreadable or not {"trial": {...}} names no trial, so
    the trial it was meant for reads as pending, as if its folder were missing.
    """
    found = []
    for params in (p for run in runs for p in run.glob("*/params.json")):
        try:
            raw, mtime = params.read_bytes(), params.stat().st_mtime
        except OSError:
            continue
        record = _parse_json(raw)
        trial = record.get("trial") if isinstance(record, dict) else None
        if isinstance(trial, dict):
            found.append((mtime, params.parent.name, trial_key(trial), params.parent))
    # Sorted by time so the newest folder of a config wins; the name breaks ties.
    return {key: folder for _, _, key, folder in sorted(found)}


def _first_error_line(folder: Path) -> str | None:
    path = folder / "error.txt"
    if not path.is_file():
        return None
    try:
        # A crash can leave bytes that are not UTF-8; the rest of the message still reads.
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"error.txt unreadable ({e.strerror or type(e).__name__})"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # Ray puts the failing call first and the exception last; the last line says what broke.
    return lines[-1] if lines else "unknown error"


def _own_sizes(frame: pd.DataFrame) -> pd.DataFrame:
    """Trials that kept their data's own size, beside resized ones: that size (28 for the
    built-in datasets; a space's own datasets keep no record of theirs, and stay empty)."""
    if "image_size" in frame and frame["image_size"].isna().any():
        own = frame["dataset"].map(lambda d: BUILTIN_SHAPE[1] if d in DATASETS else None)
        frame["image_size"] = frame["image_size"].fillna(own)
    return frame


def _trial_row(
    trial: TrialConfig, folder: Path | None, reports: list[dict], smoke: bool
) -> dict[str, Any]:
    row: dict[str, Any] = {"label": trial.label, **trial_to_dict(trial), "smoke": smoke}
    last = reports[-1] if reports else {}
    error = _first_error_line(folder) if folder else None
    if last.get("trial_finished"):
        status = FINISHED
    elif last.get("diverged") is True:  # stopped on a loss no model has: no result
        loss = last.get("train_loss")
        loss = f"{loss:.4g}" if isinstance(loss, float) else loss
        status = DIVERGED
        error = (
            f"training loss {loss} in epoch {last.get('epoch')}: not finite, or over "
            f"{DIVERGED_FACTOR}x an untrained classifier's"
        )
    elif folder and read_stopped_early(folder) is not None:  # its scheduler stopped it
        status = STOPPED_EARLY
    elif error:
        status = "error"
    else:
        status = "running" if folder else "pending"
    row |= {k: v for k, v in last.items() if k not in _RAY_KEYS and k not in row}
    row |= {"status": status, "error": error, "trial_dir": str(folder) if folder else None}
    return row


@dataclass
class ExperimentData:
    """An experiment folder read once: its metadata, trials and per-epoch reports."""

    meta: ExperimentMeta
    results: pd.DataFrame  # one row per declared trial (load_results)
    epochs: pd.DataFrame  # one row per trial and epoch (load_epochs)
    # a finished trial's saved test predictions, by its trial_dir (labels need not be unique)
    predictions: dict[str, Predictions] = field(default_factory=dict)


def load_experiment(experiment: str | Path | Experiment) -> ExperimentData:
    """Read every trial's reports once, into both DataFrames, beside the metadata.

    `experiment` is one opened (opened.py), or a folder or a URI in object storage, which
    is opened here (a URI is read through its local copy, brought up to date first)."""
    opened = open_experiment(experiment)
    experiment, meta = opened.folder, opened.meta
    folders = _trial_folders(meta.run_dirs(experiment))
    rows, epoch_rows, predictions = [], [], {}
    declared = _sampled_trials(folders) if is_sampled(meta) else meta.trials
    for number, trial in enumerate(declared):
        config = trial_to_dict(trial)
        folder = folders.get(trial_key(config))
        reports = _read_reports(folder) if folder else []
        rows.append(_trial_row(trial, folder, reports, meta.smoke))
        if meta.space.scheduler is not None:
            rows[-1]["early_stopped"] = rows[-1]["status"] == "stopped early"
        if rows[-1]["status"] == "finished" and (saved := read_predictions(folder)):
            predictions[str(folder)] = saved
        by_epoch = {r["epoch"]: r for r in reports if "epoch" in r}  # the latest of each
        for report in by_epoch.values():
            # The declared config wins over a report's keys of the same name.
            kept = {k: v for k, v in report.items() if k not in _RAY_KEYS | {"label", *config}}
            epoch_rows.append({"label": trial.label, **config, **kept, "_trial": number})
    keys = {k for trial in meta.trials for k in trial_to_dict(trial)} - {"trainable"}
    results = with_rows(with_compute(_own_sizes(pd.DataFrame(rows)), meta), keys)
    epochs = pd.DataFrame(epoch_rows)
    if not epochs.empty:
        epochs["row"] = epochs.pop("_trial").map(results["row"])
    return ExperimentData(meta, results, epochs, predictions)


def is_sampled(meta: ExperimentMeta) -> bool:
    """Whether an experiment is a sampled search, its trials drawn as it ran."""
    return meta.space.search is not None and meta.space.search.algorithm != "grid"


def _sampled_trials(folders: dict[str, Path]) -> list[TrialConfig]:
    """A sampled search's trials: one per trial folder, in the order Tune named them."""
    trials = []
    for key, _ in sorted(folders.items(), key=lambda item: item[1].name):
        try:
            trials.append(trial_from_dict(json.loads(key)))
        except (KeyError, TypeError, ValueError):  # not a trial this version can read
            continue
    return trials


def with_rows(frame: pd.DataFrame, keys: set[str] | None = None) -> pd.DataFrame:
    """Add `row`: the configuration's number in the report's tables (1, 2, ... in the
    order the space declares them; the repeats of one configuration share it).

    `keys`: the config's columns (default: the ResNet and SVM fields)."""
    config = [c for c in frame.columns if c in (keys or ALL_CONFIG_FIELDS) and c != "seed"]
    # a key only some trials set (a custom trainable's) is missing, not "nan", in the others
    keys = frame[config].map(repr).agg("|".join, axis=1)
    frame["row"] = keys.map({k: i + 1 for i, k in enumerate(dict.fromkeys(keys))})
    return frame


def load_results(experiment: str | Path) -> pd.DataFrame:
    """One row per declared trial: its config, its final (or latest) metrics, its status.

    Columns include `label`, the trial's config keys, `status` (finished, running, error,
    pending), `error` (the error's last line), `test_accuracy` (%), `train_time_ms`, and
    for ResNets `epoch`, `gflops`, `params_m`; see the README for the full list.
    """
    return load_experiment(experiment).results


def with_compute(frame: pd.DataFrame, meta: ExperimentMeta) -> pd.DataFrame:
    """Add what each trial used: GPU- and CPU-seconds, images trained, throughput, FLOPs.

    train_pflops_est is an estimate: 3 x forward FLOPs (fvcore) x images trained.
    shared_node_fraction: how much of the trial's wall time other trials ran on its node
    (an upper bound: overlaps are summed), the mark of a time taken under contention.
    """
    seconds = numbers(frame, "train_time_ms") / 1000
    train_sizes = frame["dataset"].map({n: d.train for n, d in meta.data.items()})
    if "validation_images" in frame:  # held out of training (split.py)
        train_sizes = train_sizes - numbers(frame, "validation_images").fillna(0)
    if meta.trainable == "resnet":  # every epoch sees the whole training set
        images = train_sizes * numbers(frame, "epoch")
    elif meta.trainable == "svm":  # one fit on the first train_samples images
        images = numbers(frame, "train_samples").clip(upper=train_sizes)
    else:  # a custom trainable: what it trained on is its own business
        images = pd.Series(float("nan"), index=frame.index)
    frame["images_seen"] = images
    frame["gpu_seconds"] = seconds * numbers(frame, "assigned_gpus")
    frame["cpu_seconds"] = seconds * numbers(frame, "assigned_cpus")
    frame["train_images_per_s"] = images / seconds
    frame["shared_node_fraction"] = shared_node_fraction(frame)
    if meta.trainable == "resnet":
        frame["train_pflops_est"] = 3 * numbers(frame, "gflops") * images / 1e6
    return frame


def shared_node_fraction(results: pd.DataFrame) -> pd.Series:
    """Per trial: the fraction of its wall time during which another trial ran on its node."""
    start, end = numbers(results, "started_at"), numbers(results, "finished_at")
    node = results.get("node_id", pd.Series("", index=results.index))
    shared = pd.Series(np.nan, index=results.index)
    for i in results.index[start.notna() & end.notna()]:
        others = results.index[(node == node[i]) & (results.index != i)]
        overlap = (np.minimum(end[others], end[i]) - np.maximum(start[others], start[i])).clip(0)
        span = end[i] - start[i]
        # the union of overlaps is at most their sum: an upper bound, which errs to marking
        shared[i] = min(1.0, overlap.sum() / span) if span > 0 else 0.0
    return shared


def numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column as numbers; NaN where it is absent or not a number."""
    if column not in frame:
        return pd.Series(float("nan"), index=frame.index)
    return pd.to_numeric(frame[column], errors="coerce")


def load_epochs(experiment: str | Path) -> pd.DataFrame:
    """One row per trial and epoch reported (ResNets), the latest report of each epoch."""
    return load_experiment(experiment).epochs
