"""The local rendezvous: how ranks started on one machine learn each other's addresses.

The launcher runs a RendezvousServer; each rank binds its comm listener, then calls
`LocalRendezvous(server_address, rank, secret).all_gather(my_address)`, which sends
{"rank", "address", "pid", "mac"} (mac = HMAC-SHA256(secret, "rank|address|pid")) as one
JSON line and receives every rank's address, in rank order, once all have arrived.
Connections that are not proper JSON, claim a rank twice, carry a wrong mac, reset, or do
not complete their hello in time are dropped and the wait goes on (hello_gate.HelloGate
bounds how many are kept waiting, and backs off when file descriptors run out). The server
also learns each rank's pid; if it fails, start(on_error=) tells the launcher at once.

Spark does not need this: BarrierTaskContext.allGather is its rendezvous (comm.connect
takes any all_gather function).
Tests: tests/distributed/test_launcher.py, tests/hostile/test_rendezvous_hostile.py,
tests/distributed/test_hello_gate.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

from caffeonspark.distributed.hello_gate import HELLO_BYTES, MAX_WAITING, HelloGate, Waiting, listen
from caffeonspark.distributed.peer_text import quote
from caffeonspark.errors import CommError, PeerTimeout

__all__ = ["RendezvousServer", "LocalRendezvous"]


def _mac(secret: bytes, rank: int, address: str, pid: int) -> str:
    return hmac.new(secret, f"{rank}|{address}|{pid}".encode(), hashlib.sha256).hexdigest()


class RendezvousServer:
    """Collects world_size (rank, address) pairs, then tells every rank all addresses.

    A hostile or broken client costs only its own connection: a reset, a bad hello or a
    hello not complete within `hello_timeout` s drops that connection, and the wait goes
    on. At most MAX_PENDING connections wait for their hello; beyond that the oldest one
    (once it has had its grace) is closed, so idle connections cannot lock ranks out.
    Running out of file descriptors pauses accepting for a moment (logged once)."""

    MAX_PENDING = MAX_WAITING
    KEEP_REJECTED = 20

    def __init__(self, world_size: int, secret: bytes, host: str = "127.0.0.1",
                 hello_timeout: float = 10.0) -> None:
        self.world_size = int(world_size)
        self._secret = secret
        self._socket = listen(host)
        self.address = f"{host}:{self._socket.getsockname()[1]}"
        self.pids: dict[int, int] = {}
        self.addresses: dict[int, str] = {}
        self.rejected: deque[str] = deque(maxlen=self.KEEP_REJECTED)  # the latest reasons
        self.rejected_count = 0
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_error: Callable[[BaseException], None] | None = None
        self._selector = selectors.DefaultSelector()
        self._gate: HelloGate[Waiting] = HelloGate(
            self._socket, self._selector, f"rendezvous at {self.address}", Waiting,
            lambda _, why: self._reject(why), hello_seconds=hello_timeout,
            max_waiting=self.MAX_PENDING,
        )
        self._joined: dict[int, socket.socket] = {}

    def start(self, timeout: float,
              on_error: Callable[[BaseException], None] | None = None) -> RendezvousServer:
        """Serves for at most `timeout` s; `on_error(error)` is called (on the server's
        thread) if the server fails, so a launcher need not wait for its ranks' timeouts."""
        self._on_error = on_error
        self._thread = threading.Thread(
            target=self._serve, args=(timeout,), name="caffeonspark-rendezvous", daemon=True
        )
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """True once every rank got the address list."""
        return self._done.wait(timeout) and self.error is None

    def close(self) -> None:
        self._gate.wake()
        if self._thread is not None:
            self._thread.join(5)
        self._gate.close()

    def _serve(self, timeout: float) -> None:
        try:
            if self._gather(time.monotonic() + timeout, timeout):
                self._reply()
        except BaseException as error:  # reported to the launcher through .error
            self.error = error
            if self._on_error is not None:
                self._on_error(error)
        finally:
            for pending in self._gate:
                self._gate.end(pending)
            for conn in self._joined.values():
                conn.close()
            self._selector.close()
            self._done.set()

    def _gather(self, deadline: float, timeout: float) -> bool:
        """Admits ranks until all have joined (True) or close() was called (False)."""
        while len(self._joined) < self.world_size:
            now = time.monotonic()
            if now >= deadline:
                missing = sorted(set(range(self.world_size)) - set(self._joined))
                raise PeerTimeout(
                    f"rendezvous at {self.address}: rank(s) {missing} did not report within "
                    f"{timeout:g} s" + self._rejected_note()
                )
            for pending in self._gate.serve(min(deadline, self._gate.expire(now))):
                self._read(pending)
            if self._gate.woken:
                return False
        return True

    def _read(self, pending: Waiting) -> None:
        try:
            chunk = pending.sock.recv(HELLO_BYTES)
        except BlockingIOError:
            return
        except OSError as error:  # a reset: that client is gone
            self._gate.refuse(pending, f"connection failed: {error}")
            return
        data = pending.buffer + chunk
        if not chunk or len(data) > HELLO_BYTES:
            self._gate.refuse(pending, "closed or too long: " + quote(data))
            return
        if b"\n" not in data:
            pending.buffer = data
            return
        rank = self._admit(data.split(b"\n", 1)[0])
        if rank is None:
            self._gate.refuse(pending, "bad hello: " + quote(data))
            return
        self._gate.admit(pending)
        self._selector.unregister(pending.sock)
        self._joined[rank] = pending.sock

    def _reply(self) -> None:
        reply = json.dumps({"addresses": [self.addresses[r] for r in range(self.world_size)]})
        for rank, conn in self._joined.items():
            try:
                conn.settimeout(5.0)  # the reply fits a socket buffer; a dead rank must not hang us
                conn.sendall(reply.encode() + b"\n")
            except OSError as error:  # that rank is gone; the others learn it from the ring
                self._reject(f"rank {rank}: reply failed: {error}")

    def _reject(self, why: str) -> None:
        self.rejected.append(why)
        self.rejected_count += 1

    def _rejected_note(self) -> str:
        if not self.rejected_count:
            return ""
        return f"; {self.rejected_count} connection(s) rejected, latest: {list(self.rejected)}"

    def _admit(self, line: bytes) -> int | None:
        try:
            message = json.loads(line)
            rank, address, pid = int(message["rank"]), str(message["address"]), int(message["pid"])
            mac = str(message["mac"])
        except (ValueError, KeyError, TypeError):
            return None
        if not 0 <= rank < self.world_size or rank in self._joined:
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
