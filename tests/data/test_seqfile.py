"""Hadoop SequenceFile writer/reader (python/caffeonspark/data/seqfile.py): vint encoding,
the header bytes, sync markers every SYNC_INTERVAL bytes, byte-range splits that together
read every record exactly once (n = 1, 2, 3, 7 and odd boundaries), corrupt files, and
writes that publish a file only whole."""

from __future__ import annotations

import struct

import pytest

from caffeonspark import errors
from caffeonspark.data.seqfile import (
    SYNC_INTERVAL,
    SequenceFileReader,
    SequenceFileWriter,
    read_vint,
    write_vint,
)

SYNC = bytes(range(16))


@pytest.mark.parametrize(
    "value, encoded",
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (-112, b"\x90"),
        (128, b"\x8f\x80"),
        (-113, b"\x87\x70"),
        (300, b"\x8e\x01\x2c"),
        (-1000, b"\x86\x03\xe7"),
        (2**31 - 1, b"\x8c\x7f\xff\xff\xff"),
    ],
)
def test_vints_follow_hadoop(value, encoded):
    assert write_vint(value) == encoded
    assert read_vint(encoded, 0) == (value, len(encoded))


def records(n: int, seed: int = 0) -> list[tuple[bytes, bytes]]:
    return [(f"key-{i:05d}".encode(), bytes([i % 251]) * (i * 37 % 300)) for i in range(n)]


def write(path, items, metadata=None):
    with SequenceFileWriter(path, metadata=metadata, sync=SYNC) as writer:
        for key, value in items:
            writer.append(key, value)
    return path


def test_header_and_record_layout(tmp_path):
    path = write(tmp_path / "f.seq", [(b"k", b"vv")], metadata={"a": "b"})
    data = path.read_bytes()
    text, blob = b"org.apache.hadoop.io.Text", b"org.apache.hadoop.io.BytesWritable"
    header = (
        b"SEQ\x06"
        + bytes([len(text)])
        + text
        + bytes([len(blob)])
        + blob
        + b"\x00\x00"
        + struct.pack(">i", 1)
        + b"\x01a\x01b"
        + SYNC
    )
    assert data.startswith(header)
    # record length 2 (Text "k") + 6 (BytesWritable of 2), key length 2, key, value
    assert data[len(header) :] == struct.pack(">ii", 8, 2) + b"\x01k" + struct.pack(">i", 2) + b"vv"
    reader = SequenceFileReader(path)
    assert reader.metadata == {"a": "b"} and reader.sync == SYNC
    assert [(r.key, r.value) for r in reader] == [(b"k", b"vv")]
    reader.close()


def test_sync_markers_are_written_and_skipped(tmp_path):
    items = records(400)
    path = write(tmp_path / "f.seq", items)
    data = path.read_bytes()
    escapes = [i for i in range(len(data)) if data.startswith(b"\xff\xff\xff\xff" + SYNC, i)]
    assert len(escapes) >= len(data) // (SYNC_INTERVAL + 400) and len(escapes) > 10
    assert all(b - a >= SYNC_INTERVAL for a, b in zip(escapes, escapes[1:], strict=False))
    with SequenceFileReader(path) as reader:
        assert [(r.key, r.value) for r in reader] == items


@pytest.mark.parametrize("n", [1, 2, 3, 7, 50])
def test_splits_see_every_record_exactly_once(tmp_path, n):
    items = records(500)
    path = write(tmp_path / "f.seq", items)
    size = path.stat().st_size
    seen = []
    with SequenceFileReader(path) as reader:
        for i in range(n):
            seen += [r.key for r in reader.records(i * size // n, (i + 1) * size // n)]
    assert sorted(seen) == [k for k, _ in items]


def test_empty_file_of_records_and_empty_split(tmp_path):
    path = write(tmp_path / "empty.seq", [])
    with SequenceFileReader(path) as reader:
        assert list(reader) == [] and list(reader.records(5, 5)) == []


def test_corrupt_files_raise_format_errors(tmp_path):
    path = write(tmp_path / "f.seq", records(200))
    data = path.read_bytes()
    (tmp_path / "trunc.seq").write_bytes(data[: len(data) - 7])
    with pytest.raises(errors.FormatError, match=r"trunc.seq.*(corrupt|truncated) record at byte"):
        list(SequenceFileReader(tmp_path / "trunc.seq"))
    first_sync = data.index(b"\xff\xff\xff\xff" + SYNC, 100)
    broken = bytearray(data)
    broken[first_sync + 6] ^= 0xFF
    (tmp_path / "sync.seq").write_bytes(bytes(broken))
    with pytest.raises(errors.FormatError, match=f"broken sync marker at byte {first_sync}"):
        list(SequenceFileReader(tmp_path / "sync.seq"))
    (tmp_path / "v5.seq").write_bytes(b"SEQ\x05" + data[4:])
    with pytest.raises(errors.FormatError, match="version 5"):
        SequenceFileReader(tmp_path / "v5.seq")
    (tmp_path / "not.seq").write_bytes(b"PAR1....")
    with pytest.raises(errors.FormatError, match="not a SequenceFile"):
        SequenceFileReader(tmp_path / "not.seq")
    header_end = SequenceFileReader(path).header_end
    compressed = bytearray(data)
    compressed[header_end - 16 - 4 - 2] = 1
    (tmp_path / "gz.seq").write_bytes(bytes(compressed))
    with pytest.raises(errors.FormatError, match="compressed"):
        SequenceFileReader(tmp_path / "gz.seq")
    with pytest.raises(errors.IoError, match="cannot open SequenceFile"):
        SequenceFileReader(tmp_path / "nope.seq")


def _records_then_crash(n: int):
    yield from records(n)
    raise RuntimeError("source died")


def test_interrupted_write_leaves_no_file(tmp_path):
    path = tmp_path / "f.seq"
    with pytest.raises(RuntimeError, match="source died"):
        write(path, _records_then_crash(300))  # past a sync marker: bytes were written
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_keeps_the_old_file(tmp_path):
    path = write(tmp_path / "f.seq", records(3))
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="source died"):
        write(path, _records_then_crash(300))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["f.seq"]


def test_nothing_under_the_name_until_close(tmp_path):
    path = tmp_path / "f.seq"
    writer = SequenceFileWriter(path)
    writer.append(b"k", b"v")
    assert not path.exists()
    writer.close()
    writer.close()  # once
    with SequenceFileReader(path) as reader:
        assert [(r.key, r.value) for r in reader] == [(b"k", b"v")]


def test_abort_discards(tmp_path):
    writer = SequenceFileWriter(tmp_path / "f.seq")
    writer.append(b"k", b"v")
    writer.abort()
    writer.close()
    assert list(tmp_path.iterdir()) == []
