"""`console`: run an entry point of pyproject.toml's [project.scripts] (`caffeonspark`,
`caffeonspark-submit`) in a subprocess exactly as its installed script does (import the
function, sys.exit(function())), with PYTHONPATH set to the caffeonspark under test and no
CAFFEONSPARK_DEBUG unless a test sets it. `terminal`: the same with stderr on a
pseudo-terminal of 80 columns, as a person at a terminal sees it.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
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


def _script(name: str, *args: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run console script `name` with `args`."""
    module, function = SCRIPTS[name].split(":")
    code = f"import sys; sys.argv[0] = {name!r}; from {module} import {function}; " \
           f"sys.exit({function}())"
    environ = {k: v for k, v in os.environ.items() if k != "CAFFEONSPARK_DEBUG"}
    environ["PYTHONPATH"] = str(PACKAGE_DIR)
    return [sys.executable, "-c", code, *args], environ


def run_script(
    name: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    command, environ = _script(name, *args)
    environ.update(env or {})
    return subprocess.run(command, capture_output=True, text=True, env=environ, cwd=cwd,
                          timeout=300)


def run_on_terminal(name: str, *args: str, cwd: Path) -> tuple[int, str]:
    """(exit status, stderr as the terminal received it, \\r included); stdout is dropped."""
    command, environ = _script(name, *args)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(command, cwd=cwd, env=environ, stdout=subprocess.DEVNULL,
                            stderr=slave)
    os.close(slave)  # so the read below ends when the child's end closes
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed its end (Linux)
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=300), b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture()
def console(tmp_path: Path) -> Console:
    """console(*args, env=..., script="caffeonspark"), run in tmp_path."""

    def run(*args: str, env: dict[str, str] | None = None,
            script: str = "caffeonspark") -> subprocess.CompletedProcess:
        return run_script(script, *args, env=env, cwd=tmp_path)

    return run


@pytest.fixture()
def terminal(tmp_path: Path) -> Callable[..., tuple[int, str]]:
    """terminal(*args): caffeonspark with stderr on a pseudo-terminal, run in tmp_path."""

    def run(*args: str) -> tuple[int, str]:
        return run_on_terminal("caffeonspark", *args, cwd=tmp_path)

    return run
