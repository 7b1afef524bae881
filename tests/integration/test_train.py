import copy
import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tune_mnist.errors import TuneMnistError
from tune_mnist.spec.configs import ResNetConfig
from tune_mnist.train.data import load_dataset
from tune_mnist.train.resnet import (
    Batches,
    GPUShareExceeded,
    TrainOptions,
    diverged,
    make_optimizer,
    train_resnet,
)

TRIAL = ResNetConfig(
    model="resnet18",
    dataset="mnist",
    batch_size=32,
    optimizer="adam",
    lr=0.001,
    epochs=2,
    pin_memory=True,
    seed=0,
)


@pytest.fixture(scope="module")
def mnist(tiny_data):
    return load_dataset("mnist", tiny_data)


def test_train_resnet_reports_every_epoch(mnist):
    seen = []
    result = train_resnet(TRIAL, mnist, on_epoch=lambda stats, state: seen.append(stats))
    assert [s.epoch for s in seen] == [1, 2]
    assert result.epochs_trained == 2
    assert result.test_accuracy == seen[-1].test_accuracy
    assert 0 <= result.test_accuracy <= 100
    assert result.train_time_ms == pytest.approx(1000 * sum(s.epoch_seconds for s in seen))
    assert all(s.train_loss > 0 and s.images_per_s > 0 for s in seen)
    assert result.options["device"] == "cpu" and result.options["amp"] is False


def test_same_seed_same_training(mnist):
    a = train_resnet(replace(TRIAL, epochs=1), mnist)
    b = train_resnet(replace(TRIAL, epochs=1), mnist)
    assert a.history[0].train_loss == pytest.approx(b.history[0].train_loss, rel=1e-5)
    c = train_resnet(replace(TRIAL, epochs=1, seed=1), mnist)
    assert c.history[0].train_loss != pytest.approx(a.history[0].train_loss, rel=1e-5)


def test_resume_continues_where_the_state_left_off(mnist):
    states = []
    straight = train_resnet(
        TRIAL, mnist, on_epoch=lambda s, state: states.append(copy.deepcopy(state()))
    )
    assert states[0]["epoch"] == 1
    resumed = train_resnet(TRIAL, mnist, resume=states[0])
    assert resumed.epochs_trained == 2
    assert [h.epoch for h in resumed.history] == [1, 2]
    assert resumed.history[1].train_loss == pytest.approx(straight.history[1].train_loss, rel=1e-4)
    # only the second epoch was trained again: its time plus the first epoch's saved time
    assert resumed.train_time_ms == pytest.approx(
        states[0]["train_time_ms"] + 1000 * resumed.history[1].epoch_seconds
    )


def test_a_finished_trials_model_only_state_cannot_be_trained_on(mnist):
    states = []
    one = replace(TRIAL, epochs=1)
    train_resnet(one, mnist, on_epoch=lambda s, state: states.append(copy.deepcopy(state())))
    final = {**states[-1], "optimizer": None}  # as trainables keeps a finished trial's
    assert train_resnet(one, mnist, resume=final).epochs_trained == 1  # nothing to train
    with pytest.raises(TuneMnistError, match="no optimizer state to train on to epoch 2"):
        train_resnet(TRIAL, mnist, resume=final)


def test_max_epochs_caps_training(mnist):
    assert train_resnet(TRIAL, mnist, TrainOptions(max_epochs=1)).epochs_trained == 1


def test_batches_cover_the_epoch_once_and_normalize(mnist):
    batches = Batches(
        mnist.train_images,
        mnist.train_labels,
        32,
        torch.device("cpu"),
        pin_memory=False,
        preload=False,
        dataset="mnist",
    )
    labels = torch.cat([y for _, y in batches.epoch(torch.Generator().manual_seed(0))])
    assert sorted(labels.tolist()) == sorted(mnist.train_labels.tolist())
    x, _ = next(batches.epoch(torch.Generator().manual_seed(0)))
    assert x.shape == (32, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == pytest.approx((0 - 0.1307) / 0.3081, abs=1e-4)


def test_batch_of_one_is_dropped(mnist):
    batches = Batches(
        mnist.train_images[:33],
        mnist.train_labels[:33],
        32,
        torch.device("cpu"),
        pin_memory=False,
        preload=False,
        dataset="mnist",
    )
    assert [len(y) for _, y in batches.epoch(torch.Generator())] == [32]


def test_sgd_is_plain_unless_momentum_is_set():
    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd = make_optimizer(replace(TRIAL, optimizer="sgd", lr=0.1), params)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0
    adam = make_optimizer(replace(TRIAL, optimizer="adam", lr=0.1), params)
    assert isinstance(adam, torch.optim.Adam)
    assert sgd.defaults["fused"] and adam.defaults["fused"]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_fused_step_matches_the_plain_for_loop_step(optimizer):
    torch.manual_seed(0)
    trial = replace(TRIAL, optimizer=optimizer, lr=0.01, momentum=0.9, weight_decay=1e-4)
    fused_params = [torch.nn.Parameter(torch.randn(50)) for _ in range(3)]
    plain_params = [torch.nn.Parameter(p.detach().clone()) for p in fused_params]
    fused = make_optimizer(trial, fused_params)
    kind = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    extra = {"momentum": 0.9} if optimizer == "sgd" else {}
    plain = kind(plain_params, lr=0.01, weight_decay=1e-4, foreach=False, **extra)
    for _ in range(5):
        grads = [torch.randn(50) for _ in fused_params]
        for params, opt in ((fused_params, fused), (plain_params, plain)):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            opt.step()
    for f, p in zip(fused_params, plain_params, strict=True):
        torch.testing.assert_close(f, p)


def test_skipping_padding_taps_is_on_for_cpu_and_changes_no_result(mnist):
    trial = replace(TRIAL, epochs=1)
    skipped = train_resnet(trial, mnist)
    plain = train_resnet(trial, mnist, TrainOptions(skip_padding_taps=False))
    assert skipped.options["skip_padding_taps"] is True
    assert plain.options["skip_padding_taps"] is False
    a, b = skipped.history[0], plain.history[0]
    assert a.train_loss == pytest.approx(b.train_loss, rel=1e-4)
    assert a.test_accuracy == pytest.approx(b.test_accuracy, abs=0.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_pinned_batches_on_cuda(mnist):
    batches = Batches(
        mnist.train_images,
        mnist.train_labels,
        32,
        torch.device("cuda"),
        pin_memory=True,
        preload=False,
        dataset="mnist",
    )
    x, y = next(batches.epoch(torch.Generator()))
    assert x.is_cuda and y.is_cuda


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_trial_outgrowing_its_gpu_share_fails_clearly(mnist):
    with pytest.raises(GPUShareExceeded, match="within this trial's share"):
        train_resnet(TRIAL, mnist, TrainOptions(device="cuda", memory_fraction=1e-6))


def test_training_imports_nothing_a_bare_gpu_machine_lacks():
    # benchmarks/gpu.py runs tune_mnist.train.resnet where only torch, torchvision and numpy are
    code = (
        "import sys, tune_mnist.train.resnet, tune_mnist.train.data;"
        "print(sorted(m for m in ('ray', 'fvcore', 'pydantic', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_loss_far_above_an_untrained_classifiers_is_divergence_though_finite():
    # ln(10) = 2.30: an untrained 10-class model's loss; 10x that is the line
    assert diverged(5.4e11, 10) and diverged(float("nan"), 10) and diverged(float("inf"), 10)
    assert diverged(23.1, 10) and not diverged(23.0, 10) and not diverged(2.5, 10)
    assert diverged(7.0, 2) and not diverged(6.9, 2)  # 10 x ln(2) = 6.93


def test_a_huge_lr_with_adam_is_reported_diverged(mnist):
    result = train_resnet(replace(TRIAL, optimizer="adam", lr=1e5, epochs=2), mnist)
    assert result.diverged and result.epochs_trained == 1


def test_a_diverged_loss_stops_training_and_says_so(mnist):
    # plain SGD at lr 1e8 overflows to an infinite or NaN loss in the first epoch
    trial = replace(TRIAL, optimizer="sgd", lr=1e8, epochs=3)
    seen = []
    result = train_resnet(trial, mnist, on_epoch=lambda stats, state: seen.append(stats))
    assert result.diverged and result.epochs_trained == 1 and len(seen) == 1
    assert not math.isfinite(seen[0].train_loss)
    assert not train_resnet(replace(TRIAL, epochs=1), mnist).diverged


def test_the_gpu_probe_runs_on_a_cpu_at_a_tiny_size(tiny_data):
    """benchmarks/gpu_probe.py, as run on a lent GPU, in its dry-run form: each (row, size)
    trains, prints its epochs and ends in one JSON object."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_probe.py"
    args = ["--data-dir", str(tiny_data), "--device", "cpu", "--images", "64", "--epochs", "1"]
    out = subprocess.run(
        [sys.executable, str(script), *args, "--sizes", "16", "--slots", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert [(t["image_size"], t["lr"]) for t in report["trials"]] == [(16, 0.001), (16, 0.0001)]
    assert all(
        len(t["epochs"]) == 1 and t["epochs"][0]["ms_per_iteration"] > 0 for t in report["trials"]
    )
    assert "16px lr 0.001 epoch 1: test" in out.stderr and "(study 92.07%)" in out.stderr
