import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from tune_mnist.train.models import (
    FLOPS_CONVENTION,
    PaddingSkippingConv2d,
    build_resnet,
    live_taps,
    model_cost,
    skip_padding_taps,
)


@pytest.mark.parametrize(
    ("name", "params_m", "gflops", "gflops_fvcore", "mflops"),
    [
        ("resnet18", 11.18, 0.0332, 0.0331, 33.18),
        ("resnet34", 21.28, 0.0699, 0.0698, 69.92),
        ("resnet50", 23.52, 0.0788, 0.0784, 78.75),
    ],
)
def test_params_and_flops_match_the_study(name, params_m, gflops, gflops_fvcore, mflops):
    cost = model_cost(name)
    assert round(cost.params_m, 2) == params_m
    assert round(cost.gflops, 4) == gflops  # the study's table, thop's batch-norm count
    assert round(cost.gflops * 1e3, 2) == mflops
    assert round(cost.gflops_fvcore, 4) == gflops_fvcore


def test_the_two_conventions_differ_only_in_batch_norm():
    # ResNet-18 at 28x28: its 20 batch norms see 43,008 elements in all (stem 64x14x14,
    # then 4x 64x7x7, 5x 128x4x4, 5x 256x2x2, 5x 512x1x1); fvcore counts 2 per element,
    # thop 4, so the two totals differ by 2 x 43,008 operations.
    elements = 64 * 14 * 14 + 4 * 64 * 49 + 5 * 128 * 16 + 5 * 256 * 4 + 5 * 512
    assert elements == 43_008
    cost = model_cost("resnet18")
    assert round((cost.gflops - cost.gflops_fvcore) * 1e9) == 2 * elements
    assert "batch norm as 4 operations per element" in FLOPS_CONVENTION


def test_one_channel_stem_and_ten_classes():
    model = build_resnet("resnet18").eval()
    assert model.conv1.in_channels == 1 and model.conv1.kernel_size == (7, 7)
    assert model.conv1.bias is None
    with torch.no_grad():
        assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model"):
        build_resnet("vgg16")


def test_live_taps_of_a_3x3_kernel_on_small_maps():
    # 1x1 map, stride 1: only the centre tap sees the pixel
    assert live_taps((1, 1), (3, 3), (1, 1), (1, 1)) == (slice(1, 2), slice(1, 2), (0, 0))
    # 2x2 map, stride 2 (a stage's first block): one output, the lower-right 2x2 taps
    assert live_taps((2, 2), (3, 3), (2, 2), (1, 1)) == (slice(1, 3), slice(1, 3), (0, 0))
    # maps of 2x2 (stride 1) and larger use every tap: nothing to skip
    assert live_taps((2, 2), (3, 3), (1, 1), (1, 1)) is None
    assert live_taps((7, 7), (3, 3), (1, 1), (1, 1)) is None
    assert live_taps((28, 28), (7, 7), (2, 2), (3, 3)) is None


def conv_flops(model, x) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(model(x), torch.arange(len(x)) % 10).backward()
    return counter.get_total_flops()


# ResNet-50's case takes 3 s: the slow tier runs it
@pytest.mark.parametrize("name", ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow)])
def test_skipping_padding_taps_changes_the_work_not_the_result(name):
    torch.manual_seed(0)
    plain = build_resnet(name).train()
    skipping = skip_padding_taps(copy.deepcopy(plain))
    assert any(isinstance(m, PaddingSkippingConv2d) for m in skipping.modules())
    assert plain.state_dict().keys() == skipping.state_dict().keys()
    x = torch.randn(8, 1, 28, 28)
    plain_flops, skipping_flops = conv_flops(plain, x), conv_flops(skipping, x)
    assert skipping_flops < plain_flops
    for (key, p), q in zip(plain.named_parameters(), skipping.parameters(), strict=True):
        scale = p.grad.abs().max().item()  # fp32 sums in another order: relative to it
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-5 * scale, msg=key)
    # the taps left out only ever met padding: their gradient is exactly zero either way
    weight = dict(plain.named_parameters())[
        "layer4.1.conv1.weight" if name == "resnet18" else "layer4.1.conv2.weight"
    ]
    outer = weight.grad.clone()
    outer[:, :, 1, 1] = 0
    assert torch.count_nonzero(outer) == 0
    # on maps where every tap is live the two models do exactly the same work
    big = torch.randn(2, 1, 112, 112)
    assert conv_flops(plain, big) == conv_flops(skipping, big)


def test_a_model_of_lazy_modules_is_sized_when_built(tmp_path):
    """Issue 29: nn.LazyConv2d / nn.LazyLinear passed `show` and the sweep died counting
    parameters (`Attempted to use an uninitialized parameter`)."""
    from tune_mnist.train.models import build_model, model_cost_at

    (tmp_path / "lazy.py").write_text(
        "from torch import nn\n\n"
        "def build(channels, height, width, classes):\n"
        "    return nn.Sequential(nn.LazyConv2d(4, 3), nn.ReLU(), nn.Flatten(),"
        " nn.LazyLinear(classes))\n"
    )
    reference = f"{tmp_path / 'lazy.py'}:build"
    net = build_model(reference, (1, 28, 28), 10)
    assert net.training  # built as any model is: in training mode
    assert sum(p.numel() for p in net.parameters()) == 4 * 9 + 4 + 4 * 26 * 26 * 10 + 10
    cost = model_cost_at(reference, (1, 28, 28), 10)
    assert cost.params_m * 1e6 == pytest.approx(27090) and cost.gflops > 0
