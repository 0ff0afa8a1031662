"""One rank of a locally launched job (`python -m caffeonspark.distributed.worker`).

The launcher (launcher.py) starts one such process per rank with the job in its
environment: CAFFEONSPARK_RANK, _WORLD_SIZE, _RENDEZVOUS (the launcher's address list
server), _JOB_ID, _JOB_SECRET (hex), _COMM_TIMEOUT, _SOLVER, optional _WEIGHTS / _SNAPSHOT,
_THREADS, _CHECK_PARAMS, _RESIZE, _ENCRYPT_RING, _TENSORBOARD (a folder: rank 0 writes
TensorBoard event files there), _STATUS_DIR and _LAUNCHER_PID. The rank reads
its own shard of every TRAIN data layer (Data layers: record index % world_size == rank,
Caffe's rule; source-fed MemoryData layers: data/shard_rule.py, the rule Spark's tasks
follow too), joins the ring (encrypted with _ENCRYPT_RING=1: train -encrypt_ring),
takes rank 0's weights, trains (run.py run_data_parallel, as Spark's tasks do); rank 0
alone displays, tests and snapshots. On exit it writes <status dir>/rank<r>.json:
{"ok": true} or {"error": class name, "message": text}, and exits 0, or 1 on any error
(after telling the other ranks through the ring).

`train_rank(...)` is the same thing as a function, for drivers that start ranks their own
way and exchange addresses through any `all_gather`.
Tests: tests/distributed/test_launcher.py, tests/distributed/test_data_parallel.py,
tests/viz/test_tensorboard_ranks.py.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from caffeonspark.atomic_file import atomic_write
from caffeonspark.distributed.comm import CommOptions, connect
from caffeonspark.distributed.data_parallel import DataParallelOptions, rank_solver_edit
from caffeonspark.distributed.run import aborting_ring, run_data_parallel

__all__ = ["train_rank", "main"]

log = logging.getLogger("caffeonspark")


def train_rank(
    solver_path: str,
    rank: int,
    world_size: int,
    all_gather: Callable[[str], Sequence[str]],
    secret: bytes,
    job_id: str,
    *,
    weights: str | None = None,
    snapshot: str | None = None,
    comm_options: CommOptions | None = None,
    options: DataParallelOptions | None = None,
    host: str = "127.0.0.1",
    resize: bool = False,
    tensorboard: str | None = None,
) -> Any:
    """Trains rank `rank` of the job to max_iter; returns its Solver. `resize`: source images
    are resized to their MemoryData layer's size (-resize); `tensorboard`: rank 0 writes
    TensorBoard event files to this folder (with the allreduce tags)."""
    from caffeonspark import model_io
    from caffeonspark.data.shard_rule import rank_feed_options
    from caffeonspark.solver import Solver

    comm = connect(rank, world_size, all_gather, secret, job_id, host=host, options=comm_options)
    with aborting_ring(comm):  # a rank that cannot start fails the others at once
        # The shuffles follow the solver's own seed, before rank_solver_edit offsets it.
        seed = model_io.read_solver_prototxt(solver_path).random_seed
        feed = rank_feed_options(seed, rank, world_size, presharded=False, resize=resize)
        solver = Solver(solver_path, edit=lambda param: rank_solver_edit(param, rank), feed=feed)
        if weights:
            for path in weights.split(","):
                solver.net.copy_from(path)
        if snapshot:
            solver.restore(snapshot)  # every rank: iter, history and its data position
    logger = None
    if tensorboard and rank == 0:
        from caffeonspark.viz.tensorboard import TensorBoardLogger

        logger = TensorBoardLogger(solver, tensorboard, world_size=world_size)
    try:
        stats = run_data_parallel(
            solver, comm, options, logger.attach_data_parallel if logger else None
        )
    finally:
        if logger is not None:
            logger.close()
    if stats["iterations"]:
        log.info(
            "rank %d: %d iterations, %.3f s reducing, %.3f s waiting for reductions "
            "(%.0f%% of communication hidden behind backward)",
            rank,
            stats["iterations"],
            stats["comm_seconds"],
            stats["wait_seconds"],
            100 * max(0.0, 1 - stats["wait_seconds"] / max(stats["comm_seconds"], 1e-12)),
        )
    return solver


def _die_with_parent(parent_pid: int) -> None:
    """Linux: SIGKILL this process when the launcher dies (no orphans)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the launcher died before prctl took effect
        os._exit(1)


def _write_status(folder: str, rank: int, status: dict[str, Any]) -> None:
    if not folder:
        return
    with atomic_write(os.path.join(folder, f"rank{rank}.json"), "w") as handle:
        json.dump(dict(status, rank=rank), handle)


def main() -> int:
    env = os.environ
    rank = int(env["CAFFEONSPARK_RANK"])
    world_size = int(env["CAFFEONSPARK_WORLD_SIZE"])
    if env.get("CAFFEONSPARK_LAUNCHER_PID"):
        _die_with_parent(int(env["CAFFEONSPARK_LAUNCHER_PID"]))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s [rank {rank}] %(message)s",
        datefmt="%H:%M:%S",
    )
    status_dir = env.get("CAFFEONSPARK_STATUS_DIR", "")
    from caffeonspark import engine
    from caffeonspark.distributed.rendezvous import LocalRendezvous

    if env.get("CAFFEONSPARK_THREADS"):
        engine.set_num_threads(int(env["CAFFEONSPARK_THREADS"]))
    # Out of the environment once read: processes this rank starts, and code that reads
    # os.environ, never see it (/proc/<pid>/environ keeps the original, readable only by us).
    secret = bytes.fromhex(env.pop("CAFFEONSPARK_JOB_SECRET"))
    timeout = float(env.get("CAFFEONSPARK_COMM_TIMEOUT", "60"))
    rendezvous = LocalRendezvous(env["CAFFEONSPARK_RENDEZVOUS"], rank, secret, timeout)
    try:
        train_rank(
            env["CAFFEONSPARK_SOLVER"],
            rank,
            world_size,
            rendezvous.all_gather,
            secret,
            env["CAFFEONSPARK_JOB_ID"],
            weights=env.get("CAFFEONSPARK_WEIGHTS") or None,
            snapshot=env.get("CAFFEONSPARK_SNAPSHOT") or None,
            comm_options=CommOptions(
                timeout=timeout, encrypt=env.get("CAFFEONSPARK_ENCRYPT_RING") == "1"
            ),
            options=DataParallelOptions(check_params=env.get("CAFFEONSPARK_CHECK_PARAMS") == "1"),
            resize=env.get("CAFFEONSPARK_RESIZE") == "1",
            tensorboard=env.get("CAFFEONSPARK_TENSORBOARD") or None,
        )
    except Exception as error:  # reported to the launcher, which exits with the first one
        log.error("%s: %s", type(error).__name__, error)
        _write_status(status_dir, rank, {"error": type(error).__name__, "message": str(error)})
        return 1
    _write_status(status_dir, rank, {"ok": True})
    return 0


if __name__ == "__main__":
    sys.exit(main())
