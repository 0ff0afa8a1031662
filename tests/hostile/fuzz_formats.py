"""Per-format seeds and readers for format fuzzing, run inside one hostile child per format
(tests/hostile/test_fuzz_formats.py):

    run_format("seqfile", folder, cases=400, seed=1)

writes a small valid file with the format's writer, then for each case writes a mutated copy
(fuzz_mutate.py) to `folder/<format's file name>` and reads it with every reader of that
format. The case index goes to stderr (flushed) before each case, so that a signal names
the case that killed the child and the input is left on disk. A reader may return or raise
one of the taxonomy's errors; anything else is collected and raised at the end as one
FuzzFindings listing each case, its exception and the input's first bytes in hex.
"""

from __future__ import annotations

import gzip
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from fuzz_mutate import Field, jpeg_fields, mutate, png_fields, protobuf_fields

from caffeonspark import hdf5_io, model_io
from caffeonspark.data import datums, idx, seqfile
from caffeonspark.data.image_codec import encode_image
from caffeonspark.errors import ConfigError, FormatError, IoError, ShapeError
from caffeonspark.proto import caffe_pb2

TAXONOMY = (FormatError, IoError, ShapeError, ConfigError)
LENET = Path(__file__).resolve().parents[2] / "examples" / "mnist" / "lenet_train_test.prototxt"
Mutator = Callable[[np.random.Generator, bytes, list[Field]], bytes]


class FuzzFindings(Exception):
    """Cases that ended in an exception outside the taxonomy."""


class Format(NamedTuple):
    filename: str
    seed: Callable[[Path], tuple[bytes, list[Field]]]
    read: Callable[[Path, bytes], None]
    make: Mutator = mutate


def run_format(name: str, folder: str, cases: int, seed: int) -> None:
    fmt, root = FORMATS[name], Path(folder)
    base, fields = fmt.seed(root)
    rng = np.random.default_rng(seed)
    path = root / fmt.filename
    findings = []
    for case in range(cases):
        print(f"{name} case {case}", file=sys.stderr, flush=True)
        data = fmt.make(rng, base, fields)
        path.write_bytes(data)
        try:
            fmt.read(path, data)
        except TAXONOMY:
            pass
        except Exception as err:  # the finding: recorded, the loop goes on
            findings.append(f"{name} case {case}: {type(err).__name__}: {str(err)[:200]} "
                            f"(input {len(data)} bytes: {data[:64].hex()})")
    print(f"{name}: {cases} cases done", file=sys.stderr, flush=True)
    if findings:
        raise FuzzFindings("\n".join(findings))


# Datums: the native batch parser, and the per-record protobuf path it falls back to.


def _raw_seed(root: Path) -> tuple[bytes, list[Field]]:
    pixels = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    data = datums.raw_datum(pixels, 7).SerializeToString()
    return data, protobuf_fields(data)


def _per_record(value: bytes) -> np.ndarray:
    return datums.datum_image(datums.parse_datum(value, "fuzz:key"), "fuzz:key")


def _read_raw(path: Path, value: bytes) -> None:
    good = _raw_seed(path.parent)[0]
    datums.raw_datum_batch([good, value])
    fast = datums.raw_datum_batch([value])
    slow = _per_record(value)
    if fast is not None and not np.array_equal(fast[0][0], slow):
        raise AssertionError("the native parser read other pixels than protobuf")


def _image_seed(ext: str, finder: Callable[[bytes], list[Field]]) -> Callable[
        [Path], tuple[bytes, list[Field]]]:
    def seed(root: Path) -> tuple[bytes, list[Field]]:
        rng = np.random.default_rng(0)
        data = encode_image(rng.integers(0, 256, (3, 8, 10), dtype=np.uint8), ext)
        return data, finder(data)

    return seed


def _read_encoded(path: Path, image: bytes) -> None:
    value = datums.encoded_datum(image, 3).SerializeToString()
    fast = datums.encoded_datum_batch([value])
    slow = _per_record(value)
    if fast is not None and not np.array_equal(fast[0][0], slow):
        raise AssertionError("the batch decoder read other pixels than the per-record one")


# SequenceFile: the header's class names and metadata, record and key lengths, sync markers.


def _seq_seed(root: Path) -> tuple[bytes, list[Field]]:
    path = root / "seed.seq"
    with seqfile.SequenceFileWriter(path, {"origin": "fuzz"}, sync=bytes(range(16))) as out:
        for i in range(20):
            out.append(f"key{i:02d}", bytes([i]) * 250)  # 5 kB: two sync markers
    data = path.read_bytes()
    with seqfile.SequenceFileReader(path) as reader:
        pos = reader.header_end
        fields = [Field(4, 1, "big"), Field(pos - 20, 4, "big")]  # a class name, meta count
    while pos + 8 <= len(data):
        if data[pos : pos + 4] == b"\xff\xff\xff\xff":
            fields.append(Field(pos, 4, "big"))
            pos += 20
        length, key = (int.from_bytes(data[p : p + 4], "big") for p in (pos, pos + 4))
        fields += [Field(pos, 4, "big"), Field(pos + 4, 4, "big"), Field(pos + 8 + key, 4, "big")]
        pos += 8 + length
    return data, fields


def _read_seq(path: Path, data: bytes) -> None:
    with seqfile.SequenceFileReader(path) as reader:
        for _ in reader.records():
            pass
        for _ in reader.records(len(data) // 2, values=False):
            pass


# IDX, plain and gzip'd (mutated before or after compression).


def _idx_seed(root: Path) -> tuple[bytes, list[Field]]:
    data = idx.idx_bytes(np.arange(60, dtype=np.int16).reshape(3, 4, 5))
    fields = [Field(2, 1, "big"), Field(3, 1, "big")]
    return data, fields + [Field(4 + 4 * i, 4, "big") for i in range(3)]


def _idx_gz_make(rng: np.random.Generator, plain: bytes, fields: list[Field]) -> bytes:
    if rng.random() < 0.5:
        return gzip.compress(mutate(rng, plain, fields), mtime=0)
    return mutate(rng, gzip.compress(plain, mtime=0), [])


def _read_idx(path: Path, data: bytes) -> None:
    idx.read_idx(path)
    idx.read_idx_bytes(data)


# HDF5 snapshots: fields of the version-0 superblock (base, free-space, EOF, driver
# addresses, the root group's object header address) besides random aligned offsets.

_SUPERBLOCK = [Field(offset, 8, "little") for offset in (24, 32, 40, 48, 64, 72)]
_SHAPES = {"conv": [(2, 1, 3, 3), (2,)], "ip": [(4, 8), (4,)]}


def _blobs(shapes: list[tuple[int, ...]]) -> list[caffe_pb2.BlobProto]:
    return [model_io.array_to_blob(np.full(s, 0.5, np.float32)) for s in shapes]


def _net() -> caffe_pb2.NetParameter:
    net = caffe_pb2.NetParameter(name="fuzz")
    for name, shapes in _SHAPES.items():
        net.layer.add(name=name, type="InnerProduct").blobs.extend(_blobs(shapes))
    return net


def _state() -> caffe_pb2.SolverState:
    state = caffe_pb2.SolverState(iter=10, learned_net="fuzz_iter_10.caffemodel.h5",
                                  current_step=1)
    state.history.extend(_blobs(_SHAPES["conv"] + _SHAPES["ip"]))
    return state


def _model_h5_seed(root: Path) -> tuple[bytes, list[Field]]:
    hdf5_io.write_caffemodel_h5(root / "seed.caffemodel.h5", _net())
    return (root / "seed.caffemodel.h5").read_bytes(), _SUPERBLOCK


def _state_h5_seed(root: Path) -> tuple[bytes, list[Field]]:
    hdf5_io.write_solverstate_h5(root / "seed.solverstate.h5", _state())
    return (root / "seed.solverstate.h5").read_bytes(), _SUPERBLOCK


def _read_model_h5(path: Path, data: bytes) -> None:
    hdf5_io.read_caffemodel_h5(path)
    hdf5_io.read_caffemodel_h5(path, _SHAPES)


def _read_state_h5(path: Path, data: bytes) -> None:
    hdf5_io.read_solverstate_h5(path)
    hdf5_io.read_solverstate_h5(path, [18, 2, 32, 4])


# Binary protobuf files and prototxt text.


def _proto_seed(message: Callable[[], object]) -> Callable[[Path], tuple[bytes, list[Field]]]:
    def seed(root: Path) -> tuple[bytes, list[Field]]:
        data = message().SerializeToString()  # type: ignore[attr-defined]
        return data, protobuf_fields(data)

    return seed


def _mean_blob() -> caffe_pb2.BlobProto:
    blob = model_io.array_to_blob(np.full((3, 4, 5), 0.25, np.float32))
    blob.ClearField("shape")
    blob.num, blob.channels, blob.height, blob.width = 1, 3, 4, 5  # as compute_image_mean
    return blob


def _text_seed(root: Path) -> tuple[bytes, list[Field]]:
    return LENET.read_bytes(), []


def _text_make(rng: np.random.Generator, text: bytes, fields: list[Field]) -> bytes:
    """Half the cases write an interesting integer over one of the text's numbers."""
    numbers = list(re.finditer(rb"-?\d+(\.\d+)?", text))
    if rng.random() < 0.5 and numbers:
        hit = numbers[int(rng.integers(0, len(numbers)))]
        value = [0, -1, 2**31 - 1, 2**31, 2**32 - 1, 2**63, -(2**63), 10**30][
            int(rng.integers(0, 8))]
        return text[: hit.start()] + str(value).encode() + text[hit.end() :]
    return mutate(rng, text, fields)


def _reader(read: Callable[[Path], object]) -> Callable[[Path, bytes], None]:
    def run(path: Path, data: bytes) -> None:
        read(path)

    return run


FORMATS: dict[str, Format] = {
    "datum_raw": Format("datum.bin", _raw_seed, _read_raw),
    "datum_png": Format("image.png", _image_seed(".png", png_fields), _read_encoded),
    "datum_jpeg": Format("image.jpg", _image_seed(".jpg", jpeg_fields), _read_encoded),
    "seqfile": Format("part-00000", _seq_seed, _read_seq),
    "idx": Format("train-images-idx3-ubyte", _idx_seed, _read_idx),
    "idx_gz": Format("train-images-idx3-ubyte.gz", _idx_seed, _read_idx, _idx_gz_make),
    "caffemodel_h5": Format("fuzz.caffemodel.h5", _model_h5_seed, _read_model_h5),
    "solverstate_h5": Format("fuzz.solverstate.h5", _state_h5_seed, _read_state_h5),
    "caffemodel": Format("fuzz.caffemodel", _proto_seed(_net), _reader(model_io.read_caffemodel)),
    "solverstate": Format("fuzz.solverstate", _proto_seed(_state),
                          _reader(model_io.read_solverstate)),
    "binaryproto": Format("mean.binaryproto", _proto_seed(_mean_blob),
                          _reader(model_io.read_binaryproto)),
    "prototxt": Format("lenet.prototxt", _text_seed, _reader(model_io.read_net_prototxt),
                       _text_make),
}
