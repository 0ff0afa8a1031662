"""Random access to a file's bytes with os.pread, for readers of untrusted files.

A memory map of a file that another process truncates kills the reader with SIGBUS when it
touches a page past the new end; pread returns fewer bytes instead, which FileBytes turns
into a FormatError naming the file. Reads go through a window (WINDOW bytes) so that the
many small reads of a record parser cost few system calls.

Tests: tests/hostile/test_data_files.py, tests/data/test_seqfile.py.
"""

from __future__ import annotations

import os

from caffeonspark.errors import FormatError

WINDOW = 1 << 20


class FileBytes:
    """The first `size` bytes of an open file descriptor, sliced like bytes (not owned: the
    caller closes the descriptor)."""

    def __init__(self, fd: int, size: int, name: str) -> None:
        self._fd, self._size, self._name = fd, size, name
        # One attribute, replaced whole: readers in several threads (a DecodePool) never
        # see one window's start with another window's bytes.
        self._window: tuple[int, bytes] = (0, b"")

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: int | slice) -> int | bytes:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._size)
            if step != 1:
                raise ValueError("FileBytes slices have step 1")
            return self.read(start, stop)
        if not 0 <= index < self._size:
            raise EOFError(f"byte {index} is past the end ({self._size} bytes)")
        return self.read(index, index + 1)[0]

    def read(self, start: int, stop: int) -> bytes:
        """Bytes [start, stop) clamped to the size at open; FormatError when the file holds
        fewer now (it was truncated while being read)."""
        stop = min(stop, self._size)
        if stop <= start:
            return b""
        first, data = self._window
        if first <= start and stop <= first + len(data):
            return data[start - first : stop - first]
        want = stop - start
        if want < WINDOW:
            data = self._pread(start, min(WINDOW, self._size - start))
            self._window = (start, data)
            return data[:want]
        return self._pread(start, want)

    def find(self, sub: bytes, start: int) -> int:
        """Offset of the first `sub` at or after `start`, -1 if none."""
        pos = max(start, 0)
        while pos < self._size:
            chunk = self.read(pos, pos + WINDOW + len(sub) - 1)
            found = chunk.find(sub)
            if found >= 0:
                return pos + found
            pos += WINDOW
        return -1

    def _pread(self, start: int, count: int) -> bytes:
        parts, done = [], 0
        while done < count:
            part = os.pread(self._fd, count - done, start + done)
            if not part:
                raise FormatError(
                    f"'{self._name}' was truncated while it was read: byte {start + done} of "
                    f"the {self._size} it had when opened is gone"
                )
            parts.append(part)
            done += len(part)
        return b"".join(parts)
