"""ResNets for 1x28x28 inputs, and what they cost: parameters and FLOPs."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from functools import cache
from math import prod

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models

from .configs import MODELS


def build_resnet(name: str, num_classes: int = 10) -> nn.Module:
    """torchvision's resnet18/34/50 with a one-channel stem; inputs stay 1x28x28."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}")
    model = getattr(models, name)(num_classes=num_classes)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


class PaddingSkippingConv2d(nn.Conv2d):
    """A Conv2d that leaves out kernel taps which only ever multiply zero padding.

    At 28x28 a ResNet's last stage sees 1x1 (and 2x2) feature maps, so eight of a 3x3
    kernel's nine taps read nothing but padding. Their products are exactly zero and so
    are their weight gradients, so dropping them changes no value; it matters because
    oneDNN's CPU weight-gradient kernel for a 3x3 conv on a 1x1 map ran about 10x slower
    than the forward pass (benchmarks/RESULTS.md). Parameters, state_dict and FLOP counts
    stay those of the plain model.
    """

    def _conv_forward(self, x, weight, bias):
        plan = None
        if self.dilation == (1, 1) and self.padding_mode == "zeros":
            plan = live_taps(x.shape[-2:], self.kernel_size, self.stride, self.padding)
        if plan is None:
            return super()._conv_forward(x, weight, bias)
        rows, cols, padding = plan
        weight = weight[:, :, rows, cols]
        return F.conv2d(x, weight, bias, self.stride, padding, self.dilation, self.groups)


def live_taps(size, kernel, stride, padding):
    """(rows, cols, padding) of the kernel taps that touch the input, or None if all do.

    Not cached: it costs microseconds a call, and torch.compile traces it cleanly as it is.
    """
    if isinstance(padding, str):  # "valid" or "same": every tap meets the input
        return None
    spans = []
    for n, k, s, p in zip(size, kernel, stride, padding, strict=True):
        out = (n + 2 * p - k) // s + 1
        live = [t for t in range(k) if any(0 <= i * s - p + t < n for i in range(out))]
        if not live:
            return None
        first, last = live[0], live[-1]
        # the cropped kernel with padding p - first must give the same output size
        if (n + 2 * (p - first) - (last - first + 1)) // s + 1 != out:
            return None
        spans.append((slice(first, last + 1), p - first, last - first + 1 < k))
    if not any(cropped for _, _, cropped in spans):
        return None
    (rows, pad_rows, _), (cols, pad_cols, _) = spans
    return rows, cols, (pad_rows, pad_cols)


def skip_padding_taps(model: nn.Module) -> nn.Module:
    """Make every plain Conv2d of `model` a PaddingSkippingConv2d, in place; same weights."""
    for module in model.modules():
        if type(module) is nn.Conv2d:
            module.__class__ = PaddingSkippingConv2d
    return model


# What `ModelCost.gflops` counts, in words, for a table's note.
FLOPS_CONVENTION = (
    "fvcore count of one 1x28x28 image in eval mode, a multiply-add as 1 operation, "
    "batch norm as 4 operations per element (thop's convention, as the study)"
)


@dataclass(frozen=True)
class ModelCost:
    """Size and inference cost of one model, for one 1x28x28 image in eval mode."""

    params_m: float  # trainable parameters, millions
    gflops: float  # FLOPS_CONVENTION: the study's numbers, what tables show
    gflops_fvcore: float  # fvcore's default: batch norm as 2 operations per element


def thop_batch_norm_flops(inputs, outputs) -> int:
    """fvcore handle for aten::batch_norm counting as thop does: 2 operations per element
    to normalize, doubled for the affine scale and shift (every ResNet norm has one).

    fvcore itself counts 2 per element (1 without affine) in eval mode; thop's 4 is what
    gives the study's 0.0332 / 0.0699 / 0.0788 GFLOPs for ResNet-18/34/50.
    """
    from fvcore.nn.jit_handles import get_shape

    affine = get_shape(inputs[1]) is not None
    return prod(get_shape(inputs[0])) * (4 if affine else 2)


@cache
def model_cost(name: str) -> ModelCost:
    """Parameters and GFLOPs of one image (both conventions), once per model and process."""
    with warnings.catch_warnings():  # fvcore uses torch.jit, which now warns on import
        warnings.simplefilter("ignore", FutureWarning)
        from fvcore.nn import FlopCountAnalysis

    model = build_resnet(name).eval()
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # fvcore warns about ops it does not count (adds, relus); the study counts as it does.
    logging.getLogger("fvcore.nn.jit_analysis").setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # fvcore traces with torch.jit
        flops = FlopCountAnalysis(model, torch.zeros(1, 1, 28, 28))
        flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        fvcore_total = flops.total()
        study_total = flops.set_op_handle("aten::batch_norm", thop_batch_norm_flops).total()
    return ModelCost(
        params_m=params / 1e6, gflops=study_total / 1e9, gflops_fvcore=fvcore_total / 1e9
    )
