"""Every `Tests:` pointer in a source header names test files that exist.

Sources: every file under cpp/, python/caffeonspark/ (not the generated proto/caffe_pb2.py),
tools/ and examples/. A pointer is the text after `Tests:` and its continuation lines (same
comment marker, or plain docstring lines) up to the end of the sentence. Each `tests/...`
token in it must be an existing file or folder under the repository root; a token with `*`
must match at least one file; tokens with `<` (`tests/layers/test_<family>.py`) describe a
pattern and are skipped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("cpp", "python/caffeonspark", "tools", "examples")
SKIP = {"python/caffeonspark/proto/caffe_pb2.py"}
TOKEN = re.compile(r"tests/[A-Za-z0-9_./*<>{}-]*")
MARKERS = ("//", "#", "*")


def _marker(line: str) -> str:
    stripped = line.lstrip()
    return next((m for m in MARKERS if stripped.startswith(m)), "")


def _body(line: str, marker: str) -> str:
    stripped = line.strip()
    return stripped[len(marker):].strip() if marker else stripped


def pointers(text: str) -> list[tuple[int, str]]:
    """(line number, the pointer's text) for each `Tests:` in `text`."""
    lines = text.splitlines()
    found = []
    for number, line in enumerate(lines):
        if "Tests:" not in line:
            continue
        marker = _marker(line)
        pointer = line.split("Tests:", 1)[1].strip()
        follow = number + 1
        while not pointer.rstrip("`").endswith(".") and follow < len(lines):
            nxt = lines[follow]
            if not nxt.strip() or '"""' in nxt or _marker(nxt) != marker:
                break
            body = _body(nxt, marker)
            split_path = pointer.endswith("/") and not body.startswith("tests/")
            pointer += body if split_path else " " + body  # a path broken after a '/'
            follow += 1
        found.append((number + 1, pointer))
    return found


def tokens(pointer: str) -> list[str]:
    return [t.rstrip(".,;:") for t in TOKEN.findall(pointer) if "<" not in t]


def source_files() -> list[Path]:
    files = []
    for folder in SOURCE_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if path.is_file() and rel not in SKIP and "__pycache__" not in rel:
                files.append(path)
    return files


def resolves(token: str) -> bool:
    if "*" in token:
        return any(p.is_file() for p in ROOT.glob(token))
    return (ROOT / token).exists()


def test_parser_on_the_shapes_used_in_headers():
    text = (
        "// Tests: tests/a.py, tests/b/\n// tests/c.py.\n#pragma once\n"
        'Tests: tests/spark/\ntest_x.py (note), tests/layers/test_<family>.py.\n"""\n'
        "# Tests: tests/layers/test_memory_data*.py\n"
        "x = 1\n"
        "`-test`. Tests: `tests/examples/`.\n"
    )
    got = [tokens(p) for _, p in pointers(text)]
    assert got == [
        ["tests/a.py", "tests/b/", "tests/c.py"],
        ["tests/spark/test_x.py"],
        ["tests/layers/test_memory_data*.py"],
        ["tests/examples/"],
    ]


def test_every_tests_pointer_resolves():
    broken, seen = [], 0
    for path in source_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, pointer in pointers(text):
            for token in tokens(pointer):
                seen += 1
                if not resolves(token):
                    broken.append(f"{path.relative_to(ROOT)}:{number}: {token}")
    if seen == 0:
        pytest.fail("no Tests: pointers found: the scan is broken")
    assert not broken, "Tests: pointers to missing files:\n" + "\n".join(broken)
