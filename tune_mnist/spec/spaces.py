"""Search-space files: load, validate strictly, expand into one config dict per trial.

A space crosses every list in `grid` with each entry of `rows` (a fractional design
stays as written) and adds `fixed` to all of them. Each expanded trial is validated
against the trainable's model, so a bad value is reported with the file and the place
(`grid.lr`, `rows[3].batch_size`, `fixed.seed`) it came from.

A space may bring its own data and models: `datasets: {NAME: {npz: FILE}}` (or
`{idx: FOLDER}`) declares a dataset that trials then name like a built-in, and a `model`
may be a reference, `package.module:callable` or `FILE.py:callable`. Paths are relative to
the space file and made absolute when it is loaded, so a stored space reads the same
anywhere. Whether the models import and fit the data is checked by checks.py.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from tune_mnist.errors import TuneMnistError, shown
from tune_mnist.spec.configs import (
    CONFIGS,
    DATASETS,
    DataSource,
    Selection,
    TrialConfig,
    is_file_reference,
    is_reference,
    resolve_model,
    trainable_kind,
    with_seed,
)
from tune_mnist.spec.reference import load_reference
from tune_mnist.spec.schema import (
    DATASET_NAME,
    DEFAULT_REPORT,
    FIELDS,
    MAX_REPEATS,
    MAX_SEED,
    MODULE_REFERENCE,
    DatasetFiles,
    Space,
    _describe,
)
from tune_mnist.spec.search import (
    DEFAULT_SAMPLES,
    Distribution,
    Search,
    is_distribution,
    parse_distribution,
    plan,
)
from tune_mnist.spec.torchvision_names import check_name as check_torchvision_name

TRIAL_LIMIT = 10_000  # trials a space may expand to unless told more (--trial-limit)


@dataclass(frozen=True)
class Spec:
    """A validated space and its expanded trials, in a stable order."""

    space: Space
    source: str  # the file it came from
    trials: list[TrialConfig]
    selection: Selection | None = None  # set when only part of the space runs

    @property
    def name(self) -> str:
        return self.space.name

    @property
    def trainable(self) -> str:
        """resnet, svm, or custom (a function the space names)."""
        return trainable_kind(self.space.trainable)

    @property
    def report(self) -> str:
        return self.space.report or DEFAULT_REPORT[self.trainable]

    @cached_property
    def search(self) -> Search | None:
        """How the space is searched (distributions, algorithm, ASHA, validation); None for
        a plain grid. Sampled searches' `trials` are the values at the edges of every
        distribution, for the checks; the sampled trials are what Tune draws."""
        return plan(self.space, distributions(self.space, self.source), self.source)

    @property
    def data_sources(self) -> dict[str, DataSource]:
        """The space's own datasets, each with where it was declared (for its errors)."""
        return {
            name: DataSource(
                files.kind,
                files.path,
                f"{self.source}: datasets.{name}.{files.kind}",
                files.split or "",
            )
            for name, files in self.space.datasets.items()
        }

    def place(self, key: str, value: Any) -> str:
        """Where the space sets `key` to `value`: `fixed.model`, `grid.model`, `rows[2].model`."""
        space = self.space
        if space.fixed.get(key) == value:
            return f"fixed.{key}"
        if value in space.grid.get(key, ()):
            return f"grid.{key}"
        for i, row in enumerate(space.rows):
            if row.get(key) == value:
                return f"rows[{i}].{key}"
        return key


def builtin_dir() -> Path:
    """The folder holding the built-in space files."""
    return Path(str(resources.files("tune_mnist.search_spaces")))


def builtin_names() -> list[str]:
    """Names of the built-in spaces, sorted."""
    return sorted(p.stem for p in builtin_dir().glob("*.yaml"))


def resolve_path(name_or_path: str | Path) -> Path:
    """A built-in space name, or a path to the user's own YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if path.is_dir():
            raise TuneMnistError(f"{path}: a folder, not a space file")
        if path.exists() and not path.is_file():  # a FIFO or a device would block or stream
            raise TuneMnistError(f"{path}: not a regular file, so not a space file")
        if not path.is_file():
            raise TuneMnistError(f"{path}: no such space file")
        return path
    builtin = builtin_dir() / f"{name_or_path}.yaml"
    if not builtin.is_file():
        names = ", ".join(builtin_names())
        raise TuneMnistError(
            f"unknown space '{name_or_path}': built-in spaces are {names} "
            "(or pass a path to a .yaml file)"
        )
    return builtin


MAX_YAML_NODES = 100_000  # a space file is a few hundred; aliases can multiply far beyond


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (YAML keeps the last)
    and a document whose aliases expand past MAX_YAML_NODES (a "billion laughs" file)."""

    def compose_document(self):
        node = super().compose_document()
        if node is not None and _expanded_nodes(node, {}, set()) > MAX_YAML_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"aliases expand to over {MAX_YAML_NODES:,} values", node.start_mark
            )
        return node

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool | None):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a name or a number", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _expanded_nodes(node, sizes: dict[int, int], open_: set[int]) -> int:
    """How many nodes `node` stands for once every alias is expanded (a recursive alias:
    more than any limit). Each distinct node is counted once and its size reused."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_:
        return MAX_YAML_NODES + 1
    open_.add(id(node))
    children = node.value if isinstance(node, yaml.SequenceNode) else []
    if isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    total = 1
    for child in children:
        total += _expanded_nodes(child, sizes, open_)
        if total > MAX_YAML_NODES:
            break
    open_.discard(id(node))
    sizes[id(node)] = total
    return total


def load_space(name_or_path: str | Path, limit: int = TRIAL_LIMIT) -> Spec:
    """Read, validate and expand a space; raise TuneMnistError naming file and key.

    A space that would expand to more than `limit` trials is refused before expanding.
    """
    path = resolve_path(name_or_path)
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise TuneMnistError(f"{path.name}: not valid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TuneMnistError(f"{path}: cannot read: {e}") from None
    except ValueError as e:  # an integer of over 4,300 digits, which Python will not read
        raise TuneMnistError(f"{path.name}: not valid YAML: {shown(str(e))}") from None
    spec = parse_space(raw, source=path.name, limit=limit, base=path.parent)
    if spec.space.reference:
        spec = replace(spec, space=_with_reference(spec.space, path))
    return spec


def _with_reference(space: Space, path: Path) -> Space:
    """The space with its reference table's absolute path, checked to load."""

    reference = (path.parent / space.reference).absolute()
    load_reference(reference, space.fixed.get("dataset"))  # a bad table: one line, now
    return space.model_copy(update={"reference": str(reference)})


def parse_space(
    raw: Any, source: str = "<space>", limit: int = TRIAL_LIMIT, base: Path | None = None
) -> Spec:
    """Validate a space given as a dict (as read from YAML) and expand its trials.

    Its own datasets' paths and file references of models are made absolute, relative to
    `base` (the space file's folder; the working directory if None).
    """
    if not isinstance(raw, dict):
        raise TuneMnistError(f"{source}: expected a mapping of keys (name, trainable, ...)")
    try:
        space = Space.model_validate(raw)
    except ValidationError as e:
        raise TuneMnistError(_describe(e, source)) from None
    space = _resolved(space, source, Path.cwd() if base is None else base)
    _check_layout(space, source)
    _check_size(space, source, limit)
    spec = Spec(space=space, source=source, trials=_expand(space, source))
    _ = spec.search  # a bad search block: one line, now
    return spec


def _resolved(space: Space, source: str, base: Path) -> Space:
    """The space with absolute paths for its datasets and models' file references; an
    already resolved space comes back the same."""
    space = _resolved_trainable(space, source, base)
    datasets = {}
    for name, files in space.datasets.items():
        where = f"{source}: datasets.{name}"
        if not DATASET_NAME.fullmatch(name) or name in DATASETS:
            problem = "a built-in's name" if name in DATASETS else "letters, digits, _ . - only"
            raise TuneMnistError(f"{where}: not a name for a dataset ({problem})")
        if files.kind == "torchvision":
            try:
                check_torchvision_name(files.torchvision, files.split)
            except TuneMnistError as e:
                raise TuneMnistError(f"{where}.{e}") from None
            datasets[name] = files
            continue
        if files.split is not None:
            raise TuneMnistError(f"{where}.split: only a torchvision dataset takes a split")
        path = (base / Path(files.path).expanduser()).absolute()
        exists = path.is_file() if files.kind == "npz" else path.is_dir()
        if not exists:
            what = "file" if files.kind == "npz" else "folder"
            raise TuneMnistError(f"{where}.{files.kind}: {path}: no such {what}")
        datasets[name] = DatasetFiles(**{files.kind: str(path)})

    def model(value: Any) -> Any:
        return resolve_model(value, base) if isinstance(value, str) else value

    fixed = (
        {**space.fixed, "model": model(space.fixed["model"])}
        if "model" in space.fixed
        else space.fixed
    )
    grid = {k: [model(v) for v in vs] if k == "model" else vs for k, vs in space.grid.items()}
    rows = [{**row, "model": model(row["model"])} if "model" in row else row for row in space.rows]
    return space.model_copy(
        update={"datasets": datasets, "fixed": fixed, "grid": grid, "rows": rows}
    )


def _resolved_trainable(space: Space, source: str, base: Path) -> Space:
    """A custom trainable's reference checked (a file one made absolute), and the `metric`
    its tables show required; the built-in trainables take no metric."""
    if trainable_kind(space.trainable) != "custom":
        if space.metric is not None:
            raise TuneMnistError(
                f"{source}: metric: only a space's own trainable takes one "
                f"({space.trainable} reports test_accuracy)"
            )
        return space
    value = space.trainable
    where, _, name = value.rpartition(":")
    well_formed = (
        where.endswith(".py") and name.isidentifier()
        if is_reference(value) and is_file_reference(value)
        else MODULE_REFERENCE.fullmatch(value)
    )
    if not well_formed:
        raise TuneMnistError(
            f"{source}: trainable: expected resnet, svm, or a reference "
            f"package.module:function or FILE.py:function (got {value!r})"
        )
    if space.metric is None:
        raise TuneMnistError(
            f"{source}: metric: name the key your trainable reports that the tables show, "
            "e.g. metric: accuracy"
        )
    return space.model_copy(update={"trainable": resolve_model(value, base)})


def trial_count(space: Space) -> int:
    """How many trials a space expands to (a search: samples), counted without expanding it."""
    grid = grid_configurations(space)
    block = space.search
    if block is None or block.algorithm == "grid":
        return grid
    samples = block.num_samples or DEFAULT_SAMPLES
    return samples if block.algorithm == "optuna" else samples * grid


def grid_configurations(space: Space) -> int:
    """The trials of a space's grid, rows and repeats, sampling aside."""
    return math.prod(len(v) for v in space.grid.values()) * max(len(space.rows), 1) * space.repeats


def distributions(space: Space, source: str) -> dict[str, Distribution]:
    """The values of `fixed` written as distributions, each checked against its key."""
    kind = trainable_kind(space.trainable)
    fields = FIELDS[kind].model_fields
    found = {}
    for key, value in space.fixed.items():
        if not is_distribution(value):
            continue
        if key in fields:
            annotation = fields[key].annotation
        elif kind == "custom":  # the trainable's own key: any number it may be drawn as
            annotation = int | float
        else:
            raise TuneMnistError(
                f"{source}: fixed.{key}: unknown key (expected one of: {', '.join(fields)})"
            )
        found[key] = parse_distribution(value, annotation, f"{source}: fixed.{key}")
    return found


def _check_size(space: Space, source: str, limit: int) -> None:
    count = trial_count(space)
    if count > limit:
        raise TuneMnistError(
            f"{source}: expands to {count:,} trials, more than the limit of {limit:,}; "
            "narrow the grid, or raise the limit with --trial-limit"
        )


def _check_layout(space: Space, source: str) -> None:
    for key, values in space.grid.items():
        if not values:
            raise TuneMnistError(f"{source}: grid.{key}: expected a non-empty list of values")
    if not space.grid and not space.rows and not any(map(is_distribution, space.fixed.values())):
        raise TuneMnistError(f"{source}: grid: expected at least one key in grid or rows")
    places = [("fixed", set(space.fixed)), ("grid", set(space.grid))]
    places += [(f"rows[{i}]", set(row)) for i, row in enumerate(space.rows)]
    for (a, keys_a), (b, keys_b) in itertools.combinations(places, 2):
        if a.startswith("rows") and b.startswith("rows"):
            continue
        if both := sorted(keys_a & keys_b):
            raise TuneMnistError(f"{source}: {b}.{both[0]}: already set in {a}; set it once")


def _expand(space: Space, source: str) -> list[TrialConfig]:
    """The grid's trials; a distribution of `fixed` takes each of its edge values
    (Distribution.probes), so that every value a search can draw is checked here."""
    kind = trainable_kind(space.trainable)
    model, config_type = FIELDS[kind], CONFIGS[kind]
    sampled = distributions(space, source)
    fixed = {k: v for k, v in space.fixed.items() if k not in sampled}
    axes = {**space.grid, **{k: d.probes() for k, d in sampled.items()}}
    keys = list(axes)
    trials = []
    for values in itertools.product(*axes.values()):
        for i, row in enumerate(space.rows or [{}]):
            where = {k: "fixed" for k in space.fixed}
            where |= {k: "grid" for k in space.grid}
            where |= {k: f"rows[{i}]" for k in row}
            config = {**fixed, **dict(zip(keys, values, strict=True)), **row}
            try:
                trial = model.model_validate(config, context={"datasets": list(space.datasets)})
            except ValidationError as e:
                raise TuneMnistError(_describe(e, source, where)) from None
            if kind == "custom":
                params = {k: config[k] for k in config if k not in ("dataset", "seed")}
                trials.append(config_type(trial.dataset, space.trainable, params, trial.seed))
            else:
                trials.append(config_type(**trial.model_dump()))
    return repeat(trials, space.repeats)


def repeat(trials: list[TrialConfig], repeats: int) -> list[TrialConfig]:
    """Each trial `repeats` times with seeds seed, seed + 1, ..., in balanced order: every
    configuration at its first seed, then every one at the next, so that a sweep stopped
    part way (by a budget) still holds a complete design at fewer seeds."""
    if trials and (top := max(t.seed for t in trials) + repeats - 1) > MAX_SEED:
        raise TuneMnistError(f"seed: repeats would reach {top}, past the largest, {MAX_SEED}")
    return [with_seed(trial, trial.seed + r) for r in range(repeats) for trial in trials]


def with_repeats(spec: Spec, repeats: int, limit: int = TRIAL_LIMIT) -> Spec:
    """The same space run with `repeats` seeds per configuration (overrides the file's)."""
    if not 1 <= repeats <= MAX_REPEATS:
        raise TuneMnistError(f"--repeats {repeats}: expected 1 to {MAX_REPEATS:,}")
    space = spec.space.model_copy(update={"repeats": repeats})
    _check_size(space, spec.source, limit)
    return Spec(space=space, source=spec.source, trials=_expand(space, spec.source))
