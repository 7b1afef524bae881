"""Before any trial starts: a space's own models import, build and fit its data.

`show` and `sweep` call check_space, so that a model that fails to import, takes the
wrong arguments or gives the wrong number of scores is one line naming the space file
and the key, not a failed trial an hour later. The built-in ResNets on the built-in
datasets are known good and are not built again (`show q1a` stays instant).
"""

from __future__ import annotations

from collections.abc import Mapping

from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.configs import BUILTIN_CLASSES, BUILTIN_SHAPE, DATASETS, MODELS
from tune_mnist.spec.spaces import Spec
from tune_mnist.train.data import Dataset, read_source

Shape = tuple[tuple[int, int, int], int]  # (channels, height, width), classes


def space_datasets(spec: Spec) -> dict[str, Dataset]:
    """The space's own datasets that its trials use, read and checked (one line if bad)."""
    used = dict.fromkeys(t.dataset for t in spec.trials)
    sources = spec.data_sources
    return {name: read_source(name, sources[name]) for name in used if name in sources}


def check_space(spec: Spec, datasets: Mapping[str, Dataset] | None = None) -> None:
    """Import, build and run one image through each model of a ResNet space at the shape
    of each dataset it trains on (a custom space: import its function and check its
    signature); TuneMnistError naming the file and key on a failure.

    `datasets` are the loaded data (a sweep); without them (show) the built-ins' shape is
    known and the space's own datasets are read, which checks their arrays too.
    """
    if datasets is None:
        datasets = space_datasets(spec)
    shapes = {name: (d.shape, d.classes) for name, d in datasets.items()}
    if spec.trainable == "custom":
        from tune_mnist.train.custom import load_trainable

        try:
            load_trainable(spec.space.trainable)
        except TuneMnistError as e:
            raise TuneMnistError(f"{spec.source}: trainable: {e}") from None
    if spec.trainable != "resnet":
        return
    checked = dict.fromkeys(t.cost_key for t in spec.trials)
    for model, dataset, size in checked:
        if model in MODELS and dataset in DATASETS and size is None:
            continue
        shape, classes = shapes.get(dataset, (BUILTIN_SHAPE, BUILTIN_CLASSES))
        if size:
            shape = (shape[0], size, size)
        try:
            from tune_mnist.train.models import (
                check_model,  # torch loads only when there is a model to check
            )

            check_model(model, shape, classes)
        except TuneMnistError as e:
            on = f" (on {dataset}: {'x'.join(map(str, shape))}, {classes} classes)"
            raise TuneMnistError(f"{spec.source}: {spec.place('model', model)}: {e}{on}") from None


def model_costs(spec: Spec, datasets: Mapping[str, Dataset]) -> dict:
    """ModelCost of each (model, dataset, image_size) a ResNet space trains (a trial's
    cost_key), at the shape the model sees: the data's, or resized to image_size."""
    keys = dict.fromkeys(t.cost_key for t in spec.trials if t.trainable == "resnet")
    if not keys:  # an SVM space: no torch in the driver (5 s of imports on 2 cores)
        return {}
    from tune_mnist.train.models import model_cost_at

    costs = {}
    for model, name, size in keys:
        shape = datasets[name].shape
        shape = (shape[0], size, size) if size else shape
        costs[model, name, size] = model_cost_at(model, shape, datasets[name].classes)
    return costs
