"""Caffe's HDF5 snapshot format (snapshot_format: HDF5), through h5py.

Files map onto the same messages the binary format uses, so the rest of the code never
sees HDF5:
- `<prefix>_iter_N.caffemodel.h5`: group `data/<layer name>/<blob index>` (float32
  datasets with the blob's shape), and `diff/...` likewise when diffs were written;
  <-> a NetParameter of layer names and blobs.
- `<prefix>_iter_N.solverstate.h5`: datasets `iter`, `learned_net`, `current_step` and a
  group `history/<index>`; <-> a SolverState.
Writers use a temporary name in the same folder, then rename. Tests: tests/solver/test_solver.py
(snapshot, resume) and tests/net/test_anchor_nets.py (the CIFAR-10 full solvers ask for HDF5).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from caffeonspark import model_io
from caffeonspark.errors import FormatError, IoError
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
    folder = os.path.dirname(os.path.abspath(target))
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                                        dir=folder)
    except OSError as err:
        raise IoError(f"{target}: cannot write: {err.strerror}") from None
    os.close(handle)
    try:
        with _h5py().File(temp, "w") as out:
            fill(out)
        os.replace(temp, target)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise


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


def read_caffemodel_h5(path: PathLike) -> caffe_pb2.NetParameter:
    """The layers of an HDF5 model as a NetParameter of names and blobs."""
    net = caffe_pb2.NetParameter()
    with _open(path) as source:
        if "data" not in source:
            raise FormatError(f"{os.fspath(path)}: HDF5 model without a 'data' group")
        for name, group in source["data"].items():
            layer = net.layer.add(name=name)
            for index in sorted(group.keys(), key=int):
                layer.blobs.append(model_io.array_to_blob(np.asarray(group[index], np.float32)))
    return net


def write_solverstate_h5(path: PathLike, state: caffe_pb2.SolverState) -> None:
    def fill(out: Any) -> None:
        out.create_dataset("iter", data=np.int32(state.iter))
        out.create_dataset("learned_net", data=state.learned_net.encode("utf-8"))
        out.create_dataset("current_step", data=np.int32(state.current_step))
        history = out.create_group("history")
        for index, blob in enumerate(state.history):
            history.create_dataset(str(index), data=model_io.blob_to_array(blob))

    _atomic_h5(path, fill)


def read_solverstate_h5(path: PathLike) -> caffe_pb2.SolverState:
    state = caffe_pb2.SolverState()
    with _open(path) as source:
        try:
            state.iter = int(np.asarray(source["iter"]))
            learned = np.asarray(source["learned_net"]).item()
            state.learned_net = learned.decode("utf-8") if isinstance(learned, bytes) else learned
            state.current_step = int(np.asarray(source["current_step"]))
            history = source["history"]
        except KeyError as err:
            raise FormatError(f"{os.fspath(path)}: HDF5 solver state lacks {err}") from None
        for index in sorted(history.keys(), key=int):
            state.history.append(model_io.array_to_blob(np.asarray(history[index], np.float32)))
    return state
