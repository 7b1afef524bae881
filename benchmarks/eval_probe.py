"""How a trained ResNet's test accuracy depends on how it is evaluated (issue 12's probe).

The full-scale q2 runs end 1.5 to 3 points below the study on Fashion-MNIST. Retraining
is hours on a CPU; evaluating is seconds. So this reads a trial's final checkpoint and
scores it the ways a study might have: in eval mode (what tune-mnist reports), in train
mode (batch norm on each test batch's own statistics, as when `model.eval()` is
forgotten), with horizontal-flip test-time augmentation, and on the training images
(as when the "test" loader reads the training split).

    python benchmarks/eval_probe.py --data-dir DATA EXPERIMENT [EXPERIMENT ...]

Prints one line per trial and way, and writes them as JSON with --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_data_dir, parse_args

from tune_mnist.run.trainables import load_state
from tune_mnist.store.results import load_results
from tune_mnist.train.data import load_dataset
from tune_mnist.train.models import build_resnet
from tune_mnist.train.resnet import Batches, accuracy, pick_device


def score(model, batches: Batches, train_mode: bool = False, flip: bool = False) -> float:
    """Accuracy (%) over a whole set, one way."""
    model.train(train_mode)
    predicted = []
    with torch.no_grad():
        for start in range(0, len(batches), batches.batch_size):
            end = start + batches.batch_size
            x, _ = batches.to_device(batches.images[start:end], batches.labels[start:end])
            logits = model(x)
            if flip:
                logits = logits.softmax(1) + model(x.flip(3)).softmax(1)
            predicted.append(logits.argmax(1))
    return accuracy(torch.cat(predicted).cpu(), batches.labels)


def probe(trial_dir: Path, model_name: str, data, batch_size: int) -> dict[str, float]:
    """The final checkpoint of one trial, scored every way."""
    newest = sorted(trial_dir.glob("checkpoint_*"))[-1]
    device = pick_device("auto")
    model = build_resnet(model_name).to(device)
    model.load_state_dict(load_state(newest)["model"])

    def batches(images, labels, size):
        return Batches(
            images, labels, size, device, pin_memory=False, preload=False, dataset=data.name
        )

    test = batches(data.test_images, data.test_labels, 1000)
    found = {
        "checkpoint": newest.name,
        "eval mode": score(model, test),
        "eval mode + flip TTA": score(model, test, flip=True),
        # the first 10,000 training images: as many as the test set, a sixth of the time
        "train images, eval mode": score(
            model, batches(data.train_images[:10000], data.train_labels[:10000], 1000)
        ),
    }
    # train mode last: it updates the running statistics as a side effect
    small = batches(data.test_images, data.test_labels, batch_size)
    found[f"train mode, test batches of {batch_size}"] = score(model, small, train_mode=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_dir(parser)
    parser.add_argument("experiments", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parse_args(parser)
    torch.manual_seed(0)
    rows = []
    for experiment in args.experiments:
        results = load_results(experiment)
        for _, trial in results[results["status"] == "finished"].iterrows():
            data = load_dataset(trial["dataset"], args.data_dir)
            found = probe(Path(trial["trial_dir"]), trial["model"], data, trial["batch_size"])
            rows.append({"label": trial["label"], "reported": trial["test_accuracy"], **found})
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
