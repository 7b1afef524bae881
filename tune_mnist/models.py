"""ResNets for 1x28x28 inputs, and what they cost: parameters and fvcore FLOPs."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from functools import cache

import torch
from torch import nn
from torchvision import models


def build_resnet(name: str, num_classes: int = 10) -> nn.Module:
    """torchvision's resnet18/34/50 with a one-channel stem; inputs stay 1x28x28."""
    if name not in ("resnet18", "resnet34", "resnet50"):
        raise ValueError(f"unknown model {name!r}")
    model = getattr(models, name)(num_classes=num_classes)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


@dataclass(frozen=True)
class ModelCost:
    """Size and inference cost of one model."""

    params_m: float  # trainable parameters, millions
    gflops: float  # fvcore count for one 1x28x28 image in eval mode; a multiply-add is 1 flop


@cache
def model_cost(name: str) -> ModelCost:
    """Parameters and fvcore GFLOPs of one image, computed once per model and process."""
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
        total = flops.total()
    return ModelCost(params_m=params / 1e6, gflops=total / 1e9)
