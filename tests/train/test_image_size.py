"""image_size: images resized on the device to the size a trial asks, counted at that size."""

import json
from dataclasses import replace

import pytest
import torch

from tests.conftest import write_space
from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.configs import ResNetConfig, trial_key, trial_to_dict
from tune_mnist.spec.spaces import load_space, parse_space
from tune_mnist.train.checks import check_space
from tune_mnist.train.data import load_dataset
from tune_mnist.train.models import model_cost_at
from tune_mnist.train.resnet import Batches, train_resnet

TRIAL = ResNetConfig("mnist", "resnet18", 16, "adam", 0.001, 1)
SEEN = []  # the input shapes the recording model below was called with

RECORDER = """
import torch
from torch import nn
from tests.train import test_image_size

class Recorder(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.head = nn.Linear(1, classes)

    def forward(self, x):
        test_image_size.SEEN.append(tuple(x.shape[1:]))
        return self.head(x.mean(dim=(1, 2, 3)).unsqueeze(1))

def build(channels, height, width, classes):
    return Recorder(classes)

def build_valid(channels, height, width, classes):  # no padding: needs 9 x 9 or more
    return nn.Sequential(nn.Conv2d(channels, 4, 9), nn.Flatten(), nn.LazyLinear(classes))
"""


def test_a_batch_is_resized_on_the_device_and_the_data_stays_small():
    images = torch.randint(0, 255, (4, 28, 28), dtype=torch.uint8)
    labels = torch.zeros(4, dtype=torch.long)
    batches = Batches(
        images,
        labels,
        2,
        torch.device("cpu"),
        pin_memory=False,
        preload=False,
        dataset="mnist",
        size=56,
    )
    x, _ = batches.to_device(images, labels)
    assert x.shape == (4, 1, 56, 56) and x.dtype == torch.float32
    assert batches.images.shape == (4, 28, 28) and batches.images.dtype == torch.uint8
    same = Batches(
        images, labels, 2, torch.device("cpu"), pin_memory=False, preload=False, dataset="mnist"
    )
    assert same.to_device(images, labels)[0].shape == (4, 1, 28, 28)


def test_the_model_sees_the_size_asked_for_in_training_and_scoring(tiny_data, tmp_path):
    (tmp_path / "recorder.py").write_text(RECORDER)
    data = load_dataset("mnist", tiny_data)
    SEEN.clear()
    trial = replace(TRIAL, model=f"{tmp_path / 'recorder.py'}:build", image_size=20)
    result = train_resnet(trial, data)
    assert set(SEEN) == {(1, 20, 20)} and len(SEEN) > 3
    assert 0 <= result.test_accuracy <= 100


def test_an_unset_size_leaves_the_trials_identity_as_it_was():
    assert "image_size" not in trial_to_dict(TRIAL)
    assert "image_size" not in json.loads(trial_key(TRIAL))
    resized = replace(TRIAL, image_size=56)
    assert trial_to_dict(resized)["image_size"] == 56
    assert resized.label == "mnist/resnet18/bs16/adam/lr0.001/e1/nopin/56px/s0"
    assert TRIAL.input_shape((1, 28, 28)) == (1, 28, 28)
    assert resized.input_shape((1, 28, 28)) == (1, 56, 56)


def test_flops_are_counted_at_the_size_the_model_sees():
    at_28 = model_cost_at("resnet18", (1, 28, 28), 10)
    at_56 = model_cost_at("resnet18", (1, 56, 56), 10)
    assert at_56.params_m == at_28.params_m
    assert 3.5 < at_56.gflops / at_28.gflops < 4.5  # four times the pixels


def space(**fixed):
    base = {"dataset": "mnist", "batch_size": 16, "optimizer": "adam", "epochs": 1}
    return {"name": "s", "trainable": "resnet", "fixed": {**base, **fixed}, "grid": {"lr": [0.001]}}


@pytest.mark.parametrize(
    "size, expected",
    [
        (4, "greater than or equal to 8"),
        (5000, "less than or equal to 1024"),
        (28.5, "valid integer"),
    ],
)
def test_a_size_out_of_range_is_one_line_naming_the_field(size, expected):
    with pytest.raises(TuneMnistError, match=f"^s.yaml: fixed.image_size: .*{expected}"):
        parse_space(space(model="resnet18", image_size=size), "s.yaml")


def test_a_size_too_small_for_an_own_model_is_one_line(tmp_path):
    (tmp_path / "recorder.py").write_text(RECORDER)
    model = f"{tmp_path / 'recorder.py'}:build_valid"
    check_space(load_space(write_space(tmp_path, **space(model=model, image_size=28))))
    with pytest.raises(TuneMnistError) as refused:
        check_space(load_space(write_space(tmp_path, **space(model=model, image_size=8))))
    message = str(refused.value)
    assert "\n" not in message and "(on mnist: 1x8x8, 10 classes)" in message
