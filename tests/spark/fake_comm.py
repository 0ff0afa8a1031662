"""A stand-in for caffeonspark.distributed.train_rank (tests only; the real one is the ring
allreduce of branch `comm`). It checks what the Spark side hands over — one address per
rank, this rank's listener bound at its own address, the same secret on every rank (each
rank sends SHA-256(secret) to the next rank around the ring and checks what the previous one
sent), rank-0-only snapshots and test nets — then trains the rank alone, without allreduce.
Imported by the Spark workers (tests/spark is on their PYTHONPATH, see conftest.py)."""

from __future__ import annotations

import hashlib
import socket


class SeamError(RuntimeError):
    pass


def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = conn.recv(n - len(data))
        if not part:
            raise SeamError("peer closed early")
        data += part
    return data


def train_rank(solver, *, rank, world_size, addresses, listener, secret, connection, timeout):
    if len(addresses) != world_size or len(set(addresses)) != world_size:
        raise SeamError(f"rank {rank}: addresses {addresses} for {world_size} ranks")
    if listener.getsockname()[1] != int(addresses[rank].rsplit(":", 1)[1]):
        raise SeamError(f"rank {rank}: listener {listener.getsockname()} is not {addresses[rank]}")
    if len(secret) != 32 or connection != "ethernet":
        raise SeamError(f"rank {rank}: secret of {len(secret)} bytes, connection {connection}")
    if rank != 0 and (solver.param.snapshot or solver.param.snapshot_after_train):
        raise SeamError(f"rank {rank} would write snapshots")
    if solver.test_nets:
        raise SeamError(f"rank {rank} has test nets in train()")
    digest = hashlib.sha256(secret).digest()
    host, port = addresses[(rank + 1) % world_size].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as out:
        out.sendall(digest)
    listener.settimeout(timeout)
    conn, _ = listener.accept()
    with conn:
        if _recv_exactly(conn, len(digest)) != digest:
            raise SeamError(f"rank {rank}: the previous rank holds another secret")
    solver.solve()
