"""Every net and solver of Caffe's own examples and model zoo (shared/anchors/caffe) builds,
unmodified except for its data sources (redirected to small generated data by
anchor_data.py), in each phase it declares, and runs forward and backward; every solver
trains, tests, snapshots and restores."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from anchor_data import declared_states, redirect_layers, redirected_net

from caffeonspark import engine, model_io
from caffeonspark._native import _engine
from caffeonspark.proto import caffe_pb2

SHARED_CAFFE = Path(__file__).resolve().parents[2] / ".." / "shared" / "anchors" / "caffe"


def _fixture_names(kind: str) -> list[str]:
    """Fixture file names, listed at collection time (an empty list where shared/ is absent:
    the `anchors` fixture then skips the tests that need it)."""
    if not SHARED_CAFFE.is_dir():
        return ["(shared/anchors absent)"]
    names = sorted(p.name for p in SHARED_CAFFE.glob("*.prototxt"))
    solvers = [n for n in names if "solver" in n]
    return solvers if kind == "solver" else [n for n in names if n not in solvers]


NETS = _fixture_names("net")
SOLVERS = _fixture_names("solver")
# Nets whose Python layers import a module from tests/net/pymodules (pycaffe's examples ship
# theirs beside the net; ours are written here).
PYTHON_MODULES = Path(__file__).resolve().parent / "pymodules"


def test_the_catalogue_is_complete(anchors):
    """The 60 prototxt files of the fixture folder: every one is a net or a solver here."""
    prototxts = sorted(p.name for p in (anchors / "caffe").glob("*.prototxt"))
    assert len(prototxts) == 60 and sorted(NETS + SOLVERS) == prototxts
    assert len(SOLVERS) == 25


@pytest.mark.parametrize("name", NETS)
def test_every_type_resolves(anchors, name):
    net = model_io.read_net_prototxt(anchors / "caffe" / name)
    missing = {layer.type for layer in net.layer} - set(_engine.layer_types())
    assert not missing, f"{name} uses types the engine lacks: {sorted(missing)}"


def _forward_backward(net: engine.Net, seed: int) -> None:
    outputs = net.forward()
    for name, value in outputs.items():
        assert np.all(np.isfinite(value)), name
    rng = np.random.default_rng(seed)
    for name in net.outputs:  # a deploy net's outputs get a random top diff
        blob = net.blobs[name]
        if blob.data.size > 1:
            blob.diff[...] = rng.normal(size=blob.shape)
    net.backward()
    touched = 0
    for layer, blobs in net.params.items():
        for blob in blobs:
            assert np.all(np.isfinite(blob.diff)), layer
            touched += bool(np.any(blob.diff))
    assert touched or not net.params, "backward reached no parameter"


def _first_input_to_batch(net: engine.Net, batch: int) -> None:
    """Reshape a deploy net's Input tops (or a data layer's) to `batch`: every layer follows."""
    for top in net._top_names(0):
        blob = net.blobs[top]
        blob.reshape(batch, *blob.shape[1:])
    net.reshape()


@pytest.mark.parametrize("name", NETS)
def test_anchor_net_runs_forward_and_backward_in_each_declared_phase(
        anchors, tmp_path, monkeypatch, name):
    monkeypatch.syspath_prepend(str(PYTHON_MODULES))
    proto = redirected_net(anchors / "caffe" / name, tmp_path)
    proto.force_backward = True
    is_deploy = not any(layer.type in ("Data", "ImageData", "HDF5Data", "WindowData",
                                       "DummyData") for layer in proto.layer)
    for phase, stages in declared_states(proto):
        engine.set_random_seed(1)
        net = engine.Net(proto, phase=phase, stages=stages)
        try:
            if is_deploy:
                _first_input_to_batch(net, 1)
                for top in net._top_names(0):
                    net.blobs[top].data[...] = np.random.default_rng(2).normal(
                        size=net.blobs[top].shape)
            _forward_backward(net, seed=phase)
        finally:
            net.close()


def _source_paths(anchors: Path) -> dict[str, str]:
    """Original repository path -> fixture name, from SOURCES.txt."""
    mapping = {}
    for line in (anchors / "caffe" / "SOURCES.txt").read_text().splitlines():
        match = re.match(r"(\S+) <- \S+ (\S+)", line)
        if match:
            mapping[match.group(2)] = match.group(1)
    return mapping


@pytest.mark.parametrize("name", SOLVERS)
def test_anchor_solver_trains_tests_snapshots_and_restores(anchors, tmp_path, name):
    from caffeonspark.solver import Solver

    param = model_io.read_solver_prototxt(anchors / "caffe" / name)
    if param.net:
        fixture = _source_paths(anchors)[param.net]
        param.ClearField("net")
        param.net_param.CopyFrom(redirected_net(anchors / "caffe" / fixture, tmp_path))
    else:  # nets written inline in the solver
        for net in [param.net_param, param.train_net_param, *param.test_net_param]:
            redirect_layers(net, name, tmp_path)
    param.snapshot_prefix = str(tmp_path / "snap")
    param.test_iter[:] = [1] * max(len(param.test_iter), 1)
    param.test_interval = 2
    param.display = 1
    param.solver_mode = caffe_pb2.SolverParameter.CPU
    engine.set_random_seed(1)
    solver = Solver(param)
    solver.step(3)
    assert solver.iter == 3
    assert np.isfinite(solver.smoothed_loss)
    assert solver.test_results, "the test net ran at iterations 0 and 2"
    state = solver.snapshot()
    restored = Solver(param)
    restored.restore(state)
    assert restored.iter == 3
