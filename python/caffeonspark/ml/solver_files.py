"""The solver and net a Spark ML stage runs: the user's solver with its net resolved (or
replaced by the stage's `net`), base_lr / max_iter overridden, written as two prototxt files
in a folder of the stage's own, the solver naming the net by absolute path (so that a net of
the same name in the working directory never wins).

    solver_path, net_path = write_solver(folder, "lenet_solver.prototxt", net=None,
                                         base_lr=0.01, max_iter=50)
    save_solver(folder, solver_path)  # solver.prototxt naming "net.prototxt" beside it

Tests: tests/ml/test_solver_files.py.
"""

from __future__ import annotations

import os

from caffeonspark import model_io
from caffeonspark.errors import ConfigError
from caffeonspark.proto import caffe_pb2
from caffeonspark.spark.config import Config, local_path_of

__all__ = ["SOLVER_FILE", "NET_FILE", "write_solver", "save_solver"]

SOLVER_FILE = "solver.prototxt"
NET_FILE = "net.prototxt"


def _existing(path: str, param: str, owner: str) -> str:
    local = local_path_of(path, param) if path.startswith("file:") else path
    if not os.path.isfile(local):
        raise ConfigError(f"{owner}: param {param} names '{path}', which is not a file")
    return os.path.abspath(local)


def write_solver(
    folder: str,
    solver: str,
    net: str | None = None,
    base_lr: float | None = None,
    max_iter: int | None = None,
    owner: str = "CaffeEstimator",
) -> tuple[str, str]:
    """(solver, net) paths of the stage's copies in `folder` (see the module docstring)."""
    solver = _existing(solver, "solver", owner)
    conf = Config(conf=solver)  # no mode: reads the solver and its net, checks nothing else
    param = caffe_pb2.SolverParameter()
    param.CopyFrom(conf.solver_param)
    if net is not None:
        net_param = model_io.read_net_prototxt(_existing(net, "net", owner))
    else:
        net_param = conf.net_param
    param.ClearField("net_param")
    net_path = os.path.join(folder, NET_FILE)
    param.net = net_path
    if base_lr is not None:
        param.base_lr = float(base_lr)
    if max_iter is not None:
        param.max_iter = int(max_iter)
    model_io.write_prototxt(net_path, net_param)
    solver_path = os.path.join(folder, SOLVER_FILE)
    model_io.write_prototxt(solver_path, param)
    return solver_path, net_path


def save_solver(folder: str, solver: str) -> None:
    """Copies of a stage's solver and net in `folder`, the solver naming its net
    "net.prototxt" (beside it, however the folder is moved)."""
    param = model_io.read_solver_prototxt(solver)
    net_param = model_io.read_net_prototxt(param.net)
    param.net = NET_FILE
    model_io.write_prototxt(os.path.join(folder, NET_FILE), net_param)
    model_io.write_prototxt(os.path.join(folder, SOLVER_FILE), param)
