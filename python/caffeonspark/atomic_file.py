"""Local files that appear whole or not at all, even across a crash or a power cut.

Every writer puts its bytes under a unique temporary name in the target's folder, fsyncs
them, renames the temporary name over the target and fsyncs the folder (the rename itself
lives in the folder's entries). A rename without the first fsync can leave an empty file
under the final name after a power cut; without the second, the old file may come back.

    with atomic_write(path) as out:       # a file object on a temporary sibling
        out.write(data)                   # an exception here: the temporary file goes,
                                          # an existing `path` stays as it was
    with atomic_path(path) as temp:       # a temporary name for writers that produce the
        pyarrow_write(table, temp)        # file (or folder) themselves
    publish(temp, path)                   # fsync a file or folder tree, rename, fsync folder

Tests: tests/test_atomic_file.py, tests/data/test_idx.py, tests/data/test_seqfile.py.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from typing import IO, Any

PathLike = str | os.PathLike[str]

__all__ = ["atomic_write", "atomic_path", "publish", "temp_sibling", "fsync_tree", "remove"]

# Filesystems that cannot fsync a folder say so with these; the data is then as safe as
# that filesystem makes it, which is no reason to fail a write.
_NO_FOLDER_SYNC = (errno.EINVAL, errno.ENOTSUP, errno.EBADF)


def temp_sibling(path: PathLike) -> str:
    """A fresh hidden name beside `path`: `.<name>.<pid>.<random>.tmp` (readers that list
    folders skip hidden names; the pid and random part keep concurrent writers apart)."""
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(directory, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _fsync_fd_of(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as err:
        if not (os.path.isdir(path) and err.errno in _NO_FOLDER_SYNC):
            raise
    finally:
        os.close(fd)


def fsync_tree(path: PathLike) -> None:
    """fsync the file `path`, or every file and folder under the folder `path`."""
    top = os.fspath(path)
    if not os.path.isdir(top):
        _fsync_fd_of(top)
        return
    for folder, _, files in os.walk(top):
        for name in files:
            _fsync_fd_of(os.path.join(folder, name))
        _fsync_fd_of(folder)


def publish(temp: PathLike, final: PathLike) -> None:
    """Make what was written at `temp` (a file, or a folder of files) durable, rename it
    over `final`, and make the rename durable. A folder `final` must not exist (a rename
    never replaces a non-empty folder): move it aside first."""
    fsync_tree(temp)
    os.replace(temp, final)
    _fsync_fd_of(os.path.dirname(os.path.abspath(os.fspath(final))))


def remove(path: PathLike) -> None:
    """Remove a temporary file or folder, quietly: it may never have been created."""
    target = os.fspath(path)
    if os.path.isdir(target) and not os.path.islink(target):
        shutil.rmtree(target, ignore_errors=True)
        return
    with contextlib.suppress(FileNotFoundError):
        os.remove(target)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[str]:
    """A temporary name beside `path` for the body to create a file or folder under; on
    success it is published over `path`, on any exception removed (and `path` untouched)."""
    temp = temp_sibling(path)
    try:
        yield temp
        publish(temp, path)
    except BaseException:
        remove(temp)
        raise


@contextlib.contextmanager
def atomic_write(
    path: PathLike, mode: str = "wb", *, encoding: str | None = None
) -> Iterator[IO[Any]]:
    """A file object open on a new temporary sibling of `path`; on success it is flushed,
    fsynced and renamed over `path`, then the folder is fsynced. On any exception the
    temporary file is removed and an existing `path` is left as it was. The file gets mode
    0o666 less the umask, like a plain open()."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_write writes a new file: mode {mode!r} must start with 'w'")
    temp = temp_sibling(path)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
        _fsync_fd_of(os.path.dirname(os.path.abspath(os.fspath(path))))
    except BaseException:
        remove(temp)
        raise
