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


def _with_caffe_nets(typed: type[_solver.Solver]) -> type[Solver]:
    """caffeonspark.solver's class of one update rule, building caffe.Net nets: the rule
    (`_forced_type`) has its one home there."""
    return type(typed.__name__, (Solver, typed), {"__doc__": typed.__doc__})


SGDSolver = _with_caffe_nets(_solver.SGDSolver)
NesterovSolver = _with_caffe_nets(_solver.NesterovSolver)
AdaGradSolver = _with_caffe_nets(_solver.AdaGradSolver)
RMSPropSolver = _with_caffe_nets(_solver.RMSPropSolver)
AdaDeltaSolver = _with_caffe_nets(_solver.AdaDeltaSolver)
AdamSolver = _with_caffe_nets(_solver.AdamSolver)


def get_solver(path: str | os.PathLike[str] | caffe_pb2.SolverParameter) -> Solver:
    """The solver of the type the SolverParameter names (type, or legacy solver_type)."""
    return Solver(path)
