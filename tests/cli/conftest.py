"""`console`: run an entry point of pyproject.toml's [project.scripts] (`caffeonspark`,
`caffeonspark-submit`) in a subprocess exactly as its installed script does (import the
function, sys.exit(function())), with PYTHONPATH set to the caffeonspark under test and no
CAFFEONSPARK_DEBUG unless a test sets it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import caffeonspark

REPO = Path(__file__).resolve().parents[2]
# The caffeonspark under test (the checkout in development, site-packages after pip install).
PACKAGE_DIR = Path(caffeonspark.__file__).resolve().parents[1]
_SECTION = (REPO / "pyproject.toml").read_text().split("[project.scripts]")[1].split("\n[")[0]
SCRIPTS: dict[str, str] = dict(re.findall(r'^([\w-]+) = "([\w.:]+)"$', _SECTION, re.M))

Console = Callable[..., subprocess.CompletedProcess]


def run_script(
    name: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    module, function = SCRIPTS[name].split(":")
    code = f"import sys; sys.argv[0] = {name!r}; from {module} import {function}; " \
           f"sys.exit({function}())"
    environ = {k: v for k, v in os.environ.items() if k != "CAFFEONSPARK_DEBUG"}
    environ["PYTHONPATH"] = str(PACKAGE_DIR)
    environ.update(env or {})
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=environ, cwd=cwd, timeout=300)


@pytest.fixture()
def console(tmp_path: Path) -> Console:
    """console(*args, env=..., script="caffeonspark"), run in tmp_path."""

    def run(*args: str, env: dict[str, str] | None = None,
            script: str = "caffeonspark") -> subprocess.CompletedProcess:
        return run_script(script, *args, env=env, cwd=tmp_path)

    return run
