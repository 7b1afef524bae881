"""The order Tune starts a grid's trials in: the longest first.

Tune starts a grid's trials in the order it is given them, each as a slot frees up. A
space lists its trials as its grid reads (q1a: every ResNet-18 of a dataset, then every
ResNet-50), so the longest ones come last, and one of them can be left running alone while
the other slots have nothing to do. Started longest first (Graham's LPT rule), the short
trials fill the slots at the end and the slots finish close together: a 2-slot q1a smoke
sweep had one slot idle for 7 s at its end, a full-scale one can idle for an hour.

Seeds stay in their rounds: a space runs every configuration at its first seed, then every
one at the next (spaces.with_repeats), so that a sweep stopped part way holds a complete
design at fewer seeds. The longest first is the order within each round.

A ResNet trial's work is its model's forward FLOPs per image x epochs x (3 x training
images + test images): a backward pass costs about two forward ones. An SVM trial's is
n², the size of its kernel. Custom trainables have no estimate and keep their order.
Ties keep the space's order. The order needs only the ranks; the time-left estimate
(live.py) uses the numbers in proportion, which they are only roughly: batch size
changes a trial's time but not its FLOPs, and an SVM's fit grows faster than n².
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from tune_mnist.spec.configs import ResNetConfig, SVMConfig, TrialConfig

if TYPE_CHECKING:  # models imports torch, which an SVM sweep's driver never loads
    from tune_mnist.train.models import ModelCost


def estimated_work(
    trial: TrialConfig,
    costs: Mapping[tuple[str, str, int | None], ModelCost],
    sizes: Mapping[str, tuple[int, int]],
    max_epochs: int | None,
) -> float:
    """A number that ranks trials by how long they train (see the module's note); 0 if
    unknown. `sizes`: dataset -> (training images, test images)."""
    n_train, n_test = sizes[trial.dataset]
    if isinstance(trial, ResNetConfig) and trial.cost_key in costs:
        per_image = costs[trial.cost_key].gflops
        return per_image * trial.epochs_to_train(max_epochs) * (3 * n_train + n_test)
    if isinstance(trial, SVMConfig):
        return float(min(trial.train_samples, n_train)) ** 2
    return 0.0


def longest_first(
    trials: list[TrialConfig],
    costs: Mapping[tuple[str, str, int | None], ModelCost],
    sizes: Mapping[str, tuple[int, int]],
    max_epochs: int | None,
) -> list[TrialConfig] | None:
    """The trials, the longest first within each seed's round (a stable sort); None when
    that is their order now."""
    rounds = {seed: i for i, seed in enumerate(dict.fromkeys(t.seed for t in trials))}
    work = [estimated_work(t, costs, sizes, max_epochs) for t in trials]
    order = sorted(range(len(trials)), key=lambda i: (rounds[trials[i].seed], -work[i]))
    if order == list(range(len(trials))):
        return None
    return [trials[i] for i in order]
