"""Two habits that make tests pass on a developer's checkout and fail in CI:
- `from conftest import x`: several test folders each have a conftest.py, and the import finds
  whichever one was imported first when folders run together (a folder's shared helpers live
  in a module with a name of its own);
- a subprocess given the checkout's `python/` folder as PYTHONPATH: after `pip install` (CI)
  that folder has no built engine; the package under test is found from
  `caffeonspark.__file__` instead."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def offending_lines(pattern: str) -> list[str]:
    return [
        f"{path.relative_to(TESTS)}:{number}"
        for path in sorted(TESTS.rglob("*.py"))
        if path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(pattern, line)
    ]


def test_no_test_module_imports_from_conftest():
    assert offending_lines(r"^\s*(from conftest import|import conftest\b)") == []


def test_no_subprocess_is_pointed_at_the_checkouts_python_folder():
    assert offending_lines(r"""/ ["']python["']|["']python["'] /""") == []
