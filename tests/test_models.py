import pytest
import torch

from tune_mnist.models import build_resnet, model_cost


@pytest.mark.parametrize(
    ("name", "params_m", "gflops"),
    [("resnet18", 11.18, 0.0331), ("resnet34", 21.28, 0.0698), ("resnet50", 23.52, 0.0784)],
)
def test_params_and_fvcore_flops_match_the_study(name, params_m, gflops):
    cost = model_cost(name)
    assert round(cost.params_m, 2) == params_m
    assert round(cost.gflops, 4) == gflops


def test_one_channel_stem_and_ten_classes():
    model = build_resnet("resnet18").eval()
    assert model.conv1.in_channels == 1 and model.conv1.kernel_size == (7, 7)
    assert model.conv1.bias is None
    with torch.no_grad():
        assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model"):
        build_resnet("vgg16")
