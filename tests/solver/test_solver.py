"""The Solver loop (docs/CAFFE.md §4.1, §4.5): snapshot -> restore ->
continue is bit-identical to an uninterrupted run; the .solverstate / .caffemodel decode
with caffe_pb2 and hold the right history in the right order; test nets see the trained
weights and average their outputs; display/test log lines; net sources and relative paths;
stop requests and SIGINT; random_seed; smoothed loss; the gradient hook's place; restore
of a snapshot written by real Caffe into a LeNet solver (when the vision layers exist)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from solver_util import Feeder, params_of, softmax_loss_grads, solver_param, tiny_net

from caffeonspark import hdf5_io, model_io
from caffeonspark._native import _engine
from caffeonspark.errors import ConfigError, FormatError, IoError
from caffeonspark.proto import caffe_pb2
from caffeonspark.solver import (
    AdaDeltaSolver,
    AdamSolver,
    SGDSolver,
    Solver,
    get_solver,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
CAFFE_REF = SHARED / "anchors" / "caffe-ref"

ADAM_MULTISTEP = (
    'type: "Adam" base_lr: 0.05 momentum: 0.9 lr_policy: "multistep" gamma: 0.5 '
    "stepvalue: 2 stepvalue: 4 weight_decay: 0.01 clip_gradients: 1 iter_size: 2 "
    "max_iter: 6 snapshot: 3 "
)


@pytest.fixture
def one_thread():
    before = _engine.num_threads()
    _engine.set_num_threads(1)
    yield
    _engine.set_num_threads(before)


def _solver(text: str, tmp_path: Path, net=None, iter_size: int = 1) -> tuple[Solver, Feeder]:
    param = solver_param(text + f' snapshot_prefix: "{tmp_path / "snap"}"', net)
    solver = Solver(param)
    return solver, Feeder(solver, iter_size=iter_size)


# -- snapshots ---------------------------------------------------------------------------


def test_snapshot_restore_continue_is_bit_identical(tmp_path, one_thread):
    straight, _ = _solver(ADAM_MULTISTEP, tmp_path / "a", iter_size=2)
    (tmp_path / "a").mkdir()
    straight.solve()
    assert straight.iter == 6 and straight.native.current_step == 2

    (tmp_path / "b").mkdir()
    resumed, _ = _solver(ADAM_MULTISTEP, tmp_path / "b", iter_size=2)
    resumed.solve(resume_file=tmp_path / "a" / "snap_iter_3.solverstate")
    assert resumed.iter == 6 and resumed.native.current_step == 2
    for layer in ("ip",):
        for a, b in zip(straight.net.params[layer], resumed.net.params[layer], strict=True):
            np.testing.assert_array_equal(a.data, b.data)
    for a, b in zip(straight.history, resumed.history, strict=True):
        np.testing.assert_array_equal(a, b)
    # Both runs wrote the final snapshot at 6 and no second one (6 % snapshot == 0).
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "snap_iter_3.caffemodel",
        "snap_iter_3.solverstate",
        "snap_iter_6.caffemodel",
        "snap_iter_6.solverstate",
    ]
    assert (tmp_path / "b" / "snap_iter_6.solverstate").read_bytes() != b""


def test_solverstate_and_caffemodel_decode_with_caffe_pb2(tmp_path):
    solver, _ = _solver(ADAM_MULTISTEP, tmp_path, iter_size=2)
    solver.step(3)  # snapshot at 3 through the loop
    state_path = tmp_path / "snap_iter_3.solverstate"
    state = caffe_pb2.SolverState()
    state.ParseFromString(state_path.read_bytes())
    assert state.iter == 3
    assert state.current_step == 1  # multistep passed stepvalue 2
    assert state.learned_net == f"{tmp_path / 'snap'}_iter_3.caffemodel"
    # Adam: m for every learnable param, then v for every learnable param.
    weights = [b.data for b in solver.net.params["ip"]]
    assert len(state.history) == 2 * len(weights)
    shapes = [tuple(blob.shape.dim) for blob in state.history]
    assert shapes == [w.shape for w in weights] * 2
    for blob, live in zip(state.history, solver.history, strict=True):
        np.testing.assert_array_equal(model_io.blob_to_array(blob), live)
    model = caffe_pb2.NetParameter()
    model.ParseFromString(Path(state.learned_net).read_bytes())
    layer = {lay.name: lay for lay in model.layer}["ip"]
    for blob, live in zip(layer.blobs, weights, strict=True):
        np.testing.assert_array_equal(model_io.blob_to_array(blob), live)
    assert not list(tmp_path.glob(".*tmp"))  # temporary files were renamed away


def test_restore_finds_learned_net_beside_the_solverstate(tmp_path, one_thread):
    (tmp_path / "run").mkdir()
    solver, _ = _solver('base_lr: 0.1 lr_policy: "fixed" momentum: 0.9', tmp_path / "run")
    solver.step(2)
    state_path = Path(solver.snapshot())
    moved = tmp_path / "moved"
    shutil.move(str(tmp_path / "run"), moved)  # learned_net inside now points nowhere
    other, _ = _solver('base_lr: 0.1 lr_policy: "fixed" momentum: 0.9', tmp_path / "other")
    other.restore(moved / state_path.name)
    assert other.iter == 2
    np.testing.assert_array_equal(other.net.params["ip"][0].data, solver.net.params["ip"][0].data)
    np.testing.assert_array_equal(other.history[0], solver.history[0])


def test_restore_with_wrong_history_count_names_the_file(tmp_path):
    solver, _ = _solver('base_lr: 0.1 lr_policy: "fixed"', tmp_path)
    solver.step(1)
    state_path = solver.snapshot()
    adam, _ = _solver('type: "Adam" base_lr: 0.1 lr_policy: "fixed"', tmp_path)
    with pytest.raises(FormatError, match=r"snap_iter_1\.solverstate.*2 history blobs.*needs 4"):
        adam.restore(state_path)
    assert adam.iter == 0


def test_restore_missing_learned_net_is_an_io_error(tmp_path):
    state = caffe_pb2.SolverState(iter=3, learned_net="nowhere.caffemodel")
    state.history.extend(model_io.array_to_blob(np.zeros(s, np.float32)) for s in [(3, 3), (3,)])
    model_io.write_solverstate(tmp_path / "x.solverstate", state)
    solver, _ = _solver('base_lr: 0.1 lr_policy: "fixed"', tmp_path)
    with pytest.raises(IoError, match="nowhere.caffemodel"):
        solver.restore(tmp_path / "x.solverstate")


def test_hdf5_snapshots_resume_bit_identically(tmp_path, one_thread):
    import h5py

    hdf5 = ADAM_MULTISTEP + " snapshot_format: HDF5"
    (tmp_path / "a").mkdir()
    straight, _ = _solver(hdf5, tmp_path / "a", iter_size=2)
    straight.solve()
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["snap_iter_3.caffemodel.h5", "snap_iter_3.solverstate.h5",
                     "snap_iter_6.caffemodel.h5", "snap_iter_6.solverstate.h5"]
    with h5py.File(tmp_path / "a" / "snap_iter_6.caffemodel.h5", "r") as model:
        np.testing.assert_array_equal(model["data/ip/0"][()], straight.net.params["ip"][0].data)
    with h5py.File(tmp_path / "a" / "snap_iter_6.solverstate.h5", "r") as state:
        assert state["iter"].shape == state["current_step"].shape == (1,)  # Caffe's layout
        assert state["iter"][0] == 6 and state["current_step"][0] == 2
        assert len(state["history"]) == 2 * len(straight.net.params["ip"])
    (tmp_path / "b").mkdir()
    resumed, _ = _solver(hdf5, tmp_path / "b", iter_size=2)
    resumed.solve(resume_file=tmp_path / "a" / "snap_iter_3.solverstate.h5")
    for a, b in zip(straight.net.params["ip"], resumed.net.params["ip"], strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    for a, b in zip(straight.history, resumed.history, strict=True):
        np.testing.assert_array_equal(a, b)


def test_snapshot_without_prefix_is_a_config_error():
    solver = Solver(solver_param('base_lr: 0.1 lr_policy: "fixed"'))
    with pytest.raises(ConfigError, match="snapshot_prefix"):
        solver.snapshot()


# -- testing -----------------------------------------------------------------------------


def test_test_nets_see_trained_weights_and_average_outputs(tmp_path):
    solver, feeder = _solver(
        'base_lr: 0.5 lr_policy: "fixed" test_iter: 3 test_interval: 2 max_iter: 4 '
        "snapshot_after_train: false test_compute_loss: true",
        tmp_path,
    )
    (test_net,) = solver.test_nets
    solver.solve()
    np.testing.assert_array_equal(test_net.params["ip"][0].data, solver.net.params["ip"][0].data)
    # Tests at 0 (test_initialization), 2 and the final one at 4.
    assert [r["iter"] for r in solver.test_results] == [0, 2, 4]
    # Recompute the last test: the same three batches through the final weights.
    test_batches = [(x, label) for index, x, label in feeder.fed if index == 0][-3:]
    w, b = params_of(solver)
    losses, probs = [], []
    for x, label in test_batches:
        loss, _, _ = softmax_loss_grads(x, label, w, b)
        logits = x @ w.T + b
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        losses.append(loss)
        probs.append(p / p.sum(axis=1, keepdims=True))
    last = solver.test_results[-1]
    assert set(last["outputs"]) == {"loss", "prob"}
    np.testing.assert_allclose(last["outputs"]["loss"], [np.mean(losses)], rtol=1e-5)
    np.testing.assert_allclose(last["outputs"]["prob"], np.mean(probs, axis=0).ravel(), rtol=1e-5)
    assert last["loss"] == pytest.approx(np.mean(losses), rel=1e-5)  # test_compute_loss
    again = solver.test(0)  # three new batches, same structure
    assert set(again) == {"loss", "prob"} and len(again["prob"]) == 12


def test_test_initialization_false_skips_iteration_zero(tmp_path):
    solver, _ = _solver(
        'base_lr: 0.1 lr_policy: "fixed" test_iter: 1 test_interval: 3 max_iter: 7 '
        "test_initialization: false snapshot_after_train: false",
        tmp_path,
    )
    solver.solve()
    assert [r["iter"] for r in solver.test_results] == [3, 6]  # 7 % 3 != 0: no final test


def test_log_lines_look_like_caffe(tmp_path, caplog):
    solver, _ = _solver(
        'base_lr: 0.01 lr_policy: "inv" gamma: 0.0001 power: 0.75 display: 2 max_iter: 4 '
        "test_iter: 1 test_interval: 4 snapshot_after_train: false",
        tmp_path,
    )
    with caplog.at_level(logging.INFO, logger="caffeonspark"):
        solver.solve()
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "caffeonspark")
    assert "Iteration 0 (0 iter/s" in text
    assert "Iteration 2 (" in text and "s/2 iters), loss = " in text
    assert "Iteration 2, lr = 0.0099985\n" in text + "\n"  # %g: 6 significant digits
    assert "    Train net output #0: loss = " in text and "(* 1 = " in text
    assert "Iteration 4, Testing net (#0)" in text
    assert "    Test net output #0: loss = " in text
    assert "    Test net output #1: prob = " in text
    assert "Iteration 4, loss = " in text  # Solve's final forward-only pass
    assert "Optimization Done." in text


# -- the loop ----------------------------------------------------------------------------


def test_smoothed_loss_averages_the_last_average_loss_iterations(tmp_path):
    solver, _ = _solver('base_lr: 0.1 lr_policy: "fixed" average_loss: 3', tmp_path)
    losses = []
    solver.add_callback(on_gradients_ready=lambda: losses.append(solver.native.last_loss))
    solver.step(5)
    assert solver.smoothed_loss == pytest.approx(np.mean(losses[-3:]), rel=1e-6)
    solver.step(1)  # each step() restarts the window, as Caffe's Step does
    assert solver.smoothed_loss == pytest.approx(losses[-1], rel=1e-6)


def test_gradient_hook_runs_between_backward_and_update(tmp_path):
    solver, _ = _solver('base_lr: 0.1 lr_policy: "fixed"', tmp_path)
    before = [p.copy() for p in params_of(solver)]
    seen = []

    def zero_gradients():
        seen.append([float(np.abs(b.diff).sum()) for b in solver.net.params["ip"]])
        for blob in solver.net.params["ip"]:
            blob.diff[...] = 0

    starts = []
    solver.add_callback(
        on_start=lambda: starts.append(solver.iter), on_gradients_ready=zero_gradients
    )
    solver.step(3)
    assert starts == [0, 1, 2]
    assert all(total > 0 for totals in seen for total in totals)  # backward had run
    for a, b in zip(params_of(solver), before, strict=True):
        np.testing.assert_array_equal(a, b)  # no gradient, no decay: nothing moved


def test_request_stop_stops_after_the_iteration_and_snapshots(tmp_path, caplog):
    solver, _ = _solver('base_lr: 0.1 lr_policy: "fixed" max_iter: 50', tmp_path)
    solver.add_callback(on_start=lambda: solver.iter == 2 and solver.request_stop())
    with caplog.at_level(logging.INFO, logger="caffeonspark"):
        solver.solve()
    assert solver.iter == 3
    assert (tmp_path / "snap_iter_3.solverstate").exists()
    assert "Optimization stopped early." in caplog.text


def test_sigint_stops_training_and_raises_keyboard_interrupt(tmp_path):
    solver, feeder = _solver('base_lr: 0.1 lr_policy: "fixed" max_iter: 50', tmp_path)
    hook = feeder

    def interrupt(net, index):
        hook(net, index)
        if solver.iter == 1:
            os.kill(os.getpid(), signal.SIGINT)

    solver.set_forward_hook(interrupt)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="iteration 2"):
        solver.solve()
    assert solver.iter == 2
    assert (tmp_path / "snap_iter_2.caffemodel").exists()  # Caffe still snapshots on stop
    assert signal.getsignal(signal.SIGINT) is before
    solver.set_forward_hook(feeder)
    solver.step(1)  # the solver stays usable
    assert solver.iter == 3


def test_random_seed_makes_the_fillers_repeat():
    def weights(seed):
        return (
            Solver(solver_param(f'base_lr: 0.1 lr_policy: "fixed" random_seed: {seed}'))
            .net.params["ip"][0]
            .data.copy()
        )

    np.testing.assert_array_equal(weights(5), weights(5))
    assert not np.array_equal(weights(5), weights(6))


def test_callback_errors_propagate(tmp_path):
    solver, _ = _solver('base_lr: 0.1 lr_policy: "fixed"', tmp_path)

    def boom():
        raise RuntimeError("from the callback")

    solver.add_callback(on_start=boom)
    with pytest.raises(RuntimeError, match="from the callback"):
        solver.step(1)


# -- construction ------------------------------------------------------------------------


def _write_solver(directory: Path, body: str, net_name: str = "tiny.prototxt") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / net_name).write_text(text_format.MessageToString(tiny_net()))
    path = directory / "tiny_solver.prototxt"
    path.write_text(body)
    return path


def test_relative_net_is_found_beside_the_solver(tmp_path, monkeypatch):
    path = _write_solver(
        tmp_path / "models",
        'net: "tiny.prototxt" base_lr: 0.1 lr_policy: "fixed" test_iter: 1 test_interval: 5 '
        'type: "Nesterov" random_seed: 1',
    )
    monkeypatch.chdir(tmp_path)  # tiny.prototxt is not in the working directory
    solver = get_solver(path)
    assert solver.type == "Nesterov" and len(solver.test_nets) == 1
    assert solver.param.snapshot_prefix == str(tmp_path / "models" / "tiny_solver")
    assert AdamSolver(path).type == "Adam"
    assert SGDSolver(path).type == "SGD"
    assert AdaDeltaSolver(path).native.history_sets == 2


def test_working_directory_wins_over_the_solver_directory(tmp_path, monkeypatch):
    path = _write_solver(tmp_path / "models", 'net: "tiny.prototxt" base_lr: 1 lr_policy: "fixed"')
    cwd_net = tiny_net(7)  # a different batch size tells the two files apart
    (tmp_path / "tiny.prototxt").write_text(text_format.MessageToString(cwd_net))
    monkeypatch.chdir(tmp_path)
    assert Solver(path).net.blobs["x"].shape == (7, 3)


def test_missing_net_file_names_both_places(tmp_path, monkeypatch):
    path = _write_solver(tmp_path / "m", 'net: "gone.prototxt" base_lr: 1 lr_policy: "fixed"')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(IoError, match="gone.prototxt.*working directory.*beside the solver"):
        Solver(path)


def test_train_and_test_net_sources(tmp_path):
    both = solver_param('base_lr: 1 lr_policy: "fixed"')
    both.train_net_param.CopyFrom(tiny_net())
    with pytest.raises(ConfigError, match="more than once"):
        Solver(both)
    none = caffe_pb2.SolverParameter(base_lr=1, lr_policy="fixed")
    with pytest.raises(ConfigError, match="must name a train net"):
        Solver(none)
    # train_net_param + two test_net_param (by stage) need exactly two test_iter values.
    param = caffe_pb2.SolverParameter(base_lr=1, lr_policy="fixed", test_interval=1)
    param.train_net_param.CopyFrom(tiny_net(4))
    param.test_net_param.add().CopyFrom(tiny_net(5))
    param.test_net_param.add().CopyFrom(tiny_net(6))
    param.test_iter.append(1)
    with pytest.raises(ConfigError, match="2 test net.*1 test_iter"):
        Solver(param)
    param.test_iter.append(2)
    solver = Solver(param)
    assert [n.blobs["x"].shape[0] for n in solver.test_nets] == [5, 6]
    # net_param repeated for test_iter entries beyond the explicit test nets.
    generic = solver_param('base_lr: 1 lr_policy: "fixed" test_iter: 1 test_iter: 1')
    generic.test_net_param.add().CopyFrom(tiny_net(9))
    shapes = [n.blobs["x"].shape[0] for n in Solver(generic).test_nets]
    assert shapes == [9, 4]


def test_solver_weights_field_loads_a_model(tmp_path):
    source, _ = _solver('base_lr: 0.1 lr_policy: "fixed"', tmp_path)
    source.net.params["ip"][0].data[...] = 0.25
    source.net.save(tmp_path / "init.caffemodel")
    solver = Solver(
        solver_param(f'base_lr: 0.1 lr_policy: "fixed" weights: "{tmp_path}/init.caffemodel"')
    )
    np.testing.assert_array_equal(solver.net.params["ip"][0].data, 0.25)


# -- real Caffe's snapshot ---------------------------------------------------------------

LENET_LAYERS = ("Convolution", "Pooling")


def _lenet_or_skip():
    if not CAFFE_REF.is_dir():
        pytest.skip(f"{CAFFE_REF} is absent (the shared Caffe reference outputs)")
    missing = [t for t in LENET_LAYERS if t not in _engine.layer_types()]
    if missing:
        pytest.skip(f"LeNet needs layer types not built into this engine yet: {', '.join(missing)}")


def test_restore_caffe_written_lenet_snapshot(tmp_path, monkeypatch):
    _lenet_or_skip()
    monkeypatch.chdir(tmp_path)  # lenet.prototxt is found beside solver_SGD.prototxt
    solver = Solver(CAFFE_REF / "solver_SGD.prototxt")
    solver.restore(CAFFE_REF / "solver_SGD_iter_10.solverstate")
    assert solver.iter == 10 and solver.native.current_step == 0
    expected = np.load(CAFFE_REF / "solver_SGD.npz")
    for name, blobs in solver.net.params.items():
        for i, blob in enumerate(blobs):
            np.testing.assert_array_equal(blob.data, expected[f"param/{name}/{i}"])
    state = model_io.read_solverstate(CAFFE_REF / "solver_SGD_iter_10.solverstate")
    for blob, live in zip(state.history, solver.history, strict=True):
        np.testing.assert_array_equal(model_io.blob_to_array(blob), live)


def test_lenet_trajectory_matches_caffe(tmp_path, monkeypatch):
    _lenet_or_skip()
    monkeypatch.chdir(tmp_path)
    solver = Solver(CAFFE_REF / "solver_SGD.prototxt")
    solver.net.copy_from(CAFFE_REF / "lenet.caffemodel")
    inputs = np.load(CAFFE_REF / "solver_inputs.npz")

    def feed(net, index):
        net.blobs["data"].data[...] = inputs["x"][solver.iter]
        net.blobs["label"].data[...] = inputs["y"][solver.iter]

    losses = []
    solver.set_forward_hook(feed)
    solver.add_callback(on_gradients_ready=lambda: losses.append(solver.native.last_loss))
    solver.step(10)
    expected = np.load(CAFFE_REF / "solver_SGD.npz")
    # Measured: losses within 4e-7 relative, weights and history within 1e-6 of their scale.
    np.testing.assert_allclose(losses, expected["loss"], rtol=1e-5)
    for name, blobs in solver.net.params.items():
        for i, blob in enumerate(blobs):
            want = expected[f"param/{name}/{i}"]
            np.testing.assert_allclose(blob.data, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    state = model_io.read_solverstate(CAFFE_REF / "solver_SGD_iter_10.solverstate")
    for blob, live in zip(state.history, solver.history, strict=True):
        want = model_io.blob_to_array(blob)
        np.testing.assert_allclose(live, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def _lenet_continued(solver_file: str, state: str, steps: int) -> tuple[list[float], Solver]:
    """The Caffe-written LeNet snapshot `state` restored, then `steps` more SGD iterations on
    solver_inputs.npz (iteration i gets batch i mod 10)."""
    solver = Solver(CAFFE_REF / solver_file)
    solver.restore(CAFFE_REF / state)
    inputs = np.load(CAFFE_REF / "solver_inputs.npz")

    def feed(net, index):
        net.blobs["data"].data[...] = inputs["x"][solver.iter % 10]
        net.blobs["label"].data[...] = inputs["y"][solver.iter % 10]

    losses: list[float] = []
    solver.set_forward_hook(feed)
    solver.add_callback(on_gradients_ready=lambda: losses.append(solver.native.last_loss))
    solver.step(steps)
    return losses, solver


def test_caffe_written_hdf5_snapshot_restores_and_continues_like_the_binary_one(
        tmp_path, monkeypatch):
    import h5py

    _lenet_or_skip()
    monkeypatch.chdir(tmp_path)
    # Restoring loads exactly what Caffe wrote (iter and current_step are shape (1,) there).
    solver = Solver(CAFFE_REF / "solver_SGD_h5.prototxt")
    solver.restore(CAFFE_REF / "solver_SGD_h5_iter_10.solverstate.h5")
    assert solver.iter == 10 and solver.native.current_step == 0
    with h5py.File(CAFFE_REF / "solver_SGD_h5_iter_10.caffemodel.h5", "r") as model:
        for name, blobs in solver.net.params.items():
            for i, blob in enumerate(blobs):
                np.testing.assert_array_equal(blob.data, model[f"data/{name}/{i}"][()])
    with h5py.File(CAFFE_REF / "solver_SGD_h5_iter_10.solverstate.h5", "r") as state:
        for i, live in enumerate(solver.history):
            np.testing.assert_array_equal(live, state[f"history/{i}"][()])
    # Then 5 more steps from the HDF5 pair and from the same values as a binary pair: the
    # continuations are bit-identical.
    h5_losses, from_h5 = _lenet_continued(
        "solver_SGD_h5.prototxt", "solver_SGD_h5_iter_10.solverstate.h5", 5)
    model_io.write_caffemodel(tmp_path / "same.caffemodel", hdf5_io.read_caffemodel_h5(
        CAFFE_REF / "solver_SGD_h5_iter_10.caffemodel.h5"))
    state = hdf5_io.read_solverstate_h5(CAFFE_REF / "solver_SGD_h5_iter_10.solverstate.h5")
    state.learned_net = str(tmp_path / "same.caffemodel")
    model_io.write_solverstate(tmp_path / "same.solverstate", state)
    same_losses, from_same = _lenet_continued("solver_SGD.prototxt",
                                              str(tmp_path / "same.solverstate"), 5)
    assert from_h5.iter == from_same.iter == 15 and len(h5_losses) == 5
    assert h5_losses == same_losses
    for name, blobs in from_same.net.params.items():
        for a, b in zip(from_h5.net.params[name], blobs, strict=True):
            np.testing.assert_array_equal(a.data, b.data)
    for a, b in zip(from_h5.history, from_same.history, strict=True):
        np.testing.assert_array_equal(a, b)
    # Caffe's own binary pair comes from a second Caffe run whose values differ in the last
    # bits (weights within 3e-8, history within 1e-9): continuing from it agrees to float32
    # rounding grown over 5 steps (measured: losses within 4e-7, weights within 2e-5 of
    # their scale).
    bin_losses, from_bin = _lenet_continued(
        "solver_SGD.prototxt", "solver_SGD_iter_10.solverstate", 5)
    np.testing.assert_allclose(h5_losses, bin_losses, rtol=1e-6)
    for name, blobs in from_bin.net.params.items():
        for a, b in zip(from_h5.net.params[name], blobs, strict=True):
            np.testing.assert_allclose(a.data, b.data, rtol=0, atol=1e-4 * np.abs(b.data).max())


def test_project_hdf5_snapshot_has_caffes_layout(tmp_path, monkeypatch):
    """Caffe's pair restored and snapshotted again: every object of both files has the type,
    shape and value of Caffe's (learned_net: a fixed-length NUL-terminated string)."""
    import h5py

    _lenet_or_skip()
    monkeypatch.chdir(tmp_path)
    solver = Solver(CAFFE_REF / "solver_SGD_h5.prototxt")
    solver.restore(CAFFE_REF / "solver_SGD_h5_iter_10.solverstate.h5")
    solver.param.snapshot_prefix = str(tmp_path / "mine")
    solver.snapshot()
    pairs = [("solver_SGD_h5_iter_10.caffemodel.h5", "mine_iter_10.caffemodel.h5"),
             ("solver_SGD_h5_iter_10.solverstate.h5", "mine_iter_10.solverstate.h5")]
    for theirs_name, ours_name in pairs:
        with (h5py.File(CAFFE_REF / theirs_name, "r") as theirs,
              h5py.File(tmp_path / ours_name, "r") as ours):
            names: list[str] = []
            theirs.visit(names.append)
            ours_names: list[str] = []
            ours.visit(ours_names.append)
            assert sorted(ours_names) == sorted(names)
            for name in names:
                a, b = theirs[name], ours[name]
                assert type(a) is type(b), name
                if isinstance(a, h5py.Dataset) and name != "learned_net":
                    assert (b.dtype, b.shape) == (a.dtype, a.shape), name
                    np.testing.assert_array_equal(b[()], a[()])
    with (h5py.File(CAFFE_REF / "solver_SGD_h5_iter_10.solverstate.h5", "r") as theirs,
          h5py.File(tmp_path / "mine_iter_10.solverstate.h5", "r") as ours):
        for name in ("iter", "current_step"):
            assert ours[name].shape == theirs[name].shape == (1,)
        a, b = theirs["learned_net"], ours["learned_net"]
        assert b.shape == a.shape == () and b.dtype.kind == a.dtype.kind == "S"
        assert h5py.check_string_dtype(b.dtype).length is not None  # not variable-length
        for t in (a.id.get_type(), b.id.get_type()):
            assert t.get_strpad() == h5py.h5t.STR_NULLTERM and not t.is_variable_str()
        value = os.fsencode(tmp_path / "mine_iter_10.caffemodel.h5")
        assert b[()] == value and b.dtype.itemsize == len(value) + 1
        assert a.dtype.itemsize == len(a[()]) + 1  # Caffe's: the path and its NUL
    # And the project's own files restore to the same state.
    again = Solver(CAFFE_REF / "solver_SGD_h5.prototxt")
    again.restore(tmp_path / "mine_iter_10.solverstate.h5")
    assert again.iter == 10
    for a, b in zip(again.history, solver.history, strict=True):
        np.testing.assert_array_equal(a, b)
    for name, blobs in solver.net.params.items():
        for a, b in zip(again.net.params[name], blobs, strict=True):
            np.testing.assert_array_equal(a.data, b.data)


def test_solver_mode_gpu_written_out_is_said_not_silent(tmp_path, caplog):
    from caffeonspark.solver import _say_where_it_runs

    caplog.set_level("WARNING", logger="caffeonspark")
    param = caffe_pb2.SolverParameter()
    _say_where_it_runs(param, "s.prototxt")  # Caffe's default (GPU) left implicit: nothing
    assert caplog.text == ""
    param.solver_mode = caffe_pb2.SolverParameter.GPU
    _say_where_it_runs(param, "s.prototxt")
    assert "s.prototxt: solver_mode: GPU, but this build of caffeonspark has no CUDA" in caplog.text
