"""The one place the Spark driver meets the ring allreduce (caffeonspark.distributed).
Everything Spark-specific happens here; the allreduce side sees explicit addresses, a
bound listener and a secret, never Spark.

The contract the comm side implements (one function):

    caffeonspark.distributed.train_rank(
        solver,            # caffeonspark.solver.Solver of this rank, built, data feed running;
                           # -weights / -snapshot already applied; snapshots and test nets
                           # only on rank 0 (its SolverParameter says so)
        *,
        rank: int,         # = the barrier task's partition id
        world_size: int,   # = -clusterSize
        addresses: list[str],        # "host:port" of every rank, index = rank
        listener,                    # this rank's bound listener (distributed.comm.listen),
                                     # reachable at addresses[rank]
        secret: bytes,               # per-job random secret, the same on every rank
        connection: str,             # -connection: "ethernet" or "infiniband"
        timeout: float,              # seconds for the rendezvous and every blocking wait
    ) -> None
    # Connect the ring (each connection proves `secret` before any tensor is accepted),
    # make every rank start from rank 0's parameters, then run `solver` to max_iter with
    # the gradients summed over ranks before each update; return when done. Failures raise
    # caffeonspark.errors.CommError / PeerTimeout naming the peer's rank and address.

`train_rank_on_ring` below is that function over caffeonspark.distributed (Communicator +
DataParallel: gradient buckets reduced during backward, rank 0's state broadcast first).
`distributed_trainer(spec)` finds a trainer by "module:function" (default DEFAULT_TRAINER;
CaffeOnSpark(spark, trainer=...) names another); the driver resolves it before any stage
starts, each task again before training.
`rendezvous(ctx)` runs in the barrier task: it binds the listener, and every rank learns
all addresses and rank 0's secret through BarrierTaskContext.allGather (the coordinator's
channel, inside Spark's own RPC; the secret is never part of the serialised task).
Tests: tests/spark/test_spark.py (two barrier tasks training LeNet over the ring),
tests/comm/ and tests/distributed/ (the allreduce itself).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import secrets
import socket
from collections.abc import Callable
from typing import Any

__all__ = [
    "DEFAULT_TRAINER",
    "MISSING_ALLREDUCE",
    "distributed_trainer",
    "rendezvous",
    "train_distributed",
    "train_rank_on_ring",
]

log = logging.getLogger("caffeonspark")

DEFAULT_TRAINER = "caffeonspark.spark.seam:train_rank_on_ring"

MISSING_ALLREDUCE = (
    "-clusterSize > 1 needs the ring allreduce between engines (caffeonspark.distributed), "
    "which this installation lacks"
)


def distributed_trainer(spec: str = DEFAULT_TRAINER) -> Callable[..., None]:
    """The function `spec` ("module:function") names, or NotImplementedError saying what is
    missing (for the default, the allreduce of caffeonspark.distributed)."""
    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is None or not module_name.startswith(err.name):
            raise  # the module exists but something it imports does not
        if spec == DEFAULT_TRAINER:
            raise NotImplementedError(MISSING_ALLREDUCE) from None
        raise NotImplementedError(f"trainer '{spec}': no module '{module_name}'") from None
    trainer = getattr(module, name or "train_rank", None)
    if trainer is None:
        if spec == DEFAULT_TRAINER:
            raise NotImplementedError(MISSING_ALLREDUCE)
        raise NotImplementedError(f"trainer '{spec}': '{module_name}' has no '{name}'")
    return trainer


def _host(ctx: Any, rank: int) -> str:
    """This executor's host as Spark knows it (the address its peers can reach)."""
    address = ctx.getTaskInfos()[rank].address
    return address.rsplit(":", 1)[0] if address else socket.gethostname()


def rendezvous(ctx: Any) -> tuple[list[str], Any, bytes]:
    """(addresses by rank, this rank's bound listener, the job secret)."""
    from caffeonspark.distributed.comm import listen

    rank = ctx.partitionId()
    host = _host(ctx, rank)
    listener = listen("0.0.0.0", 0)
    try:
        port = int(listener.address.rsplit(":", 1)[1])
        message = {"rank": rank, "address": f"{host}:{port}"}
        if rank == 0:
            message["secret"] = secrets.token_hex(32)
        gathered = [json.loads(m) for m in ctx.allGather(json.dumps(message))]
    except BaseException:
        listener.close()
        raise
    by_rank = sorted(gathered, key=lambda m: m["rank"])
    addresses = [m["address"] for m in by_rank]
    secret = bytes.fromhex(by_rank[0]["secret"])
    return addresses, listener, secret


def train_rank_on_ring(
    solver: Any,
    *,
    rank: int,
    world_size: int,
    addresses: list[str],
    listener: Any,
    secret: bytes,
    connection: str,
    timeout: float,
) -> None:
    """The default trainer: join the TCP ring, take rank 0's state, train with gradients
    averaged over ranks (Caffe's multi-GPU rule) until max_iter."""
    from caffeonspark.distributed.comm import CommOptions, Communicator
    from caffeonspark.distributed.data_parallel import DataParallel

    if connection != "ethernet":
        log.warning("-connection %s: RDMA is not built; rank %d uses TCP", connection, rank)
    job_id = hashlib.sha256(b"caffeonspark job " + secret).hexdigest()[:16]
    comm = Communicator(listener, rank, addresses, secret, job_id, CommOptions(timeout=timeout))
    sync = None
    try:
        sync = DataParallel(solver, comm)
        solver.solve()
        sync.detach()
    except BaseException as error:
        if sync is not None:
            sync.detach()
        comm.abort(f"{type(error).__name__}: {error}")
        raise
    comm.close()


def train_distributed(
    solver: Any,
    ctx: Any,
    world_size: int,
    connection: str,
    timeout: float,
    trainer: str = DEFAULT_TRAINER,
) -> None:
    """Rendezvous, then hand the rank's solver to the trainer (train_rank)."""
    train_rank = distributed_trainer(trainer)
    addresses, listener, secret = rendezvous(ctx)
    try:
        train_rank(
            solver,
            rank=ctx.partitionId(),
            world_size=world_size,
            addresses=addresses,
            listener=listener,
            secret=secret,
            connection=connection,
            timeout=timeout,
        )
    finally:
        listener.close()
