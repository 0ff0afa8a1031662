"""Reading and writing Caffe's files: net and solver prototxts, .caffemodel weights,
.solverstate snapshots and .binaryproto arrays (docs/CAFFE.md §4.5, §5, §8).

Every net read here, text or binary, goes through caffeonspark.upgrade (legacy V1 layers,
net inputs, BatchNorm params); solvers get the solver_type upgrade and the snapshot_prefix
default. Errors: IoError when a file cannot be read or written, FormatError when its
content is not what it should be (text errors name file:line:column, and suggest the
closest name for a misspelt field or enum value), ConfigError from the
upgrader. Writers write a temporary file next to the target, fsync it and rename it over the target
(atomic_file.py), so a crash never leaves a half-written file under the final name.

Tests: tests/test_model_io.py.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
from google.protobuf import descriptor_pool, text_format
from google.protobuf.message import DecodeError, EncodeError, Message

from caffeonspark import upgrade
from caffeonspark.atomic_file import atomic_write
from caffeonspark.errors import FormatError, IoError
from caffeonspark.proto import caffe_pb2

__all__ = [
    "parse_net_text",
    "parse_solver_text",
    "read_net_prototxt",
    "read_solver_prototxt",
    "read_caffemodel",
    "write_caffemodel",
    "read_solverstate",
    "write_solverstate",
    "read_binaryproto",
    "write_binaryproto",
    "write_prototxt",
    "blob_shape",
    "blob_to_array",
    "array_to_blob",
]

PathLike = str | os.PathLike[str]
M = TypeVar("M", bound=Message)

_LEGACY_DIMS = ("num", "channels", "height", "width")


_UNKNOWN_FIELD = re.compile(r'Message type "([\w.]+)" has no field named "(\w+)"')
_UNKNOWN_VALUE = re.compile(r'Enum type "([\w.]+)" has no value named (\w+)')


def _did_you_mean(detail: str) -> str:
    """The hint " (did you mean 'momentum'?)" for a misspelt field or enum value that
    protobuf names in `detail` (any message type: solver, net, layer parameters), or ""."""
    pool = descriptor_pool.Default()
    names: list[str] = []
    try:
        if match := _UNKNOWN_FIELD.search(detail):
            names = [f.name for f in pool.FindMessageTypeByName(match[1]).fields]
        elif match := _UNKNOWN_VALUE.search(detail):
            names = [v.name for v in pool.FindEnumTypeByName(match[1]).values]
    except KeyError:  # a type this pool does not know: no suggestion
        return ""
    close = difflib.get_close_matches(match[2], names, n=1) if match else []
    return f" (did you mean '{close[0]}'?)" if close else ""


# ---------------------------------------------------------------------------------------
# Text: nets and solvers
# ---------------------------------------------------------------------------------------


def parse_net_text(
    text: str, source: str = "<string>", *, upgrade_legacy: bool = True
) -> caffe_pb2.NetParameter:
    """Parse prototxt `text` into a NetParameter, upgraded unless upgrade_legacy is False.

    `source` names the text in error messages (a file name).
    """
    net = _parse_text(text, caffe_pb2.NetParameter(), source)
    if upgrade_legacy:
        upgrade.upgrade_net(net, source)
    return net


def parse_solver_text(
    text: str, source: str = "<string>", *, upgrade_legacy: bool = True
) -> caffe_pb2.SolverParameter:
    """Parse prototxt `text` into a SolverParameter (solver_type and inline nets upgraded).

    The snapshot_prefix default needs a file path: see read_solver_prototxt.
    """
    solver = _parse_text(text, caffe_pb2.SolverParameter(), source)
    if upgrade_legacy:
        upgrade.upgrade_solver(solver, source)
    return solver


def read_net_prototxt(path: PathLike, *, upgrade_legacy: bool = True) -> caffe_pb2.NetParameter:
    """Read a net prototxt file."""
    return parse_net_text(_read_text(path), os.fspath(path), upgrade_legacy=upgrade_legacy)


def read_solver_prototxt(
    path: PathLike, *, upgrade_legacy: bool = True
) -> caffe_pb2.SolverParameter:
    """Read a solver prototxt file; the snapshot_prefix default is derived from `path`."""
    solver = parse_solver_text(_read_text(path), os.fspath(path), upgrade_legacy=upgrade_legacy)
    if upgrade_legacy:
        upgrade.fill_snapshot_prefix(solver, path)
    return solver


def write_prototxt(path: PathLike, message: Message) -> None:
    """Write any message (net, solver) as prototxt text."""
    _atomic_write(path, text_format.MessageToString(message).encode("utf-8"))


def _read_text(path: PathLike) -> str:
    data = _read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(
            f"{os.fspath(path)}: not a text prototxt (byte {err.start} is not UTF-8)"
        ) from None


def _parse_text(text: str, message: M, source: str) -> M:
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as err:
        raise _text_error(err, source) from None
    if not message.IsInitialized():
        missing = ", ".join(message.FindInitializationErrors())
        raise FormatError(f"{source}: required fields are missing: {missing}")
    return message


def _text_error(err: text_format.ParseError, source: str) -> FormatError:
    line, column = err.GetLine(), err.GetColumn()
    detail = str(err)
    prefix = f"{line}:{column} : "
    if detail.startswith(prefix):
        detail = detail[len(prefix) :]
    if "caffe.V0LayerParameter" in detail:
        detail = (
            "a V0 `layer` entry inside `layers`: the V0 net format (2014 and earlier) is not "
            "supported, convert the net with Caffe's upgrade_net_proto_text first"
        )
    hint = _did_you_mean(detail)
    if hint:
        detail = detail.rstrip(".") + hint
    if line is None:
        return FormatError(f"{source}: {detail}")
    return FormatError(f"{source}:{line}:{column}: {detail}")


# ---------------------------------------------------------------------------------------
# Binary: .caffemodel and .solverstate
# ---------------------------------------------------------------------------------------


def read_caffemodel(path: PathLike, *, upgrade_legacy: bool = True) -> caffe_pb2.NetParameter:
    """Read a binary NetParameter (.caffemodel), upgraded unless upgrade_legacy is False."""
    net = _parse_binary(path, caffe_pb2.NetParameter())
    if upgrade_legacy:
        upgrade.upgrade_net(net, os.fspath(path))
    return net


def write_caffemodel(path: PathLike, net: caffe_pb2.NetParameter) -> None:
    """Write `net` as a binary .caffemodel."""
    _atomic_write(path, _serialize(net, path))


def read_solverstate(path: PathLike) -> caffe_pb2.SolverState:
    """Read a binary .solverstate."""
    return _parse_binary(path, caffe_pb2.SolverState())


def write_solverstate(path: PathLike, state: caffe_pb2.SolverState) -> None:
    """Write a binary .solverstate."""
    _atomic_write(path, _serialize(state, path))


def _parse_binary(path: PathLike, message: M) -> M:
    data = _read_bytes(path)
    kind = message.DESCRIPTOR.name
    if not data:
        raise FormatError(f"{os.fspath(path)}: empty file, truncated or not a {kind}")
    try:
        message.ParseFromString(data)
    except DecodeError as err:
        raise FormatError(f"{os.fspath(path)}: truncated or not a {kind} ({err})") from None
    return message


def _serialize(message: Message, path: PathLike) -> bytes:
    try:
        return message.SerializeToString()
    except EncodeError as err:
        raise FormatError(
            f"{os.fspath(path)}: cannot serialize {message.DESCRIPTOR.name}: {err}"
        ) from None


# ---------------------------------------------------------------------------------------
# Blobs and .binaryproto
# ---------------------------------------------------------------------------------------


def blob_shape(blob: caffe_pb2.BlobProto) -> tuple[int, ...]:
    """The shape Caffe reads: the legacy 4-D num/channels/height/width when any is present,
    else `shape`."""
    if any(blob.HasField(name) for name in _LEGACY_DIMS):
        return (blob.num, blob.channels, blob.height, blob.width)
    return tuple(blob.shape.dim)


def blob_to_array(blob: caffe_pb2.BlobProto, *, diff: bool = False) -> np.ndarray:
    """The blob's data (or diff) as a float32 array of blob_shape(blob).

    double_data / double_diff win over data / diff when non-empty (converted to float32,
    as Caffe's float build does). Raises FormatError when the value count does not match
    the shape.
    """
    if diff:
        values = blob.double_diff if len(blob.double_diff) else blob.diff
    else:
        values = blob.double_data if len(blob.double_data) else blob.data
    shape = blob_shape(blob)
    array = np.asarray(values, dtype=np.float32)
    expected = int(np.prod(shape, dtype=np.int64))
    if array.size != expected:
        what = "diff" if diff else "data"
        raise FormatError(
            f"BlobProto holds {array.size} {what} values but its shape {shape} needs {expected}"
        )
    return array.reshape(shape)


def array_to_blob(
    array: np.ndarray | Sequence[float], diff: np.ndarray | None = None
) -> caffe_pb2.BlobProto:
    """A BlobProto holding `array` as Caffe writes it: `shape` plus float `data` (and `diff`
    of the same shape when given)."""
    data = np.asarray(array, dtype="<f4")
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(int(d) for d in data.shape)
    payload = _packed_floats(_DATA_FIELD, data)
    if diff is not None:
        grad = np.asarray(diff, dtype="<f4")
        if grad.shape != data.shape:
            raise ValueError(f"diff shape {grad.shape} differs from data shape {data.shape}")
        payload += _packed_floats(_DIFF_FIELD, grad)
    blob.MergeFromString(payload)
    return blob


def read_binaryproto(path: PathLike) -> np.ndarray:
    """Read a .binaryproto (a serialized BlobProto, e.g. a mean file) as a float32 array."""
    blob = _parse_binary(path, caffe_pb2.BlobProto())
    try:
        return blob_to_array(blob)
    except FormatError as err:
        raise FormatError(f"{os.fspath(path)}: {err}") from None


def write_binaryproto(
    path: PathLike, array: np.ndarray | Sequence[float], *, legacy_4d: bool = False
) -> None:
    """Write `array` as a .binaryproto BlobProto.

    By default the blob carries `shape` + `data` (what Caffe's Blob::ToProto writes). With
    legacy_4d the shape goes into num/channels/height/width instead (left-padded with 1s,
    at most 4 axes), as Caffe's compute_image_mean writes mean files.
    """
    blob = array_to_blob(array)
    if legacy_4d:
        dims = list(blob.shape.dim)
        if len(dims) > 4:
            raise ValueError(f"legacy_4d needs at most 4 axes, got shape {tuple(dims)}")
        dims = [1] * (4 - len(dims)) + dims
        blob.ClearField("shape")
        blob.num, blob.channels, blob.height, blob.width = dims
    _atomic_write(path, _serialize(blob, path))


_DATA_FIELD = caffe_pb2.BlobProto.DESCRIPTOR.fields_by_name["data"].number
_DIFF_FIELD = caffe_pb2.BlobProto.DESCRIPTOR.fields_by_name["diff"].number


def _packed_floats(field_number: int, values: np.ndarray) -> bytes:
    """Wire bytes of a packed repeated float field (much faster than extending in Python)."""
    raw = values.tobytes()
    if not raw:
        return b""
    return _varint((field_number << 3) | 2) + _varint(len(raw)) + raw


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


# ---------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------


def _read_bytes(path: PathLike) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as err:
        raise IoError(f"{os.fspath(path)}: cannot read: {err.strerror or err}") from err


def _atomic_write(path: PathLike, data: bytes) -> None:
    """`data` as the whole file at `path`, durably (atomic_file.atomic_write)."""
    target = os.fspath(path)
    try:
        with atomic_write(target) as handle:
            handle.write(data)
    except OSError as err:
        raise IoError(f"{target}: cannot write: {err.strerror or err}") from err
