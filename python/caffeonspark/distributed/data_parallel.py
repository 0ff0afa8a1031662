"""Data-parallel training of one solver over a Communicator (the engine's DataParallel).

    comm = connect(rank, world_size, all_gather, secret, job_id)
    solver = Solver(path, edit=lambda p: rank_solver_edit(p, rank))
    sync = DataParallel(solver, comm)          # rank 0's weights (and history) everywhere
    solver.solve()                             # gradients averaged over the ranks
    sync.detach(); comm.close()

(run.py run_data_parallel is those steps with the error handling, as the ranks run them.)

Caffe's multi-GPU rule (docs/CAFFE.md §4.3): gradients summed over the ranks then scaled by
1/P before the update, so P ranks of batch b step like one rank of batch P*b. Gradients go
in buckets in reverse layer order (first bucket small, later ones capped), each reduced on
a communication thread as soon as backward has finished it. Parameters with lr_mult 0
(BatchNorm statistics) stay per rank. Rank 0 displays, tests and snapshots; the others
train only (rank_solver_edit). check_params compares a SHA-256 of the parameters across
ranks after every update (a debug option: CommError on any difference).
Tests: tests/distributed/test_data_parallel.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from caffeonspark._native import _engine
from caffeonspark.distributed.comm import Communicator
from caffeonspark.proto import caffe_pb2

__all__ = ["DataParallelOptions", "DataParallel", "rank_solver_edit"]


_NATIVE_DEFAULTS = _engine.DataParallelOptions()


@dataclasses.dataclass
class DataParallelOptions:
    """Gradient bucketing; the same fields as the engine's struct, whose defaults these are
    (cpp/solver/data_parallel.h)."""

    first_bucket_bytes: int = _NATIVE_DEFAULTS.first_bucket_bytes
    bucket_bytes: int = _NATIVE_DEFAULTS.bucket_bytes
    check_params: bool = _NATIVE_DEFAULTS.check_params

    def native(self) -> Any:
        """These settings as the engine's DataParallelOptions."""
        options = _engine.DataParallelOptions()
        for field in dataclasses.fields(self):
            kind = type(getattr(options, field.name))  # int() / bool() the value, as before
            setattr(options, field.name, kind(getattr(self, field.name)))
        return options


def rank_solver_edit(param: caffe_pb2.SolverParameter, rank: int) -> None:
    """What differs between ranks: ranks > 0 neither display, test nor snapshot, and a set
    random_seed is offset by the rank (dropout masks and crops differ per rank; the weights
    come from rank 0 anyway)."""
    if param.random_seed >= 0 and rank > 0:
        param.random_seed += rank
    if rank == 0:
        return
    param.display = 0
    param.test_interval = 0
    param.ClearField("test_iter")
    param.ClearField("test_net")
    param.ClearField("test_net_param")
    param.ClearField("test_state")
    param.snapshot = 0
    param.snapshot_after_train = False


class DataParallel:
    """Attaches a solver to a communicator; construction broadcasts rank 0's state."""

    def __init__(
        self, solver: Any, comm: Communicator, options: DataParallelOptions | None = None
    ) -> None:
        self.options = options or DataParallelOptions()
        self._solver = solver
        self.comm = comm
        self._native = _engine.DataParallel(solver.native, comm.native, self.options.native())
        self._native.broadcast_state(list(solver.native.history))

    @property
    def buckets(self) -> list[dict[str, Any]]:
        """The bucket plan: learnable parameter ids, float count, ready layer."""
        return list(self._native.buckets)

    @property
    def stats(self) -> dict[str, float]:
        """iterations, comm_seconds (reducing), wait_seconds (the update waiting: the part of
        communication not hidden behind backward), check_seconds."""
        return dict(self._native.stats)

    @property
    def timeline(self) -> list[tuple[float, float]]:
        """(backward ended, all buckets reduced) for the recent iterations (at most 1024), in
        seconds of time.monotonic()'s clock, which every process of a machine shares."""
        return [tuple(entry) for entry in self._native.timeline]

    def detach(self) -> None:
        """Stop reducing: the solver trains alone again; the comm thread ends."""
        self._native.detach(self._solver.native)
