"""Hostile model and solver-state files (tests/hostile/hostile_child.py runs each case in a
4 GiB child): HDF5 files that point outside themselves (external storage, virtual datasets,
soft and external links) or declare far more than they store, and solver states whose `iter`
would replay billions of batches or whose learned_net is not beside them. Each ends in a
FormatError (or the IoError / ShapeError a valid file of that kind gets) naming the file."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from hostile_child import run_case

from caffeonspark import model_io
from caffeonspark.proto import caffe_pb2

NET = """name: "tiny"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
  inner_product_param { num_output: 3 } }
"""


def _net_file(tmp_path: Path) -> Path:
    path = tmp_path / "net.prototxt"
    path.write_text(NET)
    return path


def _copy_case(tmp_path: Path, model: Path) -> str:
    return (
        "from caffeonspark import engine\n"
        f"net = engine.Net({str(_net_file(tmp_path))!r}, engine.TEST)\n"
        f"net.copy_from({str(model)!r})\n"
        "print('weights', net.params['ip'][0].data.ravel()[:4].tolist())\n"
    )


def _model(tmp_path: Path, fill) -> Path:
    """A .caffemodel.h5 whose data/ip group gets a valid bias and whatever `fill` adds as
    blob 0."""
    path = tmp_path / "bad.caffemodel.h5"
    with h5py.File(path, "w") as out:
        layer = out.create_group("data").create_group("ip")
        fill(layer, tmp_path)
        layer.create_dataset("1", data=np.zeros(3, np.float32))
    return path


def _external_storage(layer, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"local secret bytes!!" * 2)  # 36 bytes = 9 float32
    layer.create_dataset("0", shape=(3, 3), dtype="<f4", external=[(str(secret), 0, 36)])


def _virtual(layer, tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as out:
        out.create_dataset("w", data=np.ones((3, 3), np.float32))
    vlayout = h5py.VirtualLayout(shape=(3, 3), dtype="<f4")
    vlayout[...] = h5py.VirtualSource(str(other), "w", shape=(3, 3))
    layer.create_virtual_dataset("0", vlayout)


def _soft_link(layer, tmp_path):
    layer.file.create_dataset("elsewhere", data=np.ones((3, 3), np.float32))
    layer["0"] = h5py.SoftLink("/elsewhere")


def _external_link(layer, tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as out:
        out.create_dataset("w", data=np.ones((3, 3), np.float32))
    layer["0"] = h5py.ExternalLink(str(other), "/w")


@pytest.mark.parametrize(
    "fill, message",
    [
        (_external_storage, r"bad\.caffemodel\.h5: /data/ip/0 keeps its data in external files"),
        (_virtual, r"bad\.caffemodel\.h5: /data/ip/0 is a virtual dataset"),
        (_soft_link, r"bad\.caffemodel\.h5: /data/ip/0 is a SoftLink"),
        (_external_link, r"bad\.caffemodel\.h5: /data/ip/0 is a ExternalLink"),
    ],
    ids=["external-storage", "virtual", "soft-link", "external-link"],
)
def test_h5_model_pointing_outside_itself_is_refused(tmp_path, fill, message):
    model = _model(tmp_path, fill)
    run_case(_copy_case(tmp_path, model)).expect_error("FormatError", message)


def _huge_chunked(layer, tmp_path):
    # Compressed chunks that were never written: a few KB on disk, 16 GB declared.
    layer.create_dataset("0", shape=(65536, 65536), dtype="<f4", chunks=(64, 64),
                         compression="gzip", fillvalue=1.0)


def test_h5_model_with_a_huge_declared_shape_is_refused_before_reading(tmp_path):
    model = _model(tmp_path, _huge_chunked)
    assert model.stat().st_size < 16_384
    run_case(_copy_case(tmp_path, model)).expect_error(
        "FormatError", r"bad\.caffemodel\.h5: /data/ip/0 declares shape \(65536, 65536\)")


def _slightly_wrong(layer, tmp_path):
    layer.create_dataset("0", shape=(4, 3), dtype="<f4", fillvalue=1.0)


def test_h5_model_with_another_shape_is_a_shape_error_as_for_a_caffemodel(tmp_path):
    model = _model(tmp_path, _slightly_wrong)
    run_case(_copy_case(tmp_path, model)).expect_error(
        "ShapeError", r"bad\.caffemodel\.h5: cannot copy parameter 0 of layer 'ip'.*\(4, 3\)")


def _integers(layer, tmp_path):
    layer.create_dataset("0", data=np.ones((3, 3), np.int64))


def test_h5_model_with_a_non_float_dataset_is_refused(tmp_path):
    model = _model(tmp_path, _integers)
    run_case(_copy_case(tmp_path, model)).expect_error(
        "FormatError", r"bad\.caffemodel\.h5: /data/ip/0 holds int64")


def test_h5_model_layers_the_net_lacks_are_not_read(tmp_path):
    def fill(layer, tmp_path):
        layer.create_dataset("0", data=np.full((3, 3), 2.0, np.float32))
        layer.file["data"].create_dataset("unused/0", shape=(65536, 65536), dtype="<f4",
                                          chunks=(64, 64), compression="gzip")

    outcome = run_case(_copy_case(tmp_path, _model(tmp_path, fill)))
    outcome.expect_no_signal()
    assert outcome.error is None, outcome.message


def _state_h5(tmp_path: Path, fill) -> Path:
    path = tmp_path / "bad.solverstate.h5"
    with h5py.File(path, "w") as out:
        out.create_dataset("iter", data=np.int32(1))
        out.create_dataset("learned_net", data=b"")
        out.create_dataset("current_step", data=np.int32(0))
        history = out.create_group("history")
        fill(out, history)
    return path


def _restore_case(state: Path, max_iter: int = 10) -> str:
    return (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parents[1] / 'solver')!r})\n"
        "from solver_util import solver_param\n"
        "from caffeonspark.solver import Solver\n"
        f"solver = Solver(solver_param('base_lr: 0.1 lr_policy: \"fixed\" max_iter: {max_iter}'))\n"
        f"solver.restore({str(state)!r})\n"
        "print('restored at', solver.iter)\n"
    )


def test_h5_state_history_with_a_huge_declared_shape_is_refused(tmp_path):
    def fill(out, history):
        history.create_dataset("0", shape=(65536, 65536), dtype="<f4", chunks=(64, 64),
                               compression="gzip", fillvalue=1.0)
        history.create_dataset("1", data=np.zeros(3, np.float32))

    run_case(_restore_case(_state_h5(tmp_path, fill))).expect_error(
        "FormatError", r"bad\.solverstate\.h5: history blob 0 has shape \(65536, 65536\)")


def test_h5_state_history_behind_an_external_link_is_refused(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as out:
        out.create_dataset("h", data=np.zeros((3, 3), np.float32))

    def fill(out, history):
        history["0"] = h5py.ExternalLink(str(other), "/h")
        history.create_dataset("1", data=np.zeros(3, np.float32))

    run_case(_restore_case(_state_h5(tmp_path, fill))).expect_error(
        "FormatError", r"bad\.solverstate\.h5: /history/0 is a ExternalLink")


def test_h5_state_iter_that_is_not_a_scalar_is_refused(tmp_path):
    def fill(out, history):
        del out["iter"]
        out.create_dataset("iter", shape=(1 << 30,), dtype="<i4", chunks=(1024,),
                           compression="gzip")

    run_case(_restore_case(_state_h5(tmp_path, fill))).expect_error(
        "FormatError", r"bad\.solverstate\.h5: /iter is not one integer")


# -- iter and learned_net ------------------------------------------------------------------


def _state(tmp_path: Path, iteration: int, learned_net: str = "") -> Path:
    state = caffe_pb2.SolverState(iter=iteration, learned_net=learned_net)
    state.history.extend(model_io.array_to_blob(np.zeros(s, np.float32)) for s in [(3, 3), (3,)])
    path = tmp_path / "bad.solverstate"
    model_io.write_solverstate(path, state)
    return path


@pytest.mark.parametrize("iteration", [2**31 - 1, 11, -5])
def test_state_iter_outside_zero_to_max_iter_is_refused(tmp_path, iteration):
    run_case(_restore_case(_state(tmp_path, iteration), max_iter=10), timeout=60).expect_error(
        "FormatError", rf"bad\.solverstate: iter {iteration} is outside 0\.\.10 \(max_iter of this solver\)")


def test_h5_state_iter_outside_max_iter_is_refused(tmp_path):
    def fill(out, history):
        out["iter"][()] = 2**31 - 1
        history.create_dataset("0", data=np.zeros((3, 3), np.float32))
        history.create_dataset("1", data=np.zeros(3, np.float32))

    run_case(_restore_case(_state_h5(tmp_path, fill)), timeout=60).expect_error(
        "FormatError", r"bad\.solverstate\.h5: iter 2147483647 is outside 0\.\.10")


def test_state_negative_current_step_is_refused(tmp_path):
    path = _state(tmp_path, 1)
    state = model_io.read_solverstate(path)
    state.current_step = -5
    model_io.write_solverstate(path, state)
    run_case(_restore_case(path)).expect_error(
        "FormatError", r"bad\.solverstate: current_step -5 is negative")


def test_learned_net_beside_the_state_wins_over_the_working_directory(tmp_path):
    """A state names 'w.caffemodel'; the working directory holds a different file of that
    name: the one beside the state is loaded."""
    state_dir, cwd = tmp_path / "state", tmp_path / "cwd"
    state_dir.mkdir()
    cwd.mkdir()
    for folder, value in ((state_dir, 1.0), (cwd, 7.0)):
        net = caffe_pb2.NetParameter()
        layer = net.layer.add(name="ip")
        layer.blobs.append(model_io.array_to_blob(np.full((3, 3), value, np.float32)))
        layer.blobs.append(model_io.array_to_blob(np.zeros(3, np.float32)))
        model_io.write_caffemodel(folder / "w.caffemodel", net)
    state = _state(state_dir, 1, "w.caffemodel")
    code = f"import os\nos.chdir({str(cwd)!r})\n" + _restore_case(state) + (
        "w = solver.net.params['ip'][0].data\n"
        "assert (w == 1.0).all(), w\n"
    )
    outcome = run_case(code)
    outcome.expect_no_signal()
    assert outcome.error is None, outcome.message


def test_missing_learned_net_is_an_io_error_naming_both(tmp_path):
    state = _state(tmp_path, 1, "gone/w.caffemodel")
    run_case(_restore_case(state)).expect_error(
        "IoError", rf"bad\.solverstate: its learned_net 'gone/w\.caffemodel' .*{tmp_path}")
