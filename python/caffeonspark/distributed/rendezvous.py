"""The local rendezvous: how ranks started on one machine learn each other's addresses.

The launcher runs a RendezvousServer; each rank binds its comm listener, then calls
`LocalRendezvous(server_address, rank, secret).all_gather(my_address)`, which sends
{"rank", "address", "pid", "mac"} (mac = HMAC-SHA256(secret, "rank|address|pid")) as one
JSON line and receives every rank's address, in rank order, once all have arrived.
Connections that are not proper JSON, claim a rank twice, or carry a wrong mac are dropped
and the wait goes on. The server also learns each rank's pid.

Spark does not need this: BarrierTaskContext.allGather is its rendezvous (comm.connect
takes any all_gather function). Tests: tests/distributed/test_launcher.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import selectors
import socket
import threading
import time
from typing import Any

from caffeonspark.errors import CommError, PeerTimeout

__all__ = ["RendezvousServer", "LocalRendezvous"]

_MAX_LINE = 4096


def _mac(secret: bytes, rank: int, address: str, pid: int) -> str:
    return hmac.new(secret, f"{rank}|{address}|{pid}".encode(), hashlib.sha256).hexdigest()


class RendezvousServer:
    """Collects world_size (rank, address) pairs, then tells every rank all addresses."""

    def __init__(self, world_size: int, secret: bytes, host: str = "127.0.0.1") -> None:
        self.world_size = int(world_size)
        self._secret = secret
        self._socket = socket.create_server((host, 0))
        self.address = f"{host}:{self._socket.getsockname()[1]}"
        self.pids: dict[int, int] = {}
        self.addresses: dict[int, str] = {}
        self.rejected: list[str] = []
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()

    def start(self, timeout: float) -> RendezvousServer:
        self._thread = threading.Thread(
            target=self._serve, args=(timeout,), name="caffeonspark-rendezvous", daemon=True
        )
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """True once every rank got the address list."""
        return self._done.wait(timeout) and self.error is None

    def close(self) -> None:
        self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(5)
        for s in (self._socket, self._wake_r, self._wake_w):
            s.close()

    def _serve(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        selector = selectors.DefaultSelector()
        selector.register(self._socket, selectors.EVENT_READ, "accept")
        selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        pending: dict[socket.socket, bytes] = {}
        joined: dict[int, socket.socket] = {}
        try:
            while len(joined) < self.world_size:
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sorted(set(range(self.world_size)) - set(joined))
                    raise PeerTimeout(
                        f"rendezvous at {self.address}: rank(s) {missing} did not report within "
                        f"{timeout:g} s" + (f"; rejected: {self.rejected}" if self.rejected else "")
                    )
                for key, _ in selector.select(left):
                    if key.data == "wake":
                        return
                    if key.data == "accept":
                        conn, _ = self._socket.accept()
                        conn.setblocking(False)
                        pending[conn] = b""
                        selector.register(conn, selectors.EVENT_READ, "read")
                        continue
                    conn = key.fileobj
                    chunk = conn.recv(_MAX_LINE)
                    data = pending.get(conn, b"") + chunk
                    if not chunk or len(data) > _MAX_LINE:
                        self._drop(selector, pending, conn, "closed or too long")
                        continue
                    if b"\n" not in data:
                        pending[conn] = data
                        continue
                    rank = self._admit(data.split(b"\n", 1)[0], joined)
                    if rank is None:
                        self._drop(selector, pending, conn, data[:80].decode(errors="replace"))
                        continue
                    selector.unregister(conn)
                    del pending[conn]
                    joined[rank] = conn
            reply = json.dumps({"addresses": [self.addresses[r] for r in range(self.world_size)]})
            for conn in joined.values():
                conn.setblocking(True)
                conn.sendall(reply.encode() + b"\n")
        except BaseException as error:  # reported to the launcher through .error
            self.error = error
        finally:
            for conn in list(pending) + list(joined.values()):
                conn.close()
            selector.close()
            self._done.set()

    def _drop(self, selector: Any, pending: dict, conn: socket.socket, why: str) -> None:
        self.rejected.append(why)
        selector.unregister(conn)
        pending.pop(conn, None)
        conn.close()

    def _admit(self, line: bytes, joined: dict[int, socket.socket]) -> int | None:
        try:
            message = json.loads(line)
            rank, address, pid = int(message["rank"]), str(message["address"]), int(message["pid"])
            mac = str(message["mac"])
        except (ValueError, KeyError, TypeError):
            return None
        if not 0 <= rank < self.world_size or rank in joined:
            return None
        if not hmac.compare_digest(mac, _mac(self._secret, rank, address, pid)):
            return None
        self.addresses[rank] = address
        self.pids[rank] = pid
        return rank


class LocalRendezvous:
    """A rank's side of the RendezvousServer: `all_gather(address)` for comm.connect."""

    def __init__(self, server: str, rank: int, secret: bytes, timeout: float = 60.0) -> None:
        self.server = server
        self.rank = int(rank)
        self._secret = secret
        self.timeout = float(timeout)

    def all_gather(self, address: str) -> list[str]:
        import os

        host, port = self.server.rsplit(":", 1)
        pid = os.getpid()
        message = {
            "rank": self.rank,
            "address": address,
            "pid": pid,
            "mac": _mac(self._secret, self.rank, address, pid),
        }
        try:
            with socket.create_connection((host, int(port)), timeout=self.timeout) as conn:
                conn.sendall(json.dumps(message).encode() + b"\n")
                reply = conn.makefile("rb").readline(1 << 20)
        except OSError as error:
            raise CommError(
                f"rank {self.rank}: rendezvous at {self.server} failed: {error}"
            ) from None
        if not reply:
            raise CommError(
                f"rank {self.rank}: rendezvous at {self.server} closed without an answer"
            )
        return [str(a) for a in json.loads(reply)["addresses"]]
