"""The package as a user installs it: a wheel in a fresh venv finds the built-in spaces."""

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*command, cwd):
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True).stdout


def test_a_wheel_in_a_fresh_venv_finds_the_builtin_spaces(tmp_path):
    # the wheel is built from a copy of the tracked files, as from a fresh clone
    source = tmp_path / "src"
    files = run("git", "ls-files", "-z", cwd=ROOT).split("\0")
    for name in filter(None, files):
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name).read_bytes())
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    run(
        *pip,
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        tmp_path / "dist",
        source,
        cwd=tmp_path,
    )
    wheel = next((tmp_path / "dist").glob("tune_mnist-*.whl"))

    env = tmp_path / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    # the fresh venv's own site-packages gets only the wheel; its dependencies come from
    # this environment, added after it on sys.path (installing torch again would take GB)
    site = Path(
        run(
            python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path
        ).strip()
    )
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run(*pip, "install", "--no-deps", "--target", site, wheel, cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run(python, "-c", "import tune_mnist; print(tune_mnist.__file__)", cwd=elsewhere)
    assert where.startswith(str(site))  # the wheel's copy, not this checkout
    listing = run(python, "-m", "tune_mnist", "spaces", cwd=elsewhere)
    for name, trials in (
        ("q1a", "32"),
        ("q1b ", "4"),
        ("q1b-full", "5"),
        ("q2 ", "10"),
        ("q2-full", "96"),
    ):
        assert any(name.strip() in line and trials in line for line in listing.splitlines())
    with zipfile.ZipFile(wheel) as contents:
        assert "tune_mnist/search_spaces/q2.yaml" in contents.namelist()
