"""--max-gpu-hours on a real local Ray declaring 4 logical GPUs (none exist): ResNet
trials hold 0.25 GPU each and train on the CPU, so their GPU-seconds are counted as the
compute table counts them (train time x GPU fraction)."""

from tune_mnist import load_results, load_space
from tune_mnist.run.sweep import SweepSettings, run_sweep
from tune_mnist.spec.budget import make_budget
from tune_mnist.store.experiment import read_meta

from ..conftest import TINY_RESNET, write_space


def test_gpu_budget_stops_the_sweep_once_spent(ray_with_gpus, tiny_data, tmp_path):
    grid = {**TINY_RESNET["grid"], "epochs": [3], "batch_size": [16, 32, 48]}
    spec = load_space(write_space(tmp_path, **{**TINY_RESNET, "grid": grid}))
    settings = SweepSettings(data_dir=str(tiny_data), storage_path=str(tmp_path / "runs"))
    budget = make_budget(max_gpu_hours=1e-5)  # 0.036 GPU-seconds: one epoch spends it
    result = run_sweep(spec, settings, budget=budget)

    run = read_meta(result.experiment_dir).run
    assert run.stopped.startswith("GPU budget of 1e-05 GPU-hours spent")
    assert run.spent_gpu_s >= 0.036
    results = load_results(result.experiment_dir)
    assert (results["status"] != "finished").all()  # stopped after at most an epoch each
    assert (results["assigned_gpus"].dropna() == 0.25).all()
    budget_table = next(t for t in result.summary.tables if t.name == "tiny-budget")
    assert len(budget_table.frame) == 3 and result.summary.complete
    assert result.summary.stopped == run.stopped
