"""Shared pytest fixtures.

`anchors`: the fixture files in shared/anchors (the `shared` directory next to the
repository root); tests using it are skipped when that directory is absent.
"""

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def anchors() -> Path:
    """Path to shared/anchors (skips the test when it is absent)."""
    path = SHARED / "anchors"
    if not path.is_dir():
        pytest.skip(f"fixture directory {path} is absent (shared/ not laid next to the repo)")
    return path


@pytest.fixture(scope="session", autouse=True)
def caffeonspark_cache(tmp_path_factory) -> Path:
    """The tests' own cache folder (the driver JVM's class archive), not the user's."""
    path = tmp_path_factory.mktemp("caffeonspark-cache")
    os.environ["CAFFEONSPARK_CACHE"] = str(path)
    return path
