"""Fractional GPUs on a real local Ray that declares 4 logical GPUs (no GPU needed)."""

import pytest

from tune_mnist import load_space
from tune_mnist.errors import TuneMnistError
from tune_mnist.run.sweep import SweepSettings, run_sweep

from ..conftest import TINY_RESNET, TINY_SVM, write_space

TWELVE = {
    **TINY_RESNET,
    # 4 epochs: long enough that all 8 trials start before the first ends, even now that an
    # epoch of tiny data takes well under a second (with 1 epoch the peak was once 7)
    "grid": {"dataset": ["mnist"], "batch_size": [32, 48], "seed": list(range(6)), "epochs": [4]},
    "fixed": {**TINY_RESNET["fixed"], "optimizer": "sgd"},
}


def test_half_gpu_resnet_trials_run_eight_at_a_time_of_twelve(ray_with_gpus, tmp_path, tiny_data):
    spec = load_space(write_space(tmp_path, **TWELVE))
    result = run_sweep(spec, SweepSettings(data_dir=str(tiny_data), gpus_per_trial=0.5))
    assert result.resources == {"resnet": {"gpu": 0.5}}
    assert result.peak_running == 8  # 4 GPUs / 0.5, though only 2 CPUs exist
    frame = result.results
    assert len(frame) == 12 and set(frame["status"]) == {"finished"}
    assert (frame["assigned_gpus"] == 0.5).all()
    assert (frame["assigned_cpus"] == 0).all()  # on GPU clusters ResNets ask for no CPU
    assert set(frame["gpu_ids"]) <= {"0", "1", "2", "3"}


def test_space_fraction_is_the_default(ray_with_gpus, tmp_path, tiny_data):
    spec = load_space(write_space(tmp_path, **{**TINY_RESNET, "resources": {"gpu": 0.25}}))
    result = run_sweep(spec, SweepSettings(data_dir=str(tiny_data), smoke=True))
    assert (result.results["assigned_gpus"] == 0.25).all()


def test_svm_trials_ask_for_no_gpu(ray_with_gpus, tmp_path, tiny_data):
    spec = load_space(write_space(tmp_path, **TINY_SVM))
    result = run_sweep(spec, SweepSettings(data_dir=str(tiny_data)))
    assert result.resources == {"svm": {"cpu": 1.0}}
    assert (result.results["assigned_gpus"] == 0).all()
    assert (result.results["gpu_ids"] == "").all()


@pytest.mark.parametrize(
    ("fraction", "message"),
    [
        (0, "--gpus-per-trial 0: expected more than 0"),
        (-0.5, "--gpus-per-trial -0.5: expected more than 0"),
        (
            5,
            r"resnet trials ask for \{'gpu': 5\}, which fits on no node of the cluster \(the largest node has 2 CPUs and 4 GPUs\)",
        ),
    ],
)
def test_impossible_gpu_fraction(ray_with_gpus, tmp_path, tiny_data, fraction, message):
    spec = load_space(write_space(tmp_path, **TINY_RESNET))
    with pytest.raises(TuneMnistError, match=message):
        run_sweep(spec, SweepSettings(data_dir=str(tiny_data), gpus_per_trial=fraction))
