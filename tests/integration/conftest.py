"""The slow tier: tests that start Ray, a server, a browser or a tune-mnist subprocess.
Each is marked `slow`, so `python -m pytest -m "not slow"` runs the fast tier alone."""

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.slow)
