"""Caffe's own nets from shared/anchors load unmodified (only their data sources are
redirected to small LMDBs made here), reshape, and run forward and backward."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from caffeonspark import engine, model_io
from caffeonspark._native import _engine
from caffeonspark.data.convert_mnist import datum_bytes
from caffeonspark.data.lmdb_writer import write_lmdb
from caffeonspark.proto import caffe_pb2

# net file -> Datum shape (C, H, W) of its data source
ANCHOR_NETS = {
    "mnist_lenet_train_test.prototxt": (1, 28, 28),
    "cifar10_quick_train_test.prototxt": (3, 32, 32),
    "cifar10_full_train_test.prototxt": (3, 32, 32),
    "cifar10_full_sigmoid_train_test_bn.prototxt": (3, 32, 32),
    "siamese_mnist_siamese_train_test.prototxt": (2, 28, 28),
}


def make_lmdb(path: Path, shape: tuple[int, int, int], count: int = 40) -> Path:
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, size=(count, *shape), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count)
    write_lmdb(path, ((f"{i:08d}".encode(), datum_bytes(images[i], int(labels[i])))
                      for i in range(count)))
    return path


def redirected_net(anchors: Path, name: str, tmp_path: Path) -> caffe_pb2.NetParameter:
    shape = ANCHOR_NETS[name]
    net = model_io.read_net_prototxt(anchors / "caffe" / name)
    source = make_lmdb(tmp_path / "db", shape)
    mean = tmp_path / "mean.binaryproto"
    model_io.write_binaryproto(mean, np.full((1, *shape), 100.0, np.float32), legacy_4d=True)
    for layer in net.layer:
        if layer.type == "Data":
            layer.data_param.source = str(source)
            layer.data_param.backend = caffe_pb2.DataParameter.LMDB
            if layer.transform_param.mean_file:
                layer.transform_param.mean_file = str(mean)
    return net


@pytest.mark.parametrize("name", sorted(ANCHOR_NETS))
def test_every_type_resolves(anchors, name):
    net = model_io.read_net_prototxt(anchors / "caffe" / name)
    known = set(_engine.layer_types())
    missing = {layer.type for layer in net.layer} - known
    assert not missing, f"{name} uses types the engine lacks: {sorted(missing)}"


@pytest.mark.parametrize("phase", [caffe_pb2.TRAIN, caffe_pb2.TEST])
@pytest.mark.parametrize("name", sorted(ANCHOR_NETS))
def test_anchor_net_runs_forward_and_backward(anchors, tmp_path, name, phase):
    engine.set_random_seed(1)
    net = engine.Net(redirected_net(anchors, name, tmp_path), phase=phase)
    try:
        outputs = net.forward()
        assert outputs, "a net with a loss has outputs"
        for value in outputs.values():
            assert np.all(np.isfinite(value))
        net.backward()
        for layer, blobs in net.params.items():
            for blob in blobs:
                assert np.all(np.isfinite(blob.diff)), layer
        # Reshape the data layer's tops to a smaller batch: every layer follows.
        for top in net._top_names(0):
            blob = net.blobs[top]
            blob.reshape(2, *blob.shape[1:])
        net.reshape()
        assert net.blobs[net.outputs[0]].data is not None
    finally:
        net.close()


# solver file -> the anchor net its `net:` names
ANCHOR_SOLVERS = {
    "mnist_lenet_solver.prototxt": "mnist_lenet_train_test.prototxt",
    "mnist_lenet_solver_adam.prototxt": "mnist_lenet_train_test.prototxt",
    "mnist_lenet_solver_rmsprop.prototxt": "mnist_lenet_train_test.prototxt",
    "mnist_lenet_adadelta_solver.prototxt": "mnist_lenet_train_test.prototxt",
    "mnist_lenet_multistep_solver.prototxt": "mnist_lenet_train_test.prototxt",
    "legacy_enum_mnist_lenet_solver_adam.prototxt": "mnist_lenet_train_test.prototxt",
    "cifar10_quick_solver.prototxt": "cifar10_quick_train_test.prototxt",
    "cifar10_quick_solver_lr1.prototxt": "cifar10_quick_train_test.prototxt",
    "cifar10_full_solver.prototxt": "cifar10_full_train_test.prototxt",
    "siamese_mnist_siamese_solver.prototxt": "siamese_mnist_siamese_train_test.prototxt",
}


@pytest.mark.parametrize("name", sorted(ANCHOR_SOLVERS))
def test_anchor_solver_trains_and_tests(anchors, tmp_path, name):
    from caffeonspark.solver import Solver

    param = model_io.read_solver_prototxt(anchors / "caffe" / name)
    param.ClearField("net")
    param.net_param.CopyFrom(redirected_net(anchors, ANCHOR_SOLVERS[name], tmp_path))
    param.snapshot_prefix = str(tmp_path / "snap")
    param.test_iter[:] = [2]
    param.test_interval = 2
    param.display = 1
    solver = Solver(param)
    solver.step(3)
    assert solver.iter == 3
    assert np.isfinite(solver.smoothed_loss)
    assert solver.test_results, "the test net ran at iterations 0 and 2"
    state = solver.snapshot()
    restored = Solver(param)
    restored.restore(state)
    assert restored.iter == 3
