"""Models by name or reference, and what they cost: parameters and FLOPs.

Every model is a builder `build(channels, height, width, classes) -> nn.Module`: the
built-in ResNets (BUILTIN_MODELS), those packages register under the entry-point group
`tune_mnist.models`, and a space's own by reference, `package.module:callable` or
`/path/to/file.py:callable` (configs.resolve_model makes a file reference absolute).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import logging
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from importlib.metadata import entry_points
from math import prod
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models

from tune_mnist.errors import TuneMnistError, first_line
from tune_mnist.spec.configs import (
    BUILTIN_CLASSES,
    BUILTIN_SHAPE,
    MODEL_ENTRY_POINTS,
    MODELS,
    SHIPPED_ENV,
    is_file_reference,
    is_reference,
)

Builder = Callable[[int, int, int, int], nn.Module]


def build_resnet(name: str, num_classes: int = 10, channels: int = 1) -> nn.Module:
    """torchvision's resnet18/34/50 with a stem for `channels` (one by default); inputs
    keep their size (1x28x28 for the built-in datasets)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}")
    model = getattr(models, name)(num_classes=num_classes)
    model.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def _builtin(name: str, channels: int, height: int, width: int, classes: int) -> nn.Module:
    return build_resnet(name, classes, channels)


# The registry's built-in entries; torchvision's ResNets take any image size.
BUILTIN_MODELS: dict[str, Builder] = {name: partial(_builtin, name) for name in MODELS}


def registry() -> dict[str, Builder]:
    """Every model by name: the built-ins, then each entry point of `tune_mnist.models`
    (loaded, so its package is imported); a built-in name is never taken over."""
    added = {ep.name: ep for ep in entry_points(group=MODEL_ENTRY_POINTS)}
    return {**{n: ep.load() for n, ep in added.items()}, **BUILTIN_MODELS}


def load_builder(model: str) -> Builder:
    """The builder of a model name or reference; TuneMnistError saying why it cannot be
    had (the caller adds the space file and key)."""
    if model in BUILTIN_MODELS:
        return BUILTIN_MODELS[model]
    if not is_reference(model):
        found = [ep for ep in entry_points(group=MODEL_ENTRY_POINTS) if ep.name == model]
        if not found:
            raise TuneMnistError(f"{model}: no such model")
        return _loaded(model, found[0].load)
    where, _, name = model.rpartition(":")
    if is_file_reference(model):
        module = _loaded(model, partial(_import_file, Path(where)))
    else:
        module = _loaded(model, partial(importlib.import_module, where))
    builder = getattr(module, name, None)
    if not callable(builder):
        shown = Path(where).name if is_file_reference(model) else where
        raise TuneMnistError(f"{model}: {shown} has no callable {name!r}")
    return builder


def _loaded(model: str, load: Callable):
    """What `load` returns, any failure of the user's code said in one line."""
    try:
        return load()
    except TuneMnistError:
        raise
    except BaseException as e:  # an import runs the user's code: SyntaxError, SystemExit...
        if isinstance(e, KeyboardInterrupt):
            raise
        raise TuneMnistError(
            f"{model}: cannot import: {type(e).__name__}: {first_line(e)}"
        ) from None


def _import_file(path: Path):
    """Import a Python file by its path, once per process (workers import it themselves).

    A path this node does not have is looked for under the working directory, by its
    trailing parts (`models/nets.py`, then `nets.py`): a job's files shipped with Ray's
    runtime_env working_dir sit there on every node, under another absolute path than on
    the node whose driver read the space (jobs.py)."""
    path = shipped_copy(path)
    if not path.is_file():
        raise TuneMnistError(f"{path}: no such file")
    name = "tune_mnist_own_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # a fixed file can be imported again
        raise
    return module


def shipped_copy(path: Path, root: Path | None = None) -> Path:
    """`path` if it exists, else (in a job that shipped its files: SHIPPED_ENV) the file of
    its trailing parts under `root` (the working directory) that does; else `path`."""
    if path.is_file() or not os.environ.get(SHIPPED_ENV):
        return path
    root = root or Path.cwd()
    parts = path.parts[1:] if path.is_absolute() else path.parts
    for i in range(len(parts)):
        candidate = root.joinpath(*parts[i:])
        if candidate.is_file():
            return candidate
    return path


def build_model(model: str, shape: tuple[int, int, int], classes: int) -> nn.Module:
    """The model for images of `shape` (channels, height, width) and `classes` classes."""
    builder = load_builder(model)
    try:
        inspect.signature(builder).bind(*shape, classes)
    except TypeError:
        raise TuneMnistError(
            f"{model}: expected build(channels, height, width, classes), "
            f"got {getattr(builder, '__name__', 'it')}{inspect.signature(builder)}"
        ) from None
    except ValueError:  # no signature to read (a builtin): let the call tell
        pass
    try:
        net = builder(*shape, classes)
    except Exception as e:
        raise TuneMnistError(
            f"{model}: building failed: {type(e).__name__}: {first_line(e)}"
        ) from None
    if not isinstance(net, nn.Module):
        raise TuneMnistError(f"{model}: returned {type(net).__name__}, not a torch nn.Module")
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in net.parameters()):
        _materialize(model, net, shape)
    return net


def _materialize(model: str, net: nn.Module, shape: tuple[int, int, int]) -> None:
    """Give lazy modules (nn.LazyConv2d, nn.LazyLinear) their shapes with one image, as
    torch asks before parameters are counted or handed to an optimizer."""
    training = net.training
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, *shape))
    except Exception as e:
        raise TuneMnistError(
            f"{model}: its lazy modules could not be sized on one image: "
            f"{type(e).__name__}: {first_line(e)}"
        ) from None
    net.train(training)


def check_model(model: str, shape: tuple[int, int, int], classes: int) -> None:
    """Build a model and run one image of `shape` through it in eval mode: it must give
    one score per class. TuneMnistError saying what went wrong."""
    net = build_model(model, shape, classes).eval()
    try:
        with torch.no_grad():
            out = net(torch.zeros(1, *shape))
    except Exception as e:
        raise TuneMnistError(
            f"{model}: forward pass on a 1x{'x'.join(map(str, shape))} batch failed: "
            f"{type(e).__name__}: {first_line(e)}"
        ) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise TuneMnistError(
            f"{model}: output should be 1 x {classes} (one score per class) for one image, "
            f"got {got}"
        )


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
    """Parameters and GFLOPs of one 1x28x28 image (both conventions) of a built-in ResNet,
    once per model and process."""
    return measure(build_resnet(name), BUILTIN_SHAPE)


@cache
def model_cost_at(model: str, shape: tuple[int, int, int], classes: int) -> ModelCost:
    """model_cost of any model, for one image of its dataset's shape and class count."""
    if model in MODELS and (shape, classes) == (BUILTIN_SHAPE, BUILTIN_CLASSES):
        return model_cost(model)  # the study's numbers, computed once
    return measure(build_model(model, shape, classes), shape)


def measure(model: nn.Module, shape: tuple[int, int, int]) -> ModelCost:
    """Trainable parameters and the FLOPs of one image of `shape`, in eval mode."""
    with warnings.catch_warnings():  # fvcore uses torch.jit, which now warns on import
        warnings.simplefilter("ignore", FutureWarning)
        from fvcore.nn import FlopCountAnalysis

    model = model.eval()
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # fvcore warns about ops it does not count (adds, relus); the study counts as it does.
    logging.getLogger("fvcore.nn.jit_analysis").setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # fvcore traces with torch.jit
        flops = FlopCountAnalysis(model, torch.zeros(1, *shape))
        flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        fvcore_total = flops.total()
        study_total = flops.set_op_handle("aten::batch_norm", thop_batch_norm_flops).total()
    return ModelCost(
        params_m=params / 1e6, gflops=study_total / 1e9, gflops_fvcore=fvcore_total / 1e9
    )
