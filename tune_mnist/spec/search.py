"""Search in a space file: distributions, the `search:` and `scheduler:` blocks, and their
translation into Ray Tune's sampling domains, search algorithms and ASHA.

A value of `fixed` may be a distribution instead of a constant:

    fixed:
      lr: {loguniform: [1.0e-5, 1.0e-2]}   # log-uniform between the bounds
      momentum: {uniform: [0.0, 0.95]}     # uniform between the bounds
      batch_size: {choice: [16, 32, 64]}   # one of the values, equally likely
      epochs: {randint: [2, 6]}            # an integer from 2 to 6, both included

and the `search:` block says how the space is searched:

    search: {algorithm: random, num_samples: 8, metric: validation_accuracy, max_concurrent: 2}

`grid` (the default) runs the grid as before and samples nothing; `random` draws
`num_samples` values of every distribution for each grid configuration (Ray's
BasicVariantGenerator); `optuna` runs Optuna's TPE through Ray's OptunaSearch
(`pip install 'tune-mnist[search]'`), `num_samples` trials in all. A trial stays a concrete
TrialConfig: Tune resolves the domains before a trial starts.

`scheduler: {asha: {grace_period, reduction_factor, max_t}}` stops poor trials early
(Ray's ASHAScheduler, time in epochs), on the search's metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from tune_mnist.errors import TuneMnistError

_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
ALGORITHMS = ("grid", "random", "optuna")
METRICS = ("validation_accuracy", "test_accuracy")
KINDS = ("loguniform", "uniform", "randint", "choice")
DEFAULT_SAMPLES = 10


class SearchBlock(BaseModel):
    """The `search:` block of a space file."""

    model_config = _STRICT
    algorithm: Literal[ALGORITHMS] = "grid"
    num_samples: int | None = Field(None, ge=1, le=100_000)  # random: per grid configuration
    # what the search chooses on; default: validation_accuracy when the space holds out a
    # validation split, else test_accuracy
    metric: Literal[METRICS] | None = None
    mode: Literal["max", "min"] = "max"
    max_concurrent: int | None = Field(None, ge=1)  # trials running at once; None: as fit
    seed: int = Field(0, ge=0)  # of the sampler, so that a search draws the same values again


class AshaBlock(BaseModel):
    """ASHA's settings, in epochs (ray.tune.schedulers.ASHAScheduler)."""

    model_config = _STRICT
    grace_period: int = Field(1, ge=1)  # epochs every trial trains before it can be stopped
    reduction_factor: float = Field(2.0, gt=1)  # 1 / the fraction kept at each rung
    max_t: int | None = Field(None, ge=1)  # the last rung; default: the trials' epochs


class SchedulerBlock(BaseModel):
    """The `scheduler:` block of a space file."""

    model_config = _STRICT
    asha: AshaBlock


@dataclass(frozen=True)
class Distribution:
    """One sampled parameter: `kind` is one of KINDS, `values` its bounds or choices."""

    kind: str
    values: tuple[Any, ...]

    def domain(self):
        """Ray Tune's sampling domain for it (randint's upper bound included)."""
        from ray import tune

        if self.kind == "choice":
            return tune.choice(list(self.values))
        low, high = self.values
        if self.kind == "randint":
            return tune.randint(low, high + 1)  # Ray excludes the upper bound; we do not
        return (tune.loguniform if self.kind == "loguniform" else tune.uniform)(low, high)

    def probes(self) -> list[Any]:
        """Values every sample lies between: the choices, or the two bounds."""
        return list(self.values) if self.kind == "choice" else list(dict.fromkeys(self.values))

    def contains(self, value: Any) -> bool:
        """Whether a sampled value could have come from this distribution."""
        if self.kind == "choice":
            return value in self.values
        low, high = self.values
        return isinstance(value, int | float) and low <= value <= high

    def describe(self) -> str:
        """E.g. `loguniform(1e-05, 0.01)`, `choice(16, 32, 64)`, `integer 2 to 6`."""
        if self.kind == "randint":
            return f"integer {self.values[0]} to {self.values[1]}"
        shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in self.values)
        return f"{self.kind}({shown})"


@dataclass(frozen=True)
class Asha:
    """ASHA as a sweep runs it."""

    grace_period: int
    reduction_factor: float
    max_t: int | None  # None: the trials' epochs

    def scheduler(self, max_epochs: int):
        """Ray's ASHAScheduler, its time the epoch (metric and mode come from TuneConfig)."""
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(
            time_attr="epoch",
            max_t=self.max_t or max_epochs,
            grace_period=min(self.grace_period, self.max_t or max_epochs),
            reduction_factor=self.reduction_factor,
        )


@dataclass(frozen=True)
class Search:
    """How a space is searched: what is sampled, by what, chosen on what, how many at once."""

    algorithm: str  # one of ALGORITHMS
    num_samples: int  # random: per grid configuration; optuna: in all; grid: 1
    metric: str  # one of METRICS
    mode: str  # "max" or "min"
    max_concurrent: int | None
    seed: int
    distributions: dict[str, Distribution] = field(default_factory=dict)
    asha: Asha | None = None
    validation: int | float | None = None  # the space's held-out split (split.py)

    @property
    def samples(self) -> bool:
        """Whether trials are sampled (random, optuna) rather than listed (grid)."""
        return self.algorithm != "grid"

    @property
    def chosen_on(self) -> str:
        """`validation` or `test`: the set whose accuracy chooses the best configuration."""
        return "validation" if self.metric == "validation_accuracy" else "test"

    def trial_count(self, grid_configurations: int) -> int:
        """How many trials the search runs, given how many configurations its grid has."""
        if self.algorithm == "optuna":
            return self.num_samples
        return self.num_samples * grid_configurations

    def searcher(self):
        """Ray's search algorithm: None for a grid (Tune's default generator)."""
        if self.algorithm == "random":
            from ray.tune.search.basic_variant import BasicVariantGenerator

            return BasicVariantGenerator(random_state=self.seed)
        if self.algorithm == "optuna":
            try:
                import optuna  # noqa: F401
                from ray.tune.search.optuna import OptunaSearch
            except ImportError:
                raise TuneMnistError(missing_optuna()) from None
            return OptunaSearch(seed=self.seed)
        return None

    def tune_config(self, max_epochs: int) -> dict[str, Any]:
        """The TuneConfig arguments of this search (`max_epochs`: the trials' longest run)."""
        extra: dict[str, Any] = {"metric": self.metric, "mode": self.mode}
        if self.samples:
            extra |= {"search_alg": self.searcher(), "num_samples": self.num_samples}
        if self.asha:
            extra["scheduler"] = self.asha.scheduler(max_epochs)
        if self.max_concurrent:
            extra["max_concurrent_trials"] = self.max_concurrent
        return extra


def missing_optuna() -> str:
    return "search.algorithm optuna needs optuna: pip install 'tune-mnist[search]'"


def is_distribution(value: Any) -> bool:
    """Whether a value of `fixed` is written as a distribution (a mapping: no field is one)."""
    return isinstance(value, dict)


def parse_distribution(value: dict, annotation: Any, where: str) -> Distribution:
    """One distribution as written, checked against its field's type; `where` names it in
    errors, e.g. `tiny.yaml: fixed.lr`."""
    if len(value) != 1 or next(iter(value)) not in KINDS:
        written = ", ".join(map(str, value)) or "nothing"
        raise TuneMnistError(
            f"{where}: expected one distribution, one of {', '.join(KINDS)} (got {written})"
        )
    kind, values = next(iter(value.items()))
    if not isinstance(values, list) or not values:
        raise TuneMnistError(f"{where}: {kind} takes a list, e.g. {{{kind}: {_example(kind)}}}")
    types = set(get_args(annotation)) | {annotation}
    if kind == "choice":
        return Distribution(kind, tuple(values))
    if len(values) != 2:
        raise TuneMnistError(f"{where}: {kind} takes two values, low and high (got {len(values)})")
    low, high = values
    if kind == "randint":
        if int not in types or not all(type(v) is int for v in values):
            raise TuneMnistError(f"{where}: randint takes two integers, for an integer key")
        if low > high:
            raise TuneMnistError(f"{where}: randint: low {low} is above high {high}")
        return Distribution(kind, (low, high))
    if float not in types:
        raise TuneMnistError(f"{where}: {kind} is for a number key; use choice or randint")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if not numbers or not all(math.isfinite(v) for v in values):
        raise TuneMnistError(f"{where}: {kind} takes two finite numbers, got {values}")
    if not low < high:
        raise TuneMnistError(f"{where}: {kind}: low {low:g} is not below high {high:g}")
    if kind == "loguniform" and low <= 0:
        raise TuneMnistError(f"{where}: loguniform needs bounds above 0, got {low:g}")
    return Distribution(kind, (float(low), float(high)))


def _example(kind: str) -> str:
    return "[16, 32, 64]" if kind == "choice" else "[2, 6]" if kind == "randint" else "[0.1, 1]"


def plan(space, distributions: dict[str, Distribution], source: str) -> Search | None:
    """The search of a validated space (spaces.Space), its layout checked: None for a plain
    grid (no search block, scheduler, validation split or distribution)."""
    block = space.search
    if block is None and not distributions and space.scheduler is None:
        return None if space.validation is None else _grid_with_validation(space)
    block = block or SearchBlock()
    first = next(iter(distributions), None)
    if block.algorithm == "grid" and first:
        raise TuneMnistError(
            f"{source}: fixed.{first}: a distribution needs search.algorithm random or optuna"
        )
    if block.algorithm != "grid" and not first:
        raise TuneMnistError(
            f"{source}: search.algorithm {block.algorithm}: nothing to sample; write a "
            "value of fixed as a distribution, e.g. lr: {loguniform: [1.0e-5, 1.0e-2]}"
        )
    if block.algorithm == "grid" and block.num_samples not in (None, 1):
        raise TuneMnistError(
            f"{source}: search.num_samples: a grid runs each configuration once "
            "(use repeats for seeds, or algorithm random)"
        )
    if block.algorithm != "grid" and space.rows:
        raise TuneMnistError(f"{source}: rows: not with a {block.algorithm} search; use grid")
    if block.algorithm == "optuna" and (space.grid or space.repeats > 1):
        what = "grid" if space.grid else "repeats"
        raise TuneMnistError(
            f"{source}: {what}: optuna samples every trial; make fixed values or "
            "distributions of the grid's keys, and run one seed"
        )
    metric = block.metric or ("validation_accuracy" if space.validation else "test_accuracy")
    if metric == "validation_accuracy" and space.validation is None:
        raise TuneMnistError(
            f"{source}: search.metric validation_accuracy: the space holds out no validation "
            "split (add validation: N images or a fraction)"
        )
    asha = None
    if space.scheduler is not None:
        if space.trainable != "resnet":
            raise TuneMnistError(
                f"{source}: scheduler: early stopping is for ResNets, which train in epochs"
            )
        a = space.scheduler.asha
        asha = Asha(a.grace_period, a.reduction_factor, a.max_t)
    samples = 1 if block.algorithm == "grid" else block.num_samples or DEFAULT_SAMPLES
    return Search(
        algorithm=block.algorithm,
        num_samples=samples,
        metric=metric,
        mode=block.mode,
        max_concurrent=block.max_concurrent,
        seed=block.seed,
        distributions=distributions,
        asha=asha,
        validation=space.validation,
    )


def _grid_with_validation(space) -> Search:
    """A plain grid that holds out a validation split: it chooses its best there."""
    return Search("grid", 1, "validation_accuracy", "max", None, 0, {}, None, space.validation)


def trial_space(base: dict[str, Any], space, search: Search) -> dict[str, Any]:
    """param_space["trial"] of a sampled search: the base trial (a trial_to_dict), each
    grid key a grid_search over its values (and the seeds of the repeats), each
    distribution its Ray domain."""
    from ray import tune

    trial = dict(base)
    for key, values in space.grid.items():
        trial[key] = tune.grid_search(list(values))
    if space.repeats > 1:
        seed = base["seed"]
        trial["seed"] = tune.grid_search([seed + r for r in range(space.repeats)])
    for key, distribution in search.distributions.items():
        trial[key] = distribution.domain()
    return trial


def overview(search: Search, grid_configurations: int) -> list[str]:
    """What `tune-mnist show` says of a search: what is sampled, how many trials, how."""
    lines = [f"  {key}: {d.describe()}" for key, d in search.distributions.items()]
    count = search.trial_count(grid_configurations)
    if search.algorithm == "random":
        per = f" x {grid_configurations} grid configurations" if grid_configurations > 1 else ""
        how = f"random search: {search.num_samples} samples{per} = {count} trials"
    elif search.algorithm == "optuna":
        how = f"Optuna (TPE) search: {count} trials"
    else:
        how = f"grid: {count} trials"
    lines.insert(0, f"{how}, seed {search.seed}" + (", sampling:" if lines else ""))
    chooser = "validation" if search.chosen_on == "validation" else "test"
    lines.append(
        f"The best is chosen on {chooser} accuracy ({search.metric}, {search.mode})"
        + (f"; at most {search.max_concurrent} trials at once" if search.max_concurrent else "")
        + "."
    )
    if search.validation is not None:
        held = (
            f"{search.validation:.0%} of the training images"
            if isinstance(search.validation, float)
            else f"{search.validation:,} training images"
        )
        lines.append(f"Validation: {held} held out (by each trial's seed), never trained on.")
    if search.asha:
        a = search.asha
        top = f"{a.max_t} epochs" if a.max_t else "the trials' epochs"
        lines.append(
            f"Early stopping: ASHA, grace period {a.grace_period} epoch(s), reduction factor "
            f"{a.reduction_factor:g}, up to {top}."
        )
    return lines
