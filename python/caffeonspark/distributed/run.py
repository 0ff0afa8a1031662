"""One rank's data-parallel training run, the same for the local launcher's ranks
(worker.py train_rank) and Spark's barrier tasks (spark/seam.py train_rank_on_ring):

    stats = run_data_parallel(solver, comm, options)   # to max_iter, comm closed after

attach DataParallel (rank 0's state broadcast), solve, detach, close the communicator; on
any error the solver is detached and the ring aborted with the error before it propagates,
so the other ranks fail at once naming this rank instead of waiting for a timeout.
`aborting_ring(comm)` is that error rule alone, for a rank's work before the run (building
the solver, restoring weights).
Tests: tests/distributed/test_run.py, tests/distributed/test_launcher.py,
tests/spark/test_spark.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from caffeonspark.distributed.comm import Communicator
from caffeonspark.distributed.data_parallel import DataParallel, DataParallelOptions

__all__ = ["aborting_ring", "run_data_parallel"]


@contextlib.contextmanager
def aborting_ring(comm: Communicator) -> Iterator[Communicator]:
    """Any error inside aborts the ring with "Type: message", then propagates (the ring is
    not closed on success: the run goes on)."""
    try:
        yield comm
    except BaseException as error:
        comm.abort(f"{type(error).__name__}: {error}")
        raise


def run_data_parallel(
    solver: Any,
    comm: Communicator,
    options: DataParallelOptions | None = None,
    on_attached: Callable[[DataParallel], None] | None = None,
) -> dict[str, float]:
    """Train `solver` to max_iter with gradients averaged over the ring, then close `comm`;
    returns DataParallel.stats (iterations, comm_seconds, wait_seconds, check_seconds).
    `on_attached(sync)` sees the DataParallel before training (e.g. a TensorBoardLogger
    reading its stats at display iterations)."""
    with aborting_ring(comm):
        sync = DataParallel(solver, comm, options)
        try:
            if on_attached is not None:
                on_attached(sync)
            solver.solve()
        finally:
            sync.detach()
        stats = sync.stats
    comm.close()
    return stats
