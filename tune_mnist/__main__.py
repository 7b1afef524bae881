"""`python -m tune_mnist`: the same as the `tune-mnist` command."""

from tune_mnist.cli.main import app

app(prog_name="tune-mnist")
