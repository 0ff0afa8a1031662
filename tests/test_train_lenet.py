"""End to end: Caffe's LeNet trained by the engine on the generated digit set (the README's
first command, shortened), and snapshot/resume repeating the uninterrupted run exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from caffeonspark import engine, model_io
from caffeonspark.data.convert_mnist import prepare_mnist_lmdb
from caffeonspark.proto import caffe_pb2
from caffeonspark.solver import Solver

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "mnist"


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    return prepare_mnist_lmdb(tmp_path_factory.mktemp("mnist"), n_train=60000, n_test=10000)


def lenet_solver(mnist, tmp_path: Path, **overrides) -> caffe_pb2.SolverParameter:
    param = model_io.read_solver_prototxt(EXAMPLES / "lenet_solver.prototxt")
    net = model_io.read_net_prototxt(EXAMPLES / "lenet_train_test.prototxt")
    for layer in net.layer:
        if layer.type == "Data":
            train = layer.include[0].phase == caffe_pb2.TRAIN
            layer.data_param.source = str(mnist.train if train else mnist.test)
    param.ClearField("net")
    param.net_param.CopyFrom(net)
    tmp_path.mkdir(parents=True, exist_ok=True)
    param.snapshot_prefix = str(tmp_path / "lenet")
    param.test_interval = 0
    param.display = 0
    for key, value in overrides.items():
        setattr(param, key, value)
    return param


def test_lenet_reaches_97_percent(mnist, tmp_path):
    engine.set_num_threads(2)
    solver = Solver(lenet_solver(mnist, tmp_path, max_iter=3000, snapshot=0,
                                 snapshot_after_train=False))
    solver.step(3000)
    accuracy = solver.test(0)["accuracy"][0]
    assert accuracy >= 0.97, f"LeNet test accuracy {accuracy:.4f} after 3000 iterations"


def run_losses(solver: Solver, iterations: int) -> list[float]:
    losses = []
    for _ in range(iterations):
        solver.step(1)
        losses.append(solver.native.last_loss)
    return losses


def test_resume_repeats_the_uninterrupted_run_bitwise(mnist, tmp_path):
    engine.set_num_threads(1)
    try:
        whole = Solver(lenet_solver(mnist, tmp_path / "a", snapshot=0))
        straight = run_losses(whole, 40)
        first = Solver(lenet_solver(mnist, tmp_path / "b", snapshot=0))
        run_losses(first, 20)
        state = first.snapshot()
        resumed = Solver(lenet_solver(mnist, tmp_path / "c", snapshot=0))
        resumed.restore(state)
        assert resumed.iter == 20
        continued = run_losses(resumed, 20)
        assert np.array_equal(np.array(straight[20:]), np.array(continued))
        for layer, blobs in whole.net.params.items():
            for mine, theirs in zip(blobs, resumed.net.params[layer], strict=True):
                assert np.array_equal(mine.data, theirs.data), layer
    finally:
        engine.set_num_threads(2)
