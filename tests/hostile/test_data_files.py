"""Hostile data files (tests/hostile/hostile_child.py runs each case in a 4 GiB child): a
SequenceFile truncated while it is read, an IDX header declaring far more than the file
holds, and images whose headers declare more pixels than MAX_IMAGE_PIXELS. Each is a
FormatError naming the file (or the record), never a signal or memory exhaustion."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hostile_child import run_case

from caffeonspark.data.image_header import declared_size
from caffeonspark.data.seqfile import SequenceFileWriter


def test_sequence_file_truncated_while_read_is_a_format_error(tmp_path):
    path = tmp_path / "part-00000"
    with SequenceFileWriter(path) as writer:
        for i in range(200):
            writer.append(f"k{i}", bytes([i % 256]) * 50_000)  # 10 MB: past the read window
    code = f"""
from caffeonspark.data.seqfile import SequenceFileReader
reader = SequenceFileReader({str(path)!r})
records = reader.records()
next(records)
with open({str(path)!r}, 'r+b') as handle:
    handle.truncate(4096)
for record in records:
    pass
"""
    run_case(code).expect_error("FormatError", r"part-00000' was truncated while it was read")


def test_idx_declaring_a_billion_items_in_100_bytes_is_refused(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 10**9, 28, 28)
    path.write_bytes(header + bytes(100 - len(header)))
    code = f"from caffeonspark.data.idx import read_idx\nread_idx({str(path)!r})\n"
    run_case(code).expect_error(
        "FormatError", r"train-images-idx3-ubyte: IDX data truncated: .*holds 100 bytes")


def test_gzip_idx_declaring_a_billion_items_reads_only_what_it_holds(tmp_path):
    import gzip

    path = tmp_path / "labels.gz"
    header = bytes([0, 0, 0x0E, 1]) + struct.pack(">I", 10**9)  # 8 GB of float64 declared
    path.write_bytes(gzip.compress(header + bytes(92)))
    code = f"from caffeonspark.data.idx import read_idx\nread_idx({str(path)!r})\n"
    run_case(code).expect_error("FormatError", r"labels\.gz: IDX data truncated: 92 of")


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _huge_png() -> bytes:
    """66 bytes declaring a 32767 x 32767 RGB image (3.2 GB decoded)."""
    ihdr = struct.pack(">IIBBBBB", 32767, 32767, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\x00")) + _chunk(b"IEND", b""))


def test_the_hostile_png_is_tiny_and_declares_32767_squared():
    data = _huge_png()
    assert len(data) < 100
    assert declared_size(data) == (32767, 32767)


def test_png_declaring_32767_squared_pixels_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(_huge_png())
    code = f"""
from pathlib import Path
from caffeonspark.data.image_codec import decode_image
decode_image(Path({str(path)!r}).read_bytes(), "color", where="{path.name}: ")
"""
    run_case(code).expect_error(
        "FormatError", r"huge\.png: cannot decode the encoded image: the image declares "
        r"32767 x 32767 pixels, more than 268435456")


def test_the_pixel_cap_is_overridable(tmp_path):
    image = np.zeros((20, 30, 3), np.uint8)
    path = tmp_path / "small.jpg"
    path.write_bytes(cv2.imencode(".jpg", image)[1].tobytes())
    code = f"""
from pathlib import Path
from caffeonspark.data.image_codec import decode_image
decode_image(Path({str(path)!r}).read_bytes(), where="small.jpg: ")
"""
    run_case(code, env={"CAFFEONSPARK_MAX_IMAGE_PIXELS": "599"}).expect_error(
        "FormatError", r"small\.jpg: .*declares 30 x 20 pixels, more than 599")
    outcome = run_case(code, env={"CAFFEONSPARK_MAX_IMAGE_PIXELS": "600"})
    outcome.expect_no_signal()
    assert outcome.error is None, outcome.message


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp"])
def test_declared_size_matches_what_opencv_decodes(ext):
    image = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    data = cv2.imencode(ext, image)[1].tobytes()
    assert declared_size(data) == (53, 37)
    assert declared_size(data[:10]) is None  # a truncated header is OpenCV's to reject


def test_bmp_and_gif_headers():
    bmp = b"BM" + bytes(12) + struct.pack("<Iii", 40, 70000, -70000)
    assert declared_size(bmp) == (70000, 70000)
    assert declared_size(b"GIF89a" + struct.pack("<HH", 65535, 65535)) == (65535, 65535)


def test_a_huge_image_inside_a_datum_batch_falls_back_to_the_named_error(tmp_path):
    """encoded_datum_batch's fast path gives up on the image (None) instead of decoding it."""
    code = """
import struct, zlib
from caffeonspark.data.image_codec import decode_hwc
import numpy as np
def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
png = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 32767, 32767, 8, 2, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(b"\\x00")) + chunk(b"IEND", b""))
assert decode_hwc(np.frombuffer(png, np.uint8), "color") is None
"""
    outcome = run_case(code)
    outcome.expect_no_signal()
    assert outcome.error is None, outcome.message


def test_sequence_file_fixture_is_readable_before_truncation(tmp_path):
    """The truncation case above is not a broken writer: the same file reads whole."""
    from caffeonspark.data.seqfile import SequenceFileReader

    path = tmp_path / "whole"
    with SequenceFileWriter(path) as writer:
        for i in range(200):
            writer.append(f"k{i}", bytes([i % 256]) * 50_000)
    with SequenceFileReader(path) as reader:
        assert sum(1 for _ in reader) == 200
    assert Path(path).stat().st_size > 10_000_000
