"""A trial that really diverges (SGD at lr 1e5, inside the bounds a space accepts: the loss
stops being finite or grows far past an untrained one) has ended:
sweep, status, summarize and resume say so alike and exit 0, and resume reruns nothing."""

from typer.testing import CliRunner

from tune_mnist import load_results
from tune_mnist.cli.main import app

from ..conftest import TINY_RESNET, write_space


def test_a_diverged_trial_ends_the_sweep_without_a_loop(tmp_path, tiny_data):
    space = {
        **TINY_RESNET,
        "fixed": {**TINY_RESNET["fixed"], "optimizer": "sgd", "lr": 1e5},
        "grid": {"dataset": ["mnist"], "batch_size": [32], "epochs": [2]},
    }
    path = write_space(tmp_path, **space)
    storage = tmp_path / "runs"
    experiment = storage / "tiny"
    runner = CliRunner()
    args = ["sweep", str(path), "--data-dir", str(tiny_data), "--storage-path", str(storage)]
    swept = runner.invoke(app, args)
    assert swept.exit_code == 0, swept.output
    assert "1 trials diverged" in swept.output
    assert "tune-mnist resume" not in swept.output
    results = load_results(experiment)
    assert list(results["status"]) == ["diverged"]
    assert "not finite, or over 10x an untrained classifier's" in results["error"].iloc[0]

    status = runner.invoke(app, ["status", str(experiment)])
    assert status.exit_code == 0, status.output
    assert "diverged" in status.output and "continue with" not in status.output

    summary = runner.invoke(app, ["summarize", str(experiment)])
    assert summary.exit_code == 0, summary.output
    assert "1 trials diverged" in summary.output

    logs = sorted(p.read_text() for p in experiment.glob("*/result.json"))
    resumed = runner.invoke(app, ["resume", str(experiment)])
    assert resumed.exit_code == 0, resumed.output
    assert sorted(p.read_text() for p in experiment.glob("*/result.json")) == logs  # not rerun
