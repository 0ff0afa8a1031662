"""Hadoop SequenceFiles (version 6, uncompressed) with Text keys and BytesWritable values,
written and read without Hadoop, by the published format:

    header  "SEQ", version byte 6, key class name, value class name (each a Hadoop string:
            vint length + UTF-8), compressed flag byte (0), block-compressed flag byte (0),
            metadata (big-endian int32 count, then count (Text, Text) pairs), 16-byte sync
    record  int32 record length (serialized key + value bytes), int32 key length, key, value
    sync    int32 -1 then the 16 sync bytes, written before a record whenever at least
            SYNC_INTERVAL (2000) bytes were written since the last one

A Text key is vint(length) + UTF-8 bytes; a BytesWritable value is int32(length) + bytes.
All integers are big-endian; vints are Hadoop's WritableUtils zero-compressed encoding.

Splits: `SequenceFileReader.records(start, end)` reads the records of the byte range
[start, end) the way Hadoop's record reader does: from the first sync marker at or after
`start` (from the header when start is within it), stopping at the first record that starts
at or past `end` right after a sync marker. Byte ranges that tile a file therefore see every
record exactly once; this is how SequenceFile sources read partition i of n.
Compressed files, other key/value classes and other versions raise FormatError naming the
file; so do truncated records and broken sync markers (with the byte offset).
The writer publishes a file only once it is complete (atomic_file.py).

Tests: tests/data/test_seqfile.py, tests/hostile/test_data_files.py.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator, Mapping
from typing import IO, NamedTuple

from caffeonspark.atomic_file import atomic_write
from caffeonspark.data.file_bytes import FileBytes
from caffeonspark.errors import FormatError, IoError

__all__ = [
    "TEXT_CLASS",
    "BYTES_CLASS",
    "SYNC_INTERVAL",
    "write_vint",
    "read_vint",
    "SequenceFileWriter",
    "SequenceFileReader",
    "SeqRecord",
]

TEXT_CLASS = "org.apache.hadoop.io.Text"
BYTES_CLASS = "org.apache.hadoop.io.BytesWritable"
VERSION = 6
SYNC_SIZE = 16
SYNC_ESCAPE = -1
SYNC_INTERVAL = 100 * (4 + SYNC_SIZE)
_INT = struct.Struct(">i")


def write_vint(value: int) -> bytes:
    """Hadoop's WritableUtils.writeVLong encoding."""
    if -112 <= value <= 127:
        return struct.pack(">b", value)
    marker = -112
    if value < 0:
        value = ~value
        marker = -120
    size = (value.bit_length() + 7) // 8
    return struct.pack(">b", marker - size) + value.to_bytes(size, "big")


def read_vint(buf: bytes | FileBytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the vint at `pos`."""
    first = struct.unpack(">b", buf[pos : pos + 1])[0]
    if first >= -112:
        return first, pos + 1
    negative = first < -120
    size = -(first + 120) if negative else -(first + 112)
    if pos + 1 + size > len(buf):
        raise EOFError("vint runs past the end")
    value = int.from_bytes(buf[pos + 1 : pos + 1 + size], "big")
    return (~value if negative else value), pos + 1 + size


def _hadoop_string(text: str) -> bytes:
    data = text.encode("utf-8")
    return write_vint(len(data)) + data


class SequenceFileWriter:
    """Appends (Text key, BytesWritable value) records to a new SequenceFile, written under
    a temporary name and published at `path` by close() (or a `with` block that ends
    normally); a `with` block left by an exception, or abort(), leaves nothing there."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        metadata: Mapping[str, str] | None = None,
        sync: bytes | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.sync = sync if sync is not None else os.urandom(SYNC_SIZE)
        if len(self.sync) != SYNC_SIZE:
            raise ValueError(f"sync must be {SYNC_SIZE} bytes")
        self._publish = contextlib.ExitStack()  # close() publishes, abort() discards
        try:
            self._out: IO[bytes] = self._publish.enter_context(atomic_write(self.path))
        except OSError as err:
            raise IoError(f"cannot create SequenceFile '{self.path}': {err}") from err
        try:
            self._write_header(metadata)
        except BaseException as err:
            self._discard(err)
            raise
        self.count = 0

    def _write_header(self, metadata: Mapping[str, str] | None) -> None:
        header = bytearray(b"SEQ" + bytes([VERSION]))
        header += _hadoop_string(TEXT_CLASS) + _hadoop_string(BYTES_CLASS)
        header += b"\x00\x00"  # not compressed, not block-compressed
        meta = dict(metadata or {})
        header += _INT.pack(len(meta))
        for key, value in meta.items():
            header += _hadoop_string(key) + _hadoop_string(value)
        header += self.sync
        self._out.write(header)
        self._pos = len(header)
        self._last_sync = self._pos

    def append(self, key: bytes | str, value: bytes) -> None:
        if isinstance(key, str):
            key = key.encode("utf-8")
        if self._pos >= self._last_sync + SYNC_INTERVAL:
            self._out.write(_INT.pack(SYNC_ESCAPE) + self.sync)
            self._pos += 4 + SYNC_SIZE
            self._last_sync = self._pos
        key_bytes = write_vint(len(key)) + key
        value_bytes = _INT.pack(len(value)) + value
        self._out.write(
            _INT.pack(len(key_bytes) + len(value_bytes)) + _INT.pack(len(key_bytes)) + key_bytes
        )
        self._out.write(value_bytes)
        self._pos += 8 + len(key_bytes) + len(value_bytes)
        self.count += 1

    def close(self) -> None:
        """Publish the file under `path` (once; later calls do nothing)."""
        self._publish.close()

    def abort(self) -> None:
        """Drop what was written: nothing appears under `path` (an older file stays)."""
        self._discard(None)

    def _discard(self, err: BaseException | None) -> None:
        # atomic_write removes its temporary file when an exception comes out of its block
        cause = err if err is not None else _Aborted()
        self._publish.__exit__(type(cause), cause, cause.__traceback__)

    def __enter__(self) -> SequenceFileWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: object
    ) -> None:
        if err is None:
            self.close()
        else:
            self._discard(err)


class _Aborted(Exception):
    """Sent into atomic_write by abort(): a write that ends without publishing."""


class SeqRecord(NamedTuple):
    offset: int  # where the record (or the sync marker just before it) starts
    key: bytes
    value: bytes


class SequenceFileReader:
    """Reads a Text/BytesWritable SequenceFile (with pread, not a memory map: a file
    truncated while it is read is a FormatError, not a SIGBUS)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            self._fd = os.open(self.path, os.O_RDONLY)  # closed by close()
        except OSError as err:
            raise IoError(f"cannot open SequenceFile '{self.path}': {err}") from err
        size = os.fstat(self._fd).st_size
        self._buf = FileBytes(self._fd, size, self.path)
        self.size = size
        self.metadata: dict[str, str] = {}
        try:
            self._parse_header()
        except FormatError:
            self.close()
            raise
        except (struct.error, EOFError, UnicodeDecodeError) as err:
            self.close()
            raise FormatError(f"SequenceFile '{self.path}': truncated header ({err})") from err

    def _string(self, pos: int) -> tuple[str, int]:
        length, pos = read_vint(self._buf, pos)
        if length < 0 or pos + length > self.size:
            raise EOFError("string runs past the end")
        return bytes(self._buf[pos : pos + length]).decode("utf-8"), pos + length

    def _parse_header(self) -> None:
        buf = self._buf
        if bytes(buf[:3]) != b"SEQ":
            raise FormatError(f"'{self.path}' is not a SequenceFile (no SEQ magic)")
        version = buf[3]
        if version != VERSION:
            raise FormatError(
                f"SequenceFile '{self.path}' has version {version}; only version {VERSION} is read"
            )
        self.key_class, pos = self._string(4)
        self.value_class, pos = self._string(pos)
        if (self.key_class, self.value_class) != (TEXT_CLASS, BYTES_CLASS):
            raise FormatError(
                f"SequenceFile '{self.path}' holds {self.key_class} -> {self.value_class}; "
                f"only {TEXT_CLASS} -> {BYTES_CLASS} is read"
            )
        compressed, block = buf[pos], buf[pos + 1]
        if compressed or block:
            raise FormatError(
                f"SequenceFile '{self.path}' is compressed; only uncompressed is read"
            )
        pos += 2
        (count,) = _INT.unpack(buf[pos : pos + 4])
        pos += 4
        for _ in range(count):
            key, pos = self._string(pos)
            value, pos = self._string(pos)
            self.metadata[key] = value
        self.sync = bytes(buf[pos : pos + SYNC_SIZE])
        if len(self.sync) != SYNC_SIZE:
            raise EOFError("no sync bytes")
        self.header_end = pos + SYNC_SIZE

    def _first_sync_at_or_after(self, start: int) -> int:
        """Offset of the first sync escape beginning at or after `start` (size if none)."""
        found = self._buf.find(self.sync, start + 4)
        return self.size if found < 0 else found - 4

    def record_at(self, offset: int) -> SeqRecord:
        """The record starting at `offset` (an offset records() reported)."""
        for record in self.records(offset, offset + 1, _exact=True):
            return record
        raise FormatError(f"SequenceFile '{self.path}': no record at byte {offset}")

    def records(
        self, start: int = 0, end: int | None = None, values: bool = True, _exact: bool = False
    ) -> Iterator[SeqRecord]:
        """The records of the split [start, end) (the whole file by default); with
        values=False the values are left unread (b"": an index of keys and offsets)."""
        end = self.size if end is None else end
        if start >= end:
            return
        buf = self._buf
        if _exact:
            pos = start
        elif start <= self.header_end:
            pos = self.header_end
        else:
            pos = self._first_sync_at_or_after(start)
        while pos < self.size:
            record_start = pos
            sync_seen = False
            try:
                (length,) = _INT.unpack(buf[pos : pos + 4])
                if length == SYNC_ESCAPE:
                    if bytes(buf[pos + 4 : pos + 4 + SYNC_SIZE]) != self.sync:
                        raise FormatError(
                            f"SequenceFile '{self.path}': broken sync marker at byte {pos}"
                        )
                    pos += 4 + SYNC_SIZE
                    sync_seen = True
                    if pos >= self.size:
                        return
                    (length,) = _INT.unpack(buf[pos : pos + 4])
                if record_start >= end and sync_seen and not _exact:
                    return
                (key_length,) = _INT.unpack(buf[pos + 4 : pos + 4 + 4])
            except struct.error as err:
                raise FormatError(
                    f"SequenceFile '{self.path}': truncated record at byte {record_start}"
                ) from err
            body = pos + 8
            if not 0 < key_length <= length or body + length > self.size:
                raise FormatError(
                    f"SequenceFile '{self.path}': corrupt record at byte {record_start} (record "
                    f"length {length}, key length {key_length}, file size {self.size})"
                )
            try:
                text_length, key_start = read_vint(buf, body)
            except (struct.error, EOFError) as err:
                raise FormatError(
                    f"SequenceFile '{self.path}': corrupt key at byte {record_start}"
                ) from err
            value_start = body + key_length
            if key_start + text_length != value_start or length - key_length < 4:
                raise FormatError(
                    f"SequenceFile '{self.path}': record at byte {record_start} is not a Text key "
                    "and a BytesWritable value"
                )
            (value_length,) = _INT.unpack(buf[value_start : value_start + 4])
            if value_length != length - key_length - 4:
                raise FormatError(
                    f"SequenceFile '{self.path}': record at byte {record_start} holds a "
                    f"BytesWritable of {value_length} bytes in {length - key_length - 4}"
                )
            key = bytes(buf[key_start:value_start])
            value = bytes(buf[value_start + 4 : value_start + 4 + value_length]) if values else b""
            yield SeqRecord(record_start, key, value)
            if _exact:
                return
            pos = body + length

    def __iter__(self) -> Iterator[SeqRecord]:
        return self.records()

    def close(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()  # a reader dropped without close() must not keep its descriptor

    def __enter__(self) -> SequenceFileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
