"""Inputs that format fuzzing (test_fuzz_formats.py) found, kept as fixed cases: each was
a crash-free but untyped failure (zlib.error, h5py's KeyError / RuntimeError) or a huge
allocation, and is now a FormatError naming the file."""

from __future__ import annotations

import numpy as np
import pytest

from caffeonspark import hdf5_io, model_io
from caffeonspark.data import idx
from caffeonspark.data.datums import datum_image, encoded_datum, encoded_datum_batch, parse_datum
from caffeonspark.data.image_codec import encode_image
from caffeonspark.errors import FormatError
from caffeonspark.proto import caffe_pb2

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


def _h5_files(tmp_path):
    blob = model_io.array_to_blob(np.ones((2, 3), np.float32))
    net = caffe_pb2.NetParameter(name="tiny")
    net.layer.add(name="ip", type="InnerProduct").blobs.append(blob)
    model = tmp_path / "tiny.caffemodel.h5"
    hdf5_io.write_caffemodel_h5(model, net)
    state = tmp_path / "tiny.solverstate.h5"
    hdf5_io.write_solverstate_h5(state, caffe_pb2.SolverState(iter=1, history=[blob]))
    return [(model, hdf5_io.read_caffemodel_h5), (state, hdf5_io.read_solverstate_h5)]


@pytest.mark.parametrize("signature", [b"TREE", b"HEAP", b"SNOD"])
def test_hdf5_with_a_damaged_b_tree_heap_or_symbol_table_is_a_format_error(tmp_path, signature):
    """h5py raised RuntimeError (and KeyError for a damaged object header) on these."""
    for path, read in _h5_files(tmp_path):
        good = path.read_bytes()
        at = good.find(signature)
        while at >= 0:  # each B-tree, heap or symbol table node of the file in turn
            path.write_bytes(good[:at] + b"XXXX" + good[at + 4 :])
            with pytest.raises(FormatError, match=rf"{path.name}: .*signature"):
                read(path)
            at = good.find(signature, at + 1)


def _png_with_idat_length(length: int) -> bytes:
    png = encode_image(np.zeros((3, 8, 10), np.uint8), ".png")
    at = png.index(b"IDAT") - 4
    return png[:at] + length.to_bytes(4, "big") + png[at + 4 :]


def test_a_png_chunk_longer_than_the_image_is_refused_before_opencv_allocates_it():
    """OpenCV allocated the declared IDAT length: 4 GiB and seconds for a 300-byte record."""
    value = encoded_datum(_png_with_idat_length(2**32 - 1), 1).SerializeToString()
    with pytest.raises(FormatError, match=r"db:key: .*PNG chunk at byte \d+ declares 4294967295"):
        datum_image(parse_datum(value, "db:key"), "db:key")
    assert encoded_datum_batch([value]) is None


def test_bytes_after_a_pngs_iend_are_left_alone():
    png = encode_image(np.full((3, 8, 10), 9, np.uint8), ".png") + b"\xff" * 12
    image = datum_image(parse_datum(encoded_datum(png, 1).SerializeToString()))
    assert image.shape == (3, 8, 10) and (image == 9).all()
