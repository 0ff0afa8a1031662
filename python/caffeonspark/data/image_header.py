"""The width and height an encoded image declares, read from its header without decoding.

OpenCV allocates the declared size before it reads a single pixel (a 74-byte PNG can ask
for 32767 x 32767), and cv2 has no header-only read, so PNG, JPEG, BMP and GIF headers are
parsed here and images declaring more than MAX_IMAGE_PIXELS pixels are refused before
cv2.imdecode sees them. MAX_IMAGE_PIXELS is 2^28 (16384 x 16384, 768 MiB as BGR), overridden
by the CAFFEONSPARK_MAX_IMAGE_PIXELS environment variable read at import. Other formats are
left to OpenCV's own limit (OPENCV_IO_MAX_IMAGE_PIXELS, 2^30 by default). A PNG chunk
declaring more bytes than the image holds is refused too: OpenCV allocates the declared
length (a 316-byte PNG whose IDAT says 2^32 - 1 bytes took 4 GiB and 8 s; found by fuzzing).

Tests: tests/hostile/test_data_files.py.
"""

from __future__ import annotations

import os
import struct

__all__ = ["MAX_IMAGE_PIXELS", "declared_size", "oversize_reason"]

MAX_IMAGE_PIXELS = int(os.environ.get("CAFFEONSPARK_MAX_IMAGE_PIXELS", 1 << 28))

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (0xC4 DHT, 0xC8 JPG, 0xCC DAC are not frames).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD9)}  # TEM, RSTn, SOI: no length field


def declared_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, BMP or GIF header; None for other or broken data."""
    try:
        if data[:8] == _PNG_MAGIC and data[12:16] == b"IHDR":
            return struct.unpack_from(">II", data, 16)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack_from("<HH", data, 6)
        if data[:2] == b"BM":
            return _bmp_size(data)
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _bmp_size(data: bytes | memoryview) -> tuple[int, int]:
    (header,) = struct.unpack_from("<I", data, 14)
    if header == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return struct.unpack_from("<HH", data, 18)
    width, height = struct.unpack_from("<ii", data, 18)
    return abs(width), abs(height)  # a negative height means top-down rows


def _jpeg_size(data: bytes | memoryview) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
        if marker == 0xDA:  # start of scan before any frame header: broken
            return None
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
    return None


def _png_overrun(data: bytes | memoryview) -> str | None:
    """A chunk whose declared length runs past the end of the image, or None."""
    pos = len(_PNG_MAGIC)
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        if pos + 12 + length > len(data):
            return (f"its PNG chunk at byte {pos} declares {length} bytes but the image "
                    f"holds {len(data)}")
        if data[pos + 4 : pos + 8] == b"IEND":
            return None  # bytes after the image are not OpenCV's to read
        pos += 12 + length
    return None


def oversize_reason(data: bytes | memoryview) -> str | None:
    """Why the image must not be decoded (it declares too many pixels, or a PNG chunk
    longer than the image), or None."""
    if data[:8] == _PNG_MAGIC:
        overrun = _png_overrun(data)
        if overrun is not None:
            return overrun
    size = declared_size(data)
    if size is None:
        return None
    width, height = size
    if width * height <= MAX_IMAGE_PIXELS:
        return None
    return (
        f"the image declares {width} x {height} pixels, more than {MAX_IMAGE_PIXELS} "
        "(CAFFEONSPARK_MAX_IMAGE_PIXELS)"
    )
