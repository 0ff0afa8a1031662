"""The one place the Spark driver meets the ring allreduce (caffeonspark.distributed).
Everything Spark-specific happens here; the allreduce side sees explicit addresses, a
bound listener and a secret, never Spark.

With -clusterSize > 1 each barrier task calls, with its built solver (data feed running,
-weights / -snapshot applied; snapshots and test nets only on rank 0):

    train_distributed(solver, ctx, world_size, connection, timeout, encrypt=False)

which runs `rendezvous(ctx)` and then `train_rank_on_ring(solver, rank=, world_size=,
addresses=, listener=, secret=, connection=, timeout=, encrypt=)`:
- `rendezvous(ctx)` binds this rank's listener, and every rank learns all "host:port"
  addresses (host as Spark knows the executor) and rank 0's random 32-byte secret through
  BarrierTaskContext.allGather (the coordinator's channel, inside Spark's own RPC; the
  secret is never part of the serialised task);
- `train_rank_on_ring` joins the ring (each connection proves the secret before any
  tensor is accepted; -connection infiniband runs it on UCX - RDMA - where every executor
  has an RDMA device, else on TCP, and rank 0 logs once which and why; -connection
  ethernet is TCP; with encrypt (-ringEncryption) every frame after that is sealed with
  AES-256-GCM, docs/SPARK.md "Security on the wire") and runs distributed/run.py run_data_parallel: every rank starts
  from rank 0's parameters and history, trains to max_iter with the gradients averaged
  over ranks (reduced in buckets during backward), and fails with CommError / PeerTimeout
  naming the peer. train_distributed closes the listener when that returns or fails.
Tests: tests/spark/test_spark.py (two barrier tasks training LeNet over the ring),
tests/spark/test_seam_transport.py (-connection),
tests/comm/ and tests/distributed/ (the allreduce itself).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import socket
from collections.abc import Callable
from typing import Any

__all__ = ["rendezvous", "train_distributed", "train_rank_on_ring"]

log = logging.getLogger("caffeonspark")


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
    encrypt: bool = False,
    on_attached: Callable[[Any], None] | None = None,
) -> None:
    """Join the TCP ring, take rank 0's state, train with gradients averaged over ranks
    (Caffe's multi-GPU rule) until max_iter; on_attached(sync): run_data_parallel's."""
    from caffeonspark.distributed.comm import CommOptions, Communicator
    from caffeonspark.distributed.run import run_data_parallel

    job_id = hashlib.sha256(b"caffeonspark job " + secret).hexdigest()[:16]
    options = CommOptions(timeout=timeout, encrypt=encrypt, transport=TRANSPORTS[connection])
    comm = Communicator(listener, rank, addresses, secret, job_id, options)
    if rank == 0:  # every rank chose the same transport: said once per job
        log.info("%s", transport_line(connection, comm.transport, comm.transport_note))
    run_data_parallel(solver, comm, on_attached=on_attached)


# -connection -> CommOptions.transport: infiniband is RDMA (UCX) where every executor has an
# RDMA device, the TCP ring otherwise; ethernet is the TCP ring.
TRANSPORTS = {"infiniband": "auto", "ethernet": "tcp"}


def transport_line(connection: str, transport: str, note: str) -> str:
    """The one log line saying what carries the gradients, and why when it is not RDMA."""
    line = f"-connection {connection}: the ring runs on {transport}"
    return f"{line} (RDMA not used: {note})" if note else line


def train_distributed(
    solver: Any,
    ctx: Any,
    world_size: int,
    connection: str,
    timeout: float,
    encrypt: bool = False,
    on_attached: Callable[[Any], None] | None = None,
) -> None:
    """Rendezvous, then train this rank's solver on the ring (train_rank_on_ring)."""
    addresses, listener, secret = rendezvous(ctx)
    try:
        train_rank_on_ring(
            solver,
            rank=ctx.partitionId(),
            world_size=world_size,
            addresses=addresses,
            listener=listener,
            secret=secret,
            connection=connection,
            timeout=timeout,
            encrypt=encrypt,
            on_attached=on_attached,
        )
    finally:
        listener.close()
