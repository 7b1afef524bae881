"""Studies that grow: `tune-mnist sweep SPACE --extend EXPERIMENT`.

After seeds, levels or rows are added to a space, the extension runs only the trials the
experiment does not already hold, and the experiment's tables then cover old and new.

How: the new trials run as a new Ray Tune run inside the experiment folder, in its own
sub-folder (`extend-1/`, `extend-2/`, ...: Tune's state and one trial folder per new
trial), recorded in the metadata as another experiment.TuneRun. Finished trial folders
are never opened for writing; `results.load_results` reads the trial folders of every run,
and `resume` continues the newest run. A Tune run cannot be given new trials once it has
started (Tuner.restore expects the same param_space), so a new run is the honest way to add
them, and it keeps each run's Tune state as Tune wrote it.

A trial is reused when its content key matches a finished (or diverged: the same seed
diverges the same way) trial's: a hash of its config, the data it trained on (sizes and
the files' SHA-256) and the settings that change what it computes (smoke, the epoch cap,
the training options, the SVM backend). A change that breaks comparability is refused,
with one line saying what differs, before anything is written: other data files or sizes
for a dataset both hold, smoke versus full, another SVM backend, other training options.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tune_mnist.errors import TuneMnistError
from tune_mnist.run.run_plan import RunPlan
from tune_mnist.spec.budget import Budget, admitted, describe
from tune_mnist.spec.configs import TrialConfig, trial_key, trial_to_dict
from tune_mnist.spec.spaces import Spec
from tune_mnist.store.experiment import RUN_PREFIX, DataInfo, ExperimentMeta, TuneRun
from tune_mnist.store.opened import Experiment
from tune_mnist.store.results import ENDED, load_experiment
from tune_mnist.store.settings import SweepSettings


def code_settings(settings: SweepSettings, trainable: str) -> dict[str, Any]:
    """The settings that change what a trial computes (not where or how fast it runs)."""
    if trainable == "svm":  # SVC's options are its trial's own; the backend is the solver
        return {"smoke": settings.smoke, "svm_backend": settings.svm_backend}
    options = {k: v for k, v in asdict(settings.options).items() if k != "max_epochs"}
    return {"smoke": settings.smoke, "max_epochs": settings.max_epochs, **options}


def data_identity(info: DataInfo | None) -> dict[str, Any] | None:
    """A dataset as its content: sizes and the files' checksums, wherever the files lie."""
    if info is None:
        return None
    return {"train": info.train, "test": info.test, "sha256": sorted(info.sha256.values())}


def content_key(trial: TrialConfig, data: DataInfo | None, settings: dict[str, Any]) -> str:
    """What makes two trials the same computation: config, data content, code settings."""
    record = {"trial": trial_to_dict(trial), "data": data_identity(data), "settings": settings}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def plan_extension(
    opened: Experiment,
    spec: Spec,
    settings: SweepSettings,
    budget: Budget | None,
    say: Callable[[str], None],
):
    """The Tune run that adds a space's new trials to an opened experiment (a RunPlan); None
    when every trial is there already. Refuses an incomparable change with one line."""
    experiment, old = opened.folder, opened.meta
    check_comparable(experiment, old, spec, settings)
    settings_now = code_settings(settings, spec.trainable)
    status = load_experiment(opened).results["status"]
    done = {
        content_key(t, old.data.get(t.dataset), code_settings(old.settings, old.trainable))
        for t, s in zip(old.trials, status, strict=True)
        if s in ENDED
    }
    # the data of datasets both hold is checked to be the same before Tune starts
    # (check_same_data): until then a new trial is keyed on the data the old ones used
    new = [
        t for t in spec.trials if content_key(t, old.data.get(t.dataset), settings_now) not in done
    ]
    reused = len(spec.trials) - len(new)
    if not new:
        say(f"--extend {experiment}: all {len(spec.trials)} trials are there; nothing to run")
        return None
    keys = {trial_key(t) for t in spec.trials}
    kept = [t for t in old.trials if trial_key(t) not in keys]  # nothing is dropped
    run = TuneRun(_next_folder(experiment, old), admitted(new, budget) or new, budget)
    limit = f" ({describe(budget)})" if budget else ""
    say(
        f"--extend {experiment.name}: {reused} of {len(spec.trials)} trials reused, "
        f"{len(new)} new{limit}; running them in {run.folder}/"
    )
    return RunPlan(replace(spec, trials=[*spec.trials, *kept]), [*old.runs, run], old.version, old)


def _next_folder(experiment: Path, old: ExperimentMeta) -> str:
    taken = {run.folder for run in old.runs}
    n = len(old.runs)
    while f"{RUN_PREFIX}{n}" in taken or (experiment / f"{RUN_PREFIX}{n}").exists():
        n += 1
    return f"{RUN_PREFIX}{n}"


def check_comparable(
    experiment: Path, old: ExperimentMeta, spec: Spec, settings: SweepSettings
) -> None:
    """Refuse, in one line, an extension whose trials would not be comparable (cheap
    checks, before any data is read)."""
    where = f"--extend {experiment}"
    if old.trainable != spec.trainable:
        raise TuneMnistError(
            f"{where}: it ran {old.trainable} trials, {spec.source} declares {spec.trainable}"
        )
    if old.smoke != settings.smoke:
        size = {True: "at --smoke size", False: "at full size"}
        raise TuneMnistError(
            f"{where}: not comparable: it ran {size[old.smoke]}, this sweep would run "
            f"{size[settings.smoke]}"
        )
    there, here = (
        code_settings(old.settings, old.trainable),
        code_settings(settings, spec.trainable),
    )
    for key in there:
        if there[key] != here[key]:
            raise TuneMnistError(
                f"{where}: not comparable: {key} was {there[key]} there, {here[key]} here"
            )


def check_same_data(experiment: Path, old: ExperimentMeta, data: dict[str, DataInfo]) -> None:
    """Refuse, in one line, data that differs from what the experiment's trials used."""
    for name in sorted(set(old.data) & set(data)):
        a, b = old.data[name], data[name]
        where = f"--extend {experiment}: not comparable: {name}"
        if (a.train, a.test) != (b.train, b.test):
            raise TuneMnistError(
                f"{where} had {a.train:,} train / {a.test:,} test images there, "
                f"{b.train:,} / {b.test:,} here"
            )
        if data_identity(a) != data_identity(b):
            raise TuneMnistError(
                f"{where}: other files (their SHA-256 differ) from {b.source} than from {a.source}"
            )
