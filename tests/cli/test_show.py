"""`show` on spaces users write: one table, never a traceback."""

from typer.testing import CliRunner

from tune_mnist.cli.main import app

LOOP = "def train(config, data, report):\n    report(accuracy=50.0)\n"
SEARCH = """name: c
trainable: ./loop.py:train
metric: accuracy
fixed:
  dataset: mnist
  lr: {loguniform: [1.0e-4, 1.0e-1]}
search: {algorithm: random, num_samples: 4}
"""


def test_show_a_custom_trainables_random_search(tmp_path):
    """Issue 29: this printed `TypeError: unhashable type: 'dict'`."""
    (tmp_path / "loop.py").write_text(LOOP)
    (tmp_path / "s.yaml").write_text(SEARCH)
    result = CliRunner().invoke(app, ["show", str(tmp_path / "s.yaml")])
    assert result.exit_code == 0, result.output
    assert "loguniform(0.0001, 0.1)" in result.output and "loop.py:train" in result.output
    assert "random search: 4 samples = 4 trials" in result.output


def test_spaces_and_status_print_json_for_pipes(tmp_path):
    """Issue 29: piped `spaces` and `status` printed box-drawing characters only."""
    import json

    from tests.experiments import make_experiment
    from tune_mnist.spec.spaces import load_space

    spaces = json.loads(CliRunner().invoke(app, ["spaces", "--json"]).output)
    assert {
        k: v
        for k, v in next(s for s in spaces if s["space"] == "q1a").items()
        if k != "description"
    } == {"space": "q1a", "trainable": "resnet", "trials": 32}
    folder = make_experiment(tmp_path / "e", load_space("q1b"), lambda t: 90.0, skip={3})
    record = json.loads(CliRunner().invoke(app, ["status", str(folder), "--json"]).output)
    assert record["name"] == "q1b" and record["complete"] is False
    assert [t["status"] for t in record["trials"]] == ["finished"] * 3 + ["pending"]
