"""pycaffe's solvers: caffeonspark.solver's classes building their nets as caffe.Net.

get_solver(path) takes the type the file names; SGDSolver, NesterovSolver, AdaGradSolver,
RMSPropSolver, AdaDeltaSolver and AdamSolver run their own update rule whatever the file's
`type` says (as pycaffe's classes, each bound to one C++ solver class, do).

Tests: tests/caffe/test_net_api.py, tests/caffe/test_scripts.py.
"""

from __future__ import annotations

import os

from caffeonspark import solver as _solver
from caffeonspark.caffe.pycaffe import Net
from caffeonspark.proto import caffe_pb2


class Solver(_solver.Solver):
    """A solver whose `net` and `test_nets` are caffe.Net objects."""

    _net_class = Net


class SGDSolver(Solver):
    _forced_type = "SGD"


class NesterovSolver(Solver):
    _forced_type = "Nesterov"


class AdaGradSolver(Solver):
    _forced_type = "AdaGrad"


class RMSPropSolver(Solver):
    _forced_type = "RMSProp"


class AdaDeltaSolver(Solver):
    _forced_type = "AdaDelta"


class AdamSolver(Solver):
    _forced_type = "Adam"


def get_solver(path: str | os.PathLike[str] | caffe_pb2.SolverParameter) -> Solver:
    """The solver of the type the SolverParameter names (type, or legacy solver_type)."""
    return Solver(path)
