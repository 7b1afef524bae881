"""What a sweep hands Ray Tune besides its trainable: the param space and search arguments,
the checks before fit, the work left per trial for the time-left estimate, and the imports
Tune would otherwise make on the way to the first trial."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import asdict

from ray import tune

from tune_mnist.errors import TuneMnistError
from tune_mnist.run.order import estimated_work
from tune_mnist.spec.configs import trial_key, trial_to_dict
from tune_mnist.spec.search import trial_space as search_space
from tune_mnist.spec.spaces import Spec, grid_configurations
from tune_mnist.store.experiment import (
    META_VERSION,
    holds_experiment,
)
from tune_mnist.store.opened import Experiment
from tune_mnist.store.results import ENDED, load_experiment
from tune_mnist.store.settings import SweepSettings
from tune_mnist.train.split import train_size


def planned(spec: Spec) -> int:
    """How many trials the sweep runs: a sampled search's draws, else its listed trials."""
    if spec.search and spec.search.samples:
        return spec.search.trial_count(grid_configurations(spec.space))
    return len(spec.trials)


def search_config(spec: Spec, settings: SweepSettings) -> dict:
    """TuneConfig's search arguments (search.Search.tune_config); none for a plain grid."""
    if spec.search is None:
        return {}
    cap = settings.max_epochs
    epochs = [t.epochs_to_train(cap) for t in spec.trials if t.trainable == "resnet"]
    return spec.search.tune_config(max(epochs, default=1))


def tune_param_space(spec: Spec, settings: SweepSettings, version: int) -> dict:
    options = {**asdict(settings.options), "max_epochs": settings.max_epochs}
    if spec.search and spec.search.samples:
        base = trial_to_dict(spec.trials[0])
        space = {"trial": search_space(base, spec.space, spec.search)}
    else:
        space = {"trial": tune.grid_search([trial_to_dict(t) for t in spec.trials])}
    if spec.space.validation is not None:
        space["validation"] = spec.space.validation
    if spec.trainable == "custom":  # the key its tables show, which it must report
        space["metric"] = spec.space.metric
    if version < 2:  # experiments of 0.1.0 carried the SVM backend inside the options
        return {**space, "options": {**options, "svm_backend": settings.svm_backend}}
    return {**space, "options": options, "svm_backend": settings.svm_backend}


def check_batches_fit(spec: Spec, datasets) -> None:
    """A batch larger than the training set would train on no full batch: refuse it here."""
    for trial in spec.trials:
        if trial.trainable == "resnet":  # (a custom trainable batches as it likes)
            images = train_size(spec.space.validation, datasets[trial.dataset].sizes[0])
            if trial.batch_size > images:
                raise TuneMnistError(
                    f"{spec.source}: batch_size {trial.batch_size:,} is larger than the "
                    f"{images:,} training images of {trial.dataset} ({trial.label})"
                )


def ended_keys(experiment: Experiment, trials: list) -> set[str]:
    """Which of these trials (trial_key) the opened experiment's files hold as ended for
    good: finished, diverged or stopped early (a resume reruns only errors and the rest)."""
    status = load_experiment(experiment).results["status"]
    done = [t for t, s in zip(experiment.meta.trials, status, strict=True) if s in ENDED]
    return {trial_key(t) for t in trials} & set(map(trial_key, done))


def work_left(spec: Spec, costs, images, settings: SweepSettings, ended: set[str]):
    """Per trial left to run (budget.trial_key), its estimated work (order.estimated_work)
    for the time-left estimate; None where a trial has none (a custom trainable) or the
    trials are not known ahead (a sampled search). `images`: (train, test) per dataset."""
    if spec.search and spec.search.samples:
        return None
    work = {
        key: estimated_work(t, costs, images, settings.max_epochs)
        for t in spec.trials
        if (key := trial_key(t)) not in ended
    }
    return work if all(work.values()) else None


def tune_usage_imports() -> None:
    """Import what Ray Tune imports at the start of every fit given callbacks, to count
    them for its usage statistics (enabled or not): its MLflow, W&B, Comet and Aim
    integrations, each of which imports its library when installed. mlflow's import alone
    took 1.0 s on 2 cores, on the way to the first trial; this runs in a thread while Ray
    starts its processes, which leave a CPU idle. Doing nothing where Ray has changed."""
    try:
        from ray.air._internal.usage import _count_callbacks

        _count_callbacks([])  # its imports, nothing counted
    except (ImportError, AttributeError):
        pass  # Ray imports what it needs at fit, as before


def tensorboard_without_torch() -> None:
    """Load tensorboardX as if torch were not installed, when this process has not loaded
    torch by now (an SVM-only sweep's driver).

    Tune's TensorBoard logger (on by default: every trial's events file) imports
    tensorboardX, whose writer imports torch only to accept tensors as values: 2-2.5 s
    of import on 2 cores, in the driver, just as Tune starts its trials. Tune logs floats, so
    the events files are the same; a later `import torch` here works as usual.
    """
    if "torch" in sys.modules or "tensorboardX" in sys.modules:
        return
    sys.modules["torch"] = None  # `import torch` raises ImportError, as when it is absent
    try:
        import tensorboardX  # noqa: F401
    except ImportError:  # no tensorboardX: Tune runs without its TensorBoard logger
        pass
    finally:
        del sys.modules["torch"]


def check_experiment_dir(experiment: Experiment, spec: Spec, resume: bool) -> int:
    """Refuse to start over an experiment or to resume none; the metadata version to run.

    Cheap checks only, before the data is read; a resumed experiment comes opened.
    """
    exists = holds_experiment(experiment.folder)
    shown = experiment.shown
    if resume and not exists:
        raise TuneMnistError(f"--resume: no tune-mnist experiment at {shown} to resume")
    if not resume and exists:
        raise TuneMnistError(
            f"{shown} already holds an experiment: add --resume to continue it, "
            "or pick another --name or --storage-path"
        )
    meta = experiment.meta if resume else None
    version = meta.version if meta else META_VERSION
    # as multisets: experiments started before repeats ran in balanced order list the same
    # trials in another order, and resume keeps the saved one
    if meta and Counter(map(trial_key, meta.trials)) != Counter(map(trial_key, spec.trials)):
        raise TuneMnistError(
            f"--resume: {spec.source} no longer declares the trials that {shown} "
            "started with; resume with `tune-mnist resume EXPERIMENT_DIR`, or pick another --name"
        )
    return version
