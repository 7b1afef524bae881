"""`python -m tune_mnist`: the same as the `tune-mnist` command."""

from .cli import app

app(prog_name="tune-mnist")
