"""HDF5 snapshots (python/caffeonspark/hdf5_io.py) in Caffe's layout: one-value datasets read
whatever their shape (Caffe's (1,), older scalars) and refused by name at another size; the
file mode of a snapshot is the binary snapshot's (0o666 less the umask). The Caffe-written
pair and the project's round trip: tests/solver/test_solver.py."""

from __future__ import annotations

import os
import re

import h5py
import numpy as np
import pytest

from caffeonspark import hdf5_io, model_io
from caffeonspark.errors import FormatError
from caffeonspark.proto import caffe_pb2


def _state_file(path, iteration, current_step) -> None:
    with h5py.File(path, "w") as out:
        out.create_dataset("iter", data=iteration)
        out.create_dataset("learned_net", data=b"")  # variable-length, as h5py writes a str
        out.create_dataset("current_step", data=current_step)
        out.create_group("history").create_dataset("0", data=np.ones(3, np.float32))


@pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
def test_one_value_datasets_read_whatever_their_shape(tmp_path, shape):
    path = tmp_path / "s.solverstate.h5"
    _state_file(path, np.full(shape, 7, np.int32), np.full(shape, 2, np.int64))
    state = hdf5_io.read_solverstate_h5(path)
    assert (state.iter, state.current_step, state.learned_net) == (7, 2, "")
    np.testing.assert_array_equal(model_io.blob_to_array(state.history[0]), [1, 1, 1])


@pytest.mark.parametrize("name, iteration, current_step",
                         [("iter", np.array([7, 8], np.int32), np.int32(0)),
                          ("current_step", np.int32(7), np.zeros((0,), np.int32))])
def test_one_value_dataset_of_another_size_names_file_and_dataset(
        tmp_path, name, iteration, current_step):
    path = tmp_path / "s.solverstate.h5"
    _state_file(path, iteration, current_step)
    with pytest.raises(FormatError, match=rf"s\.solverstate\.h5: /{name} is not one integer"):
        hdf5_io.read_solverstate_h5(path)


def test_written_state_is_read_back(tmp_path):
    state = caffe_pb2.SolverState(iter=12, learned_net="dir/ü_iter_12.caffemodel.h5",
                                  current_step=3)
    state.history.append(model_io.array_to_blob(np.arange(6, dtype=np.float32).reshape(2, 3)))
    hdf5_io.write_solverstate_h5(tmp_path / "s.solverstate.h5", state)
    with h5py.File(tmp_path / "s.solverstate.h5", "r") as back:
        assert back["iter"].shape == back["current_step"].shape == (1,)
        assert back["iter"].dtype == back["current_step"].dtype == np.int32
        raw = state.learned_net.encode("utf-8")
        assert back["learned_net"].dtype == np.dtype(f"S{len(raw) + 1}")
        assert back["learned_net"][()] == raw
    assert hdf5_io.read_solverstate_h5(tmp_path / "s.solverstate.h5") == state


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_hdf5_snapshots_get_the_binary_snapshots_mode(tmp_path, umask):
    net = caffe_pb2.NetParameter()
    net.layer.add(name="ip").blobs.append(model_io.array_to_blob(np.ones((2, 2), np.float32)))
    state = caffe_pb2.SolverState(iter=1, learned_net="m.caffemodel")
    for name in ("m.caffemodel", "m.caffemodel.h5", "s.solverstate", "s.solverstate.h5"):
        (tmp_path / name).write_bytes(b"old")
        os.chmod(tmp_path / name, 0o600)  # a snapshot written over keeps no old mode
    old = os.umask(umask)
    try:
        model_io.write_caffemodel(tmp_path / "m.caffemodel", net)
        hdf5_io.write_caffemodel_h5(tmp_path / "m.caffemodel.h5", net)
        model_io.write_solverstate(tmp_path / "s.solverstate", state)
        hdf5_io.write_solverstate_h5(tmp_path / "s.solverstate.h5", state)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(modes, 0o666 & ~umask), modes
    assert not [n for n in modes if re.match(r"\.", n)]  # no temporary file left
