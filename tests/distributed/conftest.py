"""Fixtures for tests/distributed: a small generated-digits LMDB and LeNet solver files whose
ranks run as separate processes (the local launcher)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import caffeonspark
from caffeonspark import model_io
from caffeonspark.data.convert_mnist import prepare_mnist_lmdb
from caffeonspark.proto import caffe_pb2

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mnist"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "comm"))  # ranks.py
# The caffeonspark under test (checkout python/ in development, site-packages after
# `pip install`): rank processes must import the same one.
PYTHON_DIR = Path(caffeonspark.__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    return prepare_mnist_lmdb(tmp_path_factory.mktemp("digits"), n_train=1024, n_test=200)


@pytest.fixture(autouse=True)
def worker_pythonpath(monkeypatch):
    """Rank processes import the caffeonspark under test."""
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(PYTHON_DIR), path]))


def write_lenet(folder: Path, digits, batch: int, max_iter: int, **solver_fields) -> Path:
    """LeNet (no dropout in it) on the digits LMDB with train batch `batch`; returns the
    solver path. Test net batch 100 over the test LMDB; snapshots under folder/snap."""
    folder.mkdir(parents=True, exist_ok=True)
    net = model_io.read_net_prototxt(EXAMPLES / "lenet_train_test.prototxt")
    for layer in net.layer:
        if layer.type == "Data":
            train = layer.include[0].phase == caffe_pb2.TRAIN
            layer.data_param.source = str(digits.train if train else digits.test)
            if train:
                layer.data_param.batch_size = batch
    net_path = folder / "lenet_train_test.prototxt"
    model_io.write_prototxt(net_path, net)
    solver = model_io.read_solver_prototxt(EXAMPLES / "lenet_solver.prototxt")
    solver.net = str(net_path)
    solver.max_iter = max_iter
    solver.test_interval = 0
    solver.display = 0
    solver.snapshot = 0
    solver.snapshot_prefix = str(folder / "snap" / "lenet")
    (folder / "snap").mkdir(exist_ok=True)
    for key, value in solver_fields.items():
        if isinstance(value, list):
            solver.ClearField(key)
            getattr(solver, key).extend(value)
        else:
            setattr(solver, key, value)
    solver_path = folder / "solver.prototxt"
    model_io.write_prototxt(solver_path, solver)
    return solver_path
