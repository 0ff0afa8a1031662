"""No test imports from `conftest`: several test folders each have a conftest.py, and
`from conftest import x` finds whichever one was imported first when folders run together
(helpers shared by a folder's tests live in a module with a name of its own)."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_no_test_module_imports_from_conftest():
    offenders = [
        f"{path.relative_to(TESTS)}:{number}"
        for path in sorted(TESTS.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.match(r"\s*(from conftest import|import conftest\b)", line)
    ]
    assert offenders == []
