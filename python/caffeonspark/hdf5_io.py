"""Caffe's HDF5 snapshot format (snapshot_format: HDF5), through h5py.

Files map onto the same messages the binary format uses, so the rest of the code never
sees HDF5:
- `<prefix>_iter_N.caffemodel.h5`: group `data/<layer name>/<blob index>` (float32
  datasets with the blob's shape), and `diff/...` likewise when diffs were written;
  <-> a NetParameter of layer names and blobs.
- `<prefix>_iter_N.solverstate.h5`: datasets `iter` and `current_step` (int32, shape (1,)),
  `learned_net` (a scalar fixed-length string) and a group `history/<index>`; <-> a
  SolverState. This is Caffe's own layout, so either program restores the other's files;
  a one-value dataset is read whatever its shape (older project files hold scalars).
Writers use a temporary name in the same folder, then fsync and rename (atomic_file.py);
the file gets mode 0o666 less the umask, as binary snapshots do (atomic_write).
Readers treat the file as untrusted (links, external storage and declared sizes are
checked first: hdf5_safe.py).
Tests: tests/test_hdf5_io.py, tests/solver/test_solver.py (snapshot, resume, Caffe's files),
tests/net/test_anchor_nets.py (the CIFAR-10 full solvers ask for HDF5) and
tests/hostile/test_model_files.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from caffeonspark import hdf5_safe, model_io
from caffeonspark.atomic_file import atomic_path
from caffeonspark.errors import FormatError, IoError, ShapeError
from caffeonspark.proto import caffe_pb2

PathLike = str | os.PathLike[str]


def is_hdf5_path(path: PathLike) -> bool:
    """Caffe picks the HDF5 reader by the `.h5` suffix."""
    return os.fspath(path).endswith(".h5")


def _h5py() -> Any:
    import h5py

    return h5py


def _atomic_h5(path: PathLike, fill: Callable[[Any], None]) -> None:
    target = os.fspath(path)
    with atomic_path(target) as temp:
        try:  # created here, so that a folder we cannot write to is an IoError
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as err:
            raise IoError(f"{target}: cannot write: {err.strerror}") from None
        with _h5py().File(temp, "w") as out:
            fill(out)


def _open(path: PathLike) -> Any:
    target = os.fspath(path)
    if not os.path.exists(target):
        raise IoError(f"{target}: no such file")
    try:
        return _h5py().File(target, "r")
    except OSError as err:
        raise FormatError(f"{target}: not an HDF5 file ({err})") from None


def write_caffemodel_h5(path: PathLike, net: caffe_pb2.NetParameter) -> None:
    """Every layer gets a group under `data` (and `diff` when blobs carry diffs)."""
    has_diff = any(len(b.diff) for layer in net.layer for b in layer.blobs)

    def fill(out: Any) -> None:
        for kind in ("data", "diff") if has_diff else ("data",):
            group = out.create_group(kind)
            for layer in net.layer:
                layer_group = group.require_group(layer.name)
                for index, blob in enumerate(layer.blobs):
                    array = model_io.blob_to_array(blob, diff=kind == "diff")
                    layer_group.create_dataset(str(index), data=array)

    _atomic_h5(path, fill)


def read_caffemodel_h5(
    path: PathLike, expected: Mapping[str, Sequence[tuple[int, ...]]] | None = None
) -> caffe_pb2.NetParameter:
    """The layers of an HDF5 model as a NetParameter of names and blobs.

    `expected` (layer name -> the net's blob shapes) is what the caller will copy into:
    other layers are left unread, and a blob whose declared shape differs is refused before
    its data is read (ShapeError, as for a .caffemodel; FormatError past the size cap).
    """
    target = os.fspath(path)
    net = caffe_pb2.NetParameter()
    with hdf5_safe.corrupt_is_format_error(target), _open(path) as source:
        try:
            data = hdf5_safe.subgroup(source, "data", target)
        except KeyError:
            raise FormatError(f"{target}: HDF5 model without a 'data' group") from None
        for name in data.keys():
            if expected is not None and name not in expected:
                continue
            group = hdf5_safe.subgroup(data, name, target)
            indices = hdf5_safe.sorted_indices(group, target)
            shapes = expected.get(name) if expected is not None else None
            if shapes is not None and len(shapes) != len(indices):
                shapes = None  # the engine reports the count mismatch; each blob is capped
            layer = net.layer.add(name=name)
            for i, index in enumerate(indices):
                blob = hdf5_safe.dataset(group, index, target)
                if shapes is not None:
                    _check_blob_shape(blob, tuple(shapes[i]), name, i, target)
                layer.blobs.append(model_io.array_to_blob(hdf5_safe.read_floats(blob, target)))
    return net


def _check_blob_shape(blob: Any, want: tuple[int, ...], layer: str, index: int,
                      path: str) -> None:
    if tuple(blob.shape) == want:
        return
    if hdf5_safe.declared_count(blob) > hdf5_safe.MAX_DATASET_VALUES:
        hdf5_safe.read_floats(blob, path)  # raises the size FormatError, reads nothing
    raise ShapeError(
        f"{path}: cannot copy parameter {index} of layer '{layer}': the model has shape "
        f"{tuple(blob.shape)} but the net wants {want} (rename the layer to train it from "
        "scratch)"
    )


def write_solverstate_h5(path: PathLike, state: caffe_pb2.SolverState) -> None:
    """Caffe's layout (docs/CAFFE.md §5.1): `iter` and `current_step` int32 of shape (1,),
    `learned_net` a scalar fixed-length string, `history/<index>` float32 blobs."""

    def fill(out: Any) -> None:
        out.create_dataset("iter", data=np.array([state.iter], dtype=np.int32))
        _fixed_string(out, "learned_net", state.learned_net)
        out.create_dataset("current_step", data=np.array([state.current_step], dtype=np.int32))
        history = out.create_group("history")
        for index, blob in enumerate(state.history):
            history.create_dataset(str(index), data=model_io.blob_to_array(blob))

    _atomic_h5(path, fill)


def read_solverstate_h5(
    path: PathLike, history_counts: Sequence[int] | None = None
) -> caffe_pb2.SolverState:
    """An HDF5 solver state; `history_counts` (values per history blob the solver holds) lets
    a blob of another size be refused before its data is read."""
    target = os.fspath(path)
    state = caffe_pb2.SolverState()
    with hdf5_safe.corrupt_is_format_error(target), _open(path) as source:
        try:
            state.iter = _int32(hdf5_safe.dataset(source, "iter", target), target)
            state.learned_net = hdf5_safe.read_string(
                hdf5_safe.dataset(source, "learned_net", target), target)
            state.current_step = _int32(hdf5_safe.dataset(source, "current_step", target),
                                        target)
            history = hdf5_safe.subgroup(source, "history", target)
        except KeyError as err:
            raise FormatError(f"{target}: HDF5 solver state lacks {err}") from None
        indices = hdf5_safe.sorted_indices(history, target)
        counts = history_counts if history_counts and len(history_counts) == len(indices) else None
        for i, index in enumerate(indices):
            blob = hdf5_safe.dataset(history, index, target)
            if counts is not None and hdf5_safe.declared_count(blob) != counts[i]:
                raise FormatError(
                    f"{target}: history blob {i} has shape {tuple(blob.shape)} but the "
                    f"parameter it belongs to has {counts[i]} values"
                )
            state.history.append(model_io.array_to_blob(hdf5_safe.read_floats(blob, target)))
    return state


def _fixed_string(group: Any, name: str, value: str) -> None:
    """A scalar string dataset of fixed length (the bytes and a terminating NUL, ASCII or
    UTF-8), as Caffe writes and reads `learned_net`: Caffe sizes its buffer from the type,
    so a variable-length string (what h5py makes of a Python str) cannot be read by it."""
    h5py = _h5py()
    raw = value.encode("utf-8")
    string_type = h5py.h5t.C_S1.copy()
    string_type.set_size(len(raw) + 1)
    string_type.set_strpad(h5py.h5t.STR_NULLTERM)
    if not raw.isascii():
        string_type.set_cset(h5py.h5t.CSET_UTF8)
    space = h5py.h5s.create(h5py.h5s.SCALAR)
    dataset = h5py.h5d.create(group.id, name.encode("ascii"), string_type, space)
    dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(raw + b"\0", dtype=f"S{len(raw) + 1}"),
                  mtype=string_type)


def _int32(data: Any, path: str) -> int:
    value = hdf5_safe.read_int(data, path)
    if not -(2**31) <= value < 2**31:
        raise FormatError(f"{path}: {data.name} = {value} does not fit Caffe's int32")
    return value
