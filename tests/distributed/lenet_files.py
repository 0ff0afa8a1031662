"""LeNet solver files for the distributed tests, on the digits LMDB of conftest.py's
`digits` fixture."""

from __future__ import annotations

from pathlib import Path

from caffeonspark import model_io
from caffeonspark.proto import caffe_pb2

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mnist"


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
