"""image_size end to end: a smoke sweep over two sizes, its results, report and `show`."""

import pytest
from typer.testing import CliRunner

from tune_mnist import load_results
from tune_mnist.cli.main import app
from tune_mnist.train.models import model_cost_at

from ..conftest import TINY_RESNET, write_space


def test_a_sweep_over_image_sizes_trains_counts_and_reports_each(tmp_path, tiny_data):
    space = {
        **TINY_RESNET,
        "grid": {"dataset": ["mnist"], "batch_size": [32], "epochs": [1], "image_size": [16, 32]},
    }
    path = write_space(tmp_path, **space)
    shown = CliRunner().invoke(app, ["show", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "image_size" in shown.output and "32" in shown.output

    storage = tmp_path / "runs"
    args = ["sweep", str(path), "--data-dir", str(tiny_data), "--storage-path", str(storage)]
    swept = CliRunner().invoke(app, args)
    assert swept.exit_code == 0, swept.output

    results = load_results(storage / "tiny").set_index("image_size")
    assert list(results["status"]) == ["finished", "finished"]
    assert sorted(results.index) == [16, 32]
    for size in (16, 32):  # counted at the size the model saw
        cost = model_cost_at("resnet18", (1, size, size), 10)
        assert results.loc[size, "gflops"] == pytest.approx(cost.gflops)
    assert results.loc[32, "gflops"] > 2 * results.loc[16, "gflops"]
    assert results.loc[32, "label"].endswith("/32px/s0")

    tables = (storage / "tiny" / "report" / "tables.md").read_text()
    assert "image size" in tables
    assert "one image at its row's image size (resized before the model)" in tables
