"""Inputs that format fuzzing (test_fuzz_formats.py) found, kept as fixed cases: each was
a crash-free but untyped failure (zlib.error, h5py's KeyError / RuntimeError) or a huge
allocation, and is now a FormatError naming the file."""

from __future__ import annotations

import pytest

from caffeonspark.data import idx
from caffeonspark.errors import FormatError

# A gzip'd IDX file whose deflate stream has one corrupt byte (idx_gz case 56, seed 1).
CORRUPT_DEFLATE = bytes.fromhex(
    "1f8b080000000000020315c7450e020100c0c0011677777777ffffbf580e97b46463f80b42f1504434fc20"
    "ec84a494b48cac9cbc82a292b28aaa9aba86a696b68eae9ebe81a191b189a999b985a595b58dad9dbd83a3"
    "93b38bab9bbb87a797b78fef0f05835d9588000000"
)


def test_corrupt_deflate_in_a_gzipd_idx_file_is_a_format_error(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(CORRUPT_DEFLATE)
    with pytest.raises(FormatError, match=r"train-labels-idx1-ubyte.gz: corrupt gzip'd IDX"):
        idx.read_idx(path)
    with pytest.raises(FormatError, match=r"corrupt gzip'd IDX data"):
        idx.read_idx_bytes(CORRUPT_DEFLATE)
