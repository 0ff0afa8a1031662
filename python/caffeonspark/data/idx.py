"""Read and write IDX files, the format MNIST ships in.

An IDX file is: two zero bytes, a type code byte, a byte giving the number of dimensions,
then one big-endian uint32 per dimension, then the data in row-major (C) order, big-endian.
MNIST uses type 0x08 (unsigned byte): images are 3-D (count, rows, cols), labels 1-D.
Files compressed with gzip (as MNIST is distributed) are read transparently; writing
produces the plain file, or a gzip'd one when the name ends in ``.gz``.

Tests: tests/data/test_idx.py, tests/hostile/test_data_files.py.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from caffeonspark.atomic_file import atomic_write
from caffeonspark.errors import FormatError, IoError

__all__ = [
    "IDX_DTYPES",
    "read_idx",
    "read_idx_bytes",
    "read_idx_header",
    "write_idx",
    "idx_bytes",
    "find_idx_file",
]

# Type code -> big-endian NumPy dtype, as the IDX format defines them.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 24


def _code_for(dtype: np.dtype) -> int:
    for code, idx_dtype in IDX_DTYPES.items():
        if idx_dtype.kind == dtype.kind and idx_dtype.itemsize == dtype.itemsize:
            return code
    raise FormatError(f"IDX cannot store dtype {dtype}; allowed: u1, i1, i2, i4, f4, f8")


def _open_maybe_gzip(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for reading, unwrapping gzip if the file starts with its magic."""
    try:
        raw = open(path, "rb")  # returned to the caller, who closes it
    except OSError as exc:
        raise IoError(f"cannot open IDX file {os.fspath(path)!r}: {exc}") from exc
    head = raw.read(2)
    raw.seek(0)
    if head == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def _parse_header(stream: BinaryIO, name: str) -> tuple[np.dtype, tuple[int, ...]]:
    magic = stream.read(4)
    if len(magic) != 4:
        raise FormatError(f"{name}: truncated IDX header ({len(magic)} bytes)")
    if magic[0] != 0 or magic[1] != 0:
        raise FormatError(f"{name}: not an IDX file (magic {magic.hex()})")
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        raise FormatError(f"{name}: unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise FormatError(f"{name}: IDX file with zero dimensions")
    dims_raw = stream.read(4 * ndim)
    if len(dims_raw) != 4 * ndim:
        raise FormatError(f"{name}: truncated IDX dimensions")
    dims = struct.unpack(f">{ndim}I", dims_raw)
    return IDX_DTYPES[code], tuple(int(d) for d in dims)


def read_idx_header(path: str | os.PathLike[str]) -> tuple[np.dtype, tuple[int, ...]]:
    """Return (big-endian dtype, shape) of an IDX file without reading its data."""
    with _open_maybe_gzip(path) as stream:
        return _parse_header(stream, os.fspath(path))


def _read_stream(stream: BinaryIO, name: str, size: int | None) -> np.ndarray:
    """The array of an IDX stream; `size` is the stream's total length when known (a plain
    file, bytes), so that declared dimensions are checked before anything is allocated."""
    dtype, shape = _parse_header(stream, name)
    count = math.prod(shape)  # Python ints: 255 dimensions of 2^32 do not overflow
    want = count * dtype.itemsize
    if size is not None and 4 + 4 * len(shape) + want > size:
        raise FormatError(
            f"{name}: IDX data truncated: the header declares shape {shape} ({want} bytes "
            f"of data) but the file holds {size} bytes"
        )
    payload = _read_at_most(stream, want)
    if len(payload) != want:
        raise FormatError(f"{name}: IDX data truncated: {len(payload)} of {want} bytes")
    if stream.read(1):
        raise FormatError(f"{name}: trailing bytes after IDX data of shape {shape}")
    arr = np.frombuffer(payload, dtype=dtype, count=count).reshape(shape)
    # Native byte order, writable copy.
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _read_at_most(stream: BinaryIO, want: int) -> bytes:
    """Up to `want` bytes, read in chunks: memory grows with what the stream really holds
    (a gzip'd file's size is only known once it is decompressed)."""
    parts, have = [], 0
    while have < want:
        part = stream.read(min(want - have, _CHUNK))
        if not part:
            break
        parts.append(part)
        have += len(part)
    return b"".join(parts)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (plain or gzip'd) into a native-endian NumPy array."""
    with _open_maybe_gzip(path) as stream:
        size = None if isinstance(stream, gzip.GzipFile) else os.fstat(stream.fileno()).st_size
        try:
            return _read_stream(stream, os.fspath(path), size)
        except (OSError, EOFError, zlib.error) as err:  # gzip's errors on corrupt streams
            raise FormatError(f"{os.fspath(path)}: corrupt gzip'd IDX file ({err})") from None


def read_idx_bytes(data: bytes) -> np.ndarray:
    """Decode IDX content held in memory (plain or gzip'd)."""
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise FormatError(f"<bytes>: corrupt gzip'd IDX data ({err})") from None
    return _read_stream(io.BytesIO(data), "<bytes>", len(data))


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as IDX bytes; its dtype picks the type code (uint8 -> 0x08)."""
    arr = np.asarray(array)
    if arr.ndim == 0 or arr.ndim > 255:
        raise FormatError(f"IDX needs 1 to 255 dimensions, got {arr.ndim}")
    code = _code_for(arr.dtype)
    if any(d >= 2**32 for d in arr.shape):
        raise FormatError(f"IDX dimension too large: {arr.shape}")
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    body = np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()
    return header + body


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file; gzip'd when ``path`` ends in ``.gz``. The file appears
    under ``path`` only once complete (atomic_file.py)."""
    data = idx_bytes(array)
    name = os.fspath(path)
    try:
        with atomic_write(name) as out:
            if name.endswith(".gz"):
                # mtime=0 keeps the output byte-for-byte deterministic; the header names the
                # final file, not the temporary one.
                with gzip.GzipFile(filename=name, fileobj=out, mode="wb", mtime=0) as gz:
                    gz.write(data)
            else:
                out.write(data)
    except OSError as exc:
        raise IoError(f"cannot write IDX file {os.fspath(path)!r}: {exc}") from exc


def find_idx_file(directory: str | os.PathLike[str], name: str) -> Path | None:
    """Find MNIST file ``name`` (e.g. ``train-images-idx3-ubyte``) in ``directory``.

    Accepts the spellings MNIST copies come in: ``name``, ``name.gz`` and the variant with
    a dot before ``idx`` (``train-images.idx3-ubyte``), each optionally gzip'd.
    """
    base = Path(directory)
    dotted = name.replace("-idx", ".idx")
    for candidate in (name, name + ".gz", dotted, dotted + ".gz"):
        path = base / candidate
        if path.is_file():
            return path
    return None
