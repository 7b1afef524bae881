"""Where a CPU training step's time goes: one ResNet step under each variant of the loop.

Times forward + backward + optimizer step on a fixed random batch (no data path), and the
optimizer step alone, for each combination of: Adam foreach (torch's default) or fused,
padding taps skipped or not (models.PaddingSkippingConv2d), channels_last or not.
Run by hand, not in CI:

    python benchmarks/step.py --models resnet18 resnet50 --batch-size 16 --threads 2
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tune_mnist.train.models import build_resnet, skip_padding_taps


def milliseconds(fn, steps: int) -> float:
    """Median ms of `steps` calls after three warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return sorted(times)[len(times) // 2]


def variant(name: str, batch_size: int, fused: bool, skip: bool, channels_last: bool):
    """(ms per step, ms per optimizer step) of one variant."""
    torch.manual_seed(0)
    model = build_resnet(name).train()
    x, y = torch.randn(batch_size, 1, 28, 28), torch.randint(0, 10, (batch_size,))
    if skip:
        skip_padding_taps(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    kind = {"fused": True} if fused else {"foreach": True}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, **kind)

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    return milliseconds(step, 10), milliseconds(optimizer.step, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}")
    print("| model | Adam | padding taps | channels_last | ms/step | img/s | Adam ms |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: |")
    for name in args.models:
        for fused, skip, last in itertools.product([False, True], repeat=3):
            step_ms, adam_ms = variant(name, args.batch_size, fused, skip, last)
            print(
                f"| {name} | {'fused' if fused else 'foreach'} | {'skipped' if skip else 'kept'}"
                f" | {'yes' if last else 'no'} | {step_ms:.1f} | "
                f"{1000 * args.batch_size / step_ms:.1f} | {adam_ms:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
