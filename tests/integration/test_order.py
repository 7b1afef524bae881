"""The order a grid's trials start in (order.py), alone and in a real sweep."""

from dataclasses import replace
from pathlib import Path

from tune_mnist import load_space
from tune_mnist.run.order import estimated_work, longest_first
from tune_mnist.run.sweep import SweepSettings, run_sweep
from tune_mnist.spec.configs import CustomConfig, ResNetConfig, SVMConfig
from tune_mnist.store.experiment import read_meta
from tune_mnist.train.models import ModelCost

from ..conftest import write_space

COSTS = {  # keyed as ResNetConfig.cost_key: (model, dataset, image_size)
    ("resnet18", "mnist", None): ModelCost(11.2, 0.03, 0.02),
    ("resnet50", "mnist", None): ModelCost(23.5, 0.09, 0.08),
}
SIZES = {"mnist": (1000, 500)}


def resnet(model: str, epochs: int = 5, batch_size: int = 32) -> ResNetConfig:
    return ResNetConfig("mnist", model, batch_size, "adam", 0.001, epochs)


def test_the_larger_model_and_the_longer_run_go_first_ties_keep_their_order():
    trials = [resnet("resnet18", 1), resnet("resnet18", 1, 16), resnet("resnet50", 1)]
    trials.append(resnet("resnet18", 5))
    ordered = longest_first(trials, COSTS, SIZES, max_epochs=None)
    assert ordered == [trials[3], trials[2], trials[0], trials[1]]
    # capped at one epoch (--smoke), the 5-epoch ResNet-18 is as short as the others
    capped = longest_first(trials, COSTS, SIZES, max_epochs=1)
    assert capped == [trials[2], trials[0], trials[1], trials[3]]


def test_seeds_keep_their_rounds_the_longest_first_within_each():
    trials = [resnet("resnet18"), resnet("resnet50")]
    seeded = [replace(t, seed=s) for s in (0, 1) for t in trials]
    ordered = longest_first(seeded, COSTS, SIZES, max_epochs=None)
    assert [(t.seed, t.model) for t in ordered] == [
        (0, "resnet50"),
        (0, "resnet18"),
        (1, "resnet50"),
        (1, "resnet18"),
    ]


def test_work_counts_backward_passes_and_the_test_set():
    assert estimated_work(resnet("resnet18", 2), COSTS, SIZES, None) == 0.03 * 2 * (3000 + 500)
    # a resized trial's work is counted at its size's FLOPs
    resized = replace(resnet("resnet18", 2), image_size=56)
    costs = {**COSTS, ("resnet18", "mnist", 56): ModelCost(11.2, 0.12, 0.1)}
    assert estimated_work(resized, costs, SIZES, None) == 0.12 * 2 * (3000 + 500)


def test_svms_rank_by_kernel_size_and_custom_trials_keep_their_order():
    svms = [SVMConfig("mnist", "rbf", 400), SVMConfig("mnist", "rbf", 800)]
    assert longest_first(svms, {}, SIZES, None) == svms[::-1]
    custom = [CustomConfig("mnist", "m:f", {"a": i}) for i in range(3)]
    assert longest_first(custom, {}, SIZES, None) is None  # nothing to go on: as listed
    assert longest_first(svms[::-1], {}, SIZES, None) is None  # already longest first


def test_a_sweep_starts_the_longest_trial_first_and_keeps_the_order_for_resume(
    local_ray, tiny_data, tmp_path
):
    grid = {"dataset": ["mnist"], "kernel": ["rbf"], "train_samples": [40, 80]}
    spec = load_space(write_space(tmp_path, trainable="svm", grid=grid))
    settings = SweepSettings(data_dir=str(tiny_data), storage_path=str(tmp_path / "results"))
    result = run_sweep(spec, settings)
    meta = read_meta(result.experiment_dir)
    assert [t.train_samples for t in meta.trials] == [40, 80]  # the space's, for its tables
    assert [t.train_samples for t in meta.run.trials] == [80, 40]  # what Tune was handed
    # Tune numbers trials as it creates them: 00000 is the one it started first
    first = sorted(Path(d).name for d in result.results["trial_dir"])[0]
    assert first.split("_", 1)[1].startswith("00000") and first.endswith("n80"), first
    assert result.results.sort_values("train_samples")["train_samples"].tolist() == [40, 80]
