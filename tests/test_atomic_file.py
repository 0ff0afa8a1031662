"""Tests of python/caffeonspark/atomic_file.py: the target only ever holds a complete file
(a failure inside the writer leaves the old file and no temporary file), the file and its
folder are fsynced before and after the rename, temporary names are unique, and folders
(LMDB-like) are published whole."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from caffeonspark import atomic_file
from caffeonspark.atomic_file import atomic_path, atomic_write, publish


@pytest.fixture
def fsynced(monkeypatch) -> list[str]:
    """The paths of the fds os.fsync is called on, in order."""
    seen: list[str] = []
    real = os.fsync

    def record(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    return seen


def test_content_appears_complete(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_write(target) as out:
        out.write(b"abc")
        assert not target.exists()  # nothing under the final name while writing
        out.write(b"def")
    assert target.read_bytes() == b"abcdef"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_text_mode(tmp_path):
    target = tmp_path / "out.json"
    with atomic_write(target, "w", encoding="utf-8") as out:
        out.write("{}")
    assert target.read_text() == "{}"


def test_crash_inside_keeps_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_write(target) as out:
            out.write(b"half of the new")
            raise RuntimeError("crash")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_keyboard_interrupt_too(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as out:
            out.write(b"half")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_fsyncs_file_then_folder(tmp_path, fsynced):
    target = tmp_path / "out.bin"
    with atomic_write(target) as out:
        out.write(b"x")
        temp = os.readlink(f"/proc/self/fd/{out.fileno()}")
    assert fsynced == [temp, str(tmp_path)]
    assert Path(temp).parent == tmp_path and Path(temp).name.startswith(".out.bin.")


def test_failed_write_syncs_nothing(tmp_path, fsynced):
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "out.bin"):
            raise RuntimeError
    assert fsynced == []


def test_two_writers_at_once_get_their_own_temporary_files(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_write(target) as first, atomic_write(target) as second:
        names = {os.readlink(f"/proc/self/fd/{f.fileno()}") for f in (first, second)}
        assert len(names) == 2
        first.write(b"first")
        second.write(b"second")
        assert len(os.listdir(tmp_path)) == 2
    assert target.read_bytes() == b"first"  # the outer one closes, so renames, last
    assert os.listdir(tmp_path) == ["out.bin"]


def test_temporary_names_differ():
    names = {atomic_file.temp_sibling("/x/out.bin") for _ in range(100)}
    assert len(names) == 100
    assert all(n.startswith("/x/.out.bin.") and n.endswith(".tmp") for n in names)


def test_mode_follows_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "f") as out:
            out.write(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o640


def test_read_modes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="must start with 'w'"):
        with atomic_write(tmp_path / "f", "rb"):
            pass
    assert os.listdir(tmp_path) == []


def test_publish_a_folder_fsyncs_every_file_and_the_parent(tmp_path, fsynced):
    temp = tmp_path / ".db.tmp"
    (temp / "sub").mkdir(parents=True)
    (temp / "data.mdb").write_bytes(b"d")
    (temp / "sub" / "lock.mdb").write_bytes(b"l")
    publish(temp, tmp_path / "db")
    assert sorted(os.listdir(tmp_path)) == ["db"]
    assert {str(temp / "data.mdb"), str(temp / "sub" / "lock.mdb"), str(temp),
            str(temp / "sub")} <= set(fsynced[:-1])
    assert fsynced[-1] == str(tmp_path)


def test_atomic_path_publishes_on_success_and_removes_on_failure(tmp_path, fsynced):
    target = tmp_path / "t.parquet"
    with atomic_path(target) as temp:
        Path(temp).write_bytes(b"whole")
        assert not target.exists()
    assert target.read_bytes() == b"whole"
    assert fsynced == [temp, str(tmp_path)]
    with pytest.raises(OSError):
        with atomic_path(target) as temp:
            os.mkdir(temp)
            Path(temp, "part").write_bytes(b"half")
            raise OSError("disk full")
    assert target.read_bytes() == b"whole"
    assert os.listdir(tmp_path) == ["t.parquet"]
