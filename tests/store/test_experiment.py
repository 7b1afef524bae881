"""The experiment folder's metadata: written once, read back typed, versioned."""

import json

import pytest

from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.configs import ResNetConfig, TrainOptions, trial_to_dict
from tune_mnist.spec.selection import select
from tune_mnist.spec.spaces import load_space
from tune_mnist.store.experiment import (
    META_FILE,
    META_VERSION,
    DataInfo,
    new_meta,
    read_meta,
    write_meta,
)
from tune_mnist.store.settings import SweepSettings


def test_metadata_round_trips_through_its_file(tmp_path):
    spec = select(load_space("q2"), ["model=resnet34"])
    settings = SweepSettings(
        smoke=True, svm_backend="libsvm", options=TrainOptions(preload=True, compile="default")
    )
    data = {"fashion-mnist": DataInfo("sample", 1000, 500)}
    meta = new_meta(spec, settings, data, {"resnet": {"gpu": 0.25}})
    write_meta(tmp_path, meta)
    back = read_meta(tmp_path)
    assert back == meta
    assert back.version == META_VERSION and back.name == "q2" and back.trainable == "resnet"
    assert back.trials[0] == ResNetConfig(
        dataset="fashion-mnist",
        model="resnet34",
        batch_size=16,
        optimizer="sgd",
        lr=0.001,
        epochs=5,
        pin_memory=True,
        momentum=0.9,
    )
    assert back.settings.options.compile == "default" and back.selection.chosen == [6, 7, 8, 9]
    assert back.provenance["versions"]["torch"]  # provenance of the writing process


def _version_1(spec) -> dict:
    """tune_mnist.json as tune-mnist 0.1.0 wrote it (no version, no selection)."""
    return {
        "space": spec.space.model_dump(),
        "space_source": spec.source,
        "report": spec.report,
        "trials": [trial_to_dict(t) for t in spec.trials],
        "smoke": False,
        "settings": {"data_dir": "/data", "smoke": False, "name": None, "options": {}},
        "data": {"mnist": {"source": "/data/mnist", "train": 60000, "test": 10000}},
        "resources": {"svm": {"cpu": 1.0}},
        "started_at": "2026-11-28T10:00:00+0000",
        "versions": {"torch": "2.14.1"},
        "git_commit": "abc",
        "driver_devices": ["cpu"],
        "host": "h",
        "command": "tune-mnist sweep q1b",
    }


def test_version_1_files_still_load(tmp_path):
    spec = load_space("q1b")
    (tmp_path / META_FILE).write_text(json.dumps(_version_1(spec)))
    meta = read_meta(tmp_path)
    assert meta.version == 1 and meta.selection is None and meta.trials == spec.trials
    assert meta.settings.svm_backend == "precomputed"  # absent in early files: the default
    assert meta.data["mnist"] == DataInfo("/data/mnist", 60000, 10000)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"version": 99}', "metadata version 99 is not one this tune-mnist reads (1 to 3)"),
        ("[1, 2]", "expected a JSON object, found list"),
        ("null", "expected a JSON object, found NoneType"),
        ("{}", "not a tune-mnist metadata file"),
        ("{not json", "unreadable"),
    ],
)
def test_unreadable_metadata_is_one_line(tmp_path, content, message):
    (tmp_path / META_FILE).write_text(content)
    with pytest.raises(TuneMnistError) as error:
        read_meta(tmp_path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_settings_are_validated_when_made():
    with pytest.raises(
        TuneMnistError, match="--svm-backend gpu: expected one of auto, precomputed"
    ):
        SweepSettings(svm_backend="gpu")
    with pytest.raises(TuneMnistError, match="--gpus-per-trial 0: expected more than 0"):
        SweepSettings(gpus_per_trial=0)
    assert SweepSettings(smoke=True).max_epochs == 1
    assert SweepSettings(options=TrainOptions(max_epochs=3)).max_epochs == 3
