"""Would another training setup reach the study's Fashion-MNIST accuracies? (issue 12's probe)

The full-scale q2 runs end 1.5 to 3 points below the study on Fashion-MNIST, and how the
final checkpoints are scored does not explain it (eval_probe.py). This retrains one
ResNet trial with tune_mnist.train.resnet.train_resnet, exactly as a sweep's trial runs it, but
with one change to its input pipeline, to test the setups a study may have used:

    --augment       random crops (zero padding of 2 pixels) and horizontal flips of the
                    training images, drawn per image from the trial's seed
    --normalize M S the study may have used torchvision's common Normalize((0.5,), (0.5,))
                    rather than the dataset's own mean and std
    --image-size N  images resized (bilinear) to N x N for training and testing, as when
                    a pipeline upsamples before a ResNet made for larger images (--resize:
                    the same, its older name)
    --checkpoint F  save the trial's state to F after every epoch and, when F exists, go
                    on from it: a long probe survives the end of a session

Prints each epoch's train and test accuracy and writes a JSON file with --out. One torch
thread, as Ray runs a one-CPU trial; run several probes as separate processes. Run by
hand, not in CI (ResNet-18, batch 16, full Fashion-MNIST: about 4-5 min per epoch per
AVX2 core):

    python benchmarks/train_probe.py --data-dir DATA --lr 0.001 --augment --out a.json
    python benchmarks/train_probe.py --data-dir DATA --lr 0.001 --normalize 0.5 0.5

DATA is a folder with mnist/ and fashion-mnist/ IDX files (default: $TUNE_MNIST_DATA).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # benchmarks/common.py, beside this script

import tune_mnist.train.resnet as train
from tune_mnist.spec.configs import ResNetConfig
from tune_mnist.train.data import load_dataset


def crop_and_flip(
    x: torch.Tensor, generator: torch.Generator, black: float, pad: int = 2
) -> torch.Tensor:
    """Each image of a batch shifted by up to `pad` pixels (zero fill) and flipped
    left-right with probability 1/2: torchvision's RandomCrop(padding) + RandomHorizontalFlip.
    `black` is a black pixel's normalized value: torchvision pads before normalizing."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), value=black)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    out = torch.stack(
        [padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(zip(dy, dx, strict=True))]
    )
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def variant_batches(augment: bool, normalize, resize: int | None):
    """A Batches class whose training epochs (and, for resize, all batches) are changed."""

    class Variant(train.Batches):
        def __init__(self, *args, **kwargs):
            if normalize:
                kwargs["normalization"] = ((normalize[0],), (normalize[1],))
            super().__init__(*args, **kwargs)
            self.augment = False  # set on the training batches only, below
            self.generator = None

        def to_device(self, images, labels):
            x, y = super().to_device(images, labels)
            if self.augment:
                x = crop_and_flip(x, self.generator, -self.mean / self.std)
            if resize:
                x = F.interpolate(x, size=(resize, resize), mode="bilinear", align_corners=False)
            return x, y

        def epoch(self, generator):
            if augment:  # only the training set is iterated by epoch(); scoring is not
                self.augment = True
                self.generator = self.generator or torch.Generator().manual_seed(
                    generator.initial_seed() + 1
                )
            yield from super().epoch(generator)

    return Variant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_data_dir(parser)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--normalize", type=float, nargs=2, metavar=("MEAN", "STD"))
    parser.add_argument("--image-size", "--resize", dest="resize", type=int)
    parser.add_argument("--checkpoint", type=Path, help="state after each epoch; resumed")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: as a one-CPU Ray trial)"
    )
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = common.parse_args(parser)

    torch.set_num_threads(args.threads)
    train.Batches = variant_batches(args.augment, args.normalize, args.resize)
    data = load_dataset(args.dataset, args.data_dir)
    trial = ResNetConfig(
        dataset=args.dataset,
        model=args.model,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        epochs=args.epochs,
        pin_memory=False,
        seed=args.seed,
    )
    change = {"augment": args.augment, "normalize": args.normalize, "resize": args.resize}

    resume = None
    if args.checkpoint and args.checkpoint.exists():
        resume = torch.load(args.checkpoint, weights_only=True)
        print(f"going on after epoch {resume['epoch']} from {args.checkpoint}", flush=True)

    def on_epoch(stats, state) -> None:
        print(
            f"epoch {stats.epoch}: train {stats.train_accuracy:.2f}%  test "
            f"{stats.test_accuracy:.2f}%  {stats.epoch_seconds:.0f} s",
            flush=True,
        )
        if args.checkpoint:  # written whole, then renamed: a kill never leaves half a file
            partial = args.checkpoint.with_suffix(".partial")
            torch.save(state(), partial)
            partial.replace(args.checkpoint)

    start = time.time()
    result = train.train_resnet(
        trial, data, train.TrainOptions(device="cpu"), resume=resume, on_epoch=on_epoch
    )
    report = {
        "benchmark": "train_probe",
        **common.stamp(),
        "trial": asdict(trial),
        "change": change,
        "threads": args.threads,
        "resumed_from_epoch": resume["epoch"] if resume else 0,
        "test_accuracy": result.test_accuracy,
        "history": [asdict(h) for h in result.history],
        "wall_s": round(time.time() - start, 1),
    }
    print(json.dumps({k: report[k] for k in ("change", "test_accuracy", "wall_s")}))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
