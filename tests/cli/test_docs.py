"""The docs cannot drift: the CLI reference is what the app generates, and every command a
page shows as runnable (a `$ tune-mnist ...` line in a ```console block) runs and exits 0."""

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.cli import MARKUP_MODE_KEY, get_docs_for_click
from typer.testing import CliRunner

from tune_mnist.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "cli.md"
REGENERATE = "typer tune_mnist.cli.main utils docs --name tune-mnist --output docs/cli.md"
CONSOLE = re.compile(r"```console\n(.*?)```", re.S)


def generated_reference() -> str:
    """What `typer ... utils docs` writes (it leaves out the completion options and keeps
    the app's markup mode), made in this process."""
    completion, app._add_completion = app._add_completion, False
    try:
        command = typer.main.get_command(app)
    finally:
        app._add_completion = completion
    ctx = typer.Context(command, obj={MARKUP_MODE_KEY: app.rich_markup_mode})
    return get_docs_for_click(obj=command, ctx=ctx, name="tune-mnist").strip() + "\n"


def test_the_cli_reference_is_what_the_app_generates():
    assert REFERENCE.read_text() == generated_reference(), f"regenerate it: {REGENERATE}"


def shown_commands() -> list[tuple[str, str]]:
    """(page, command) for each runnable command the README and docs/ show."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = []
    for page in pages:
        if page == REFERENCE:  # its console blocks are usage lines, not commands
            continue
        for block in CONSOLE.findall(page.read_text()):
            for line in block.splitlines():
                if line.startswith("$ tune-mnist"):
                    found.append((page.relative_to(ROOT).as_posix(), line[2:]))
    return found


def test_the_docs_show_runnable_commands():
    assert len(shown_commands()) >= 3


@pytest.mark.parametrize(("page", "command"), shown_commands())
def test_a_command_the_docs_show_runs(page, command):
    result = CliRunner().invoke(app, shlex.split(command)[1:])
    assert result.exit_code == 0, f"{page}: {command}\n{result.output}"


def test_version_prints_the_installed_version():
    from importlib.metadata import version

    from typer.testing import CliRunner

    from tune_mnist.cli.main import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"tune-mnist {version('tune-mnist')}\n"
