"""The local rendezvous: how ranks started on one machine learn each other's addresses.

The launcher runs a RendezvousServer; each rank binds its comm listener, then calls
`LocalRendezvous(server_address, rank, secret).all_gather(my_address)`, which sends
{"rank", "address", "pid", "mac"} (mac = HMAC-SHA256(secret, "rank|address|pid")) as one
JSON line and receives every rank's address, in rank order, once all have arrived.
Connections that are not proper JSON, claim a rank twice, carry a wrong mac, reset, or do
not complete their hello in time are dropped and the wait goes on (RendezvousServer says how
many are kept waiting, and what happens when file descriptors run out). The server also
learns each rank's pid; if it fails, start(on_error=) tells the launcher at once.

Spark does not need this: BarrierTaskContext.allGather is its rendezvous (comm.connect
takes any all_gather function).
Tests: tests/distributed/test_launcher.py, tests/hostile/test_rendezvous_hostile.py.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

from caffeonspark.errors import CommError, PeerTimeout

__all__ = ["RendezvousServer", "LocalRendezvous"]

_MAX_LINE = 4096

log = logging.getLogger("caffeonspark")


def _mac(secret: bytes, rank: int, address: str, pid: int) -> str:
    return hmac.new(secret, f"{rank}|{address}|{pid}".encode(), hashlib.sha256).hexdigest()


class _Pending:
    """An accepted connection that has not yet sent a valid hello."""

    __slots__ = ("data", "accepted_at")

    def __init__(self, accepted_at: float) -> None:
        self.data = b""
        self.accepted_at = accepted_at


class RendezvousServer:
    """Collects world_size (rank, address) pairs, then tells every rank all addresses.

    A hostile or broken client costs only its own connection: a reset, a bad hello or a
    hello not complete within `hello_timeout` s drops that connection, and the wait goes
    on. At most MAX_PENDING connections wait for their hello; beyond that the oldest one
    (once it has had GRACE_SECONDS) is closed, so idle connections cannot lock ranks out.
    Running out of file descriptors pauses accepting for BACKOFF_SECONDS (logged once)."""

    MAX_PENDING = 64
    GRACE_SECONDS = 0.5
    BACKOFF_SECONDS = 0.1
    KEEP_REJECTED = 20

    def __init__(self, world_size: int, secret: bytes, host: str = "127.0.0.1",
                 hello_timeout: float = 10.0) -> None:
        self.world_size = int(world_size)
        self._secret = secret
        self._hello_timeout = float(hello_timeout)
        self._socket = socket.create_server((host, 0), backlog=128)
        self._socket.setblocking(False)
        self.address = f"{host}:{self._socket.getsockname()[1]}"
        self.pids: dict[int, int] = {}
        self.addresses: dict[int, str] = {}
        self.rejected: deque[str] = deque(maxlen=self.KEEP_REJECTED)  # the latest reasons
        self.rejected_count = 0
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_error: Callable[[BaseException], None] | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._listening = False
        self._pending: dict[socket.socket, _Pending] = {}  # oldest first
        self._joined: dict[int, socket.socket] = {}
        self._fd_warned = False

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
        self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(5)
        for s in (self._socket, self._wake_r, self._wake_w):
            s.close()

    def _serve(self, timeout: float) -> None:
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            if self._gather(time.monotonic() + timeout, timeout):
                self._reply()
        except BaseException as error:  # reported to the launcher through .error
            self.error = error
            if self._on_error is not None:
                self._on_error(error)
        finally:
            for conn in list(self._pending) + list(self._joined.values()):
                conn.close()
            self._selector.close()
            self._done.set()

    def _gather(self, deadline: float, timeout: float) -> bool:
        """Admits ranks until all have joined (True) or close() was called (False)."""
        backoff_until = 0.0
        while len(self._joined) < self.world_size:
            now = time.monotonic()
            if now >= deadline:
                missing = sorted(set(range(self.world_size)) - set(self._joined))
                raise PeerTimeout(
                    f"rendezvous at {self.address}: rank(s) {missing} did not report within "
                    f"{timeout:g} s" + self._rejected_note()
                )
            wake_at = min(deadline, self._expire(now))
            if len(self._pending) >= self.MAX_PENDING:
                wake_at = min(wake_at, self._evict_oldest(now))
            self._listen(now >= backoff_until and len(self._pending) < self.MAX_PENDING)
            if now < backoff_until:
                wake_at = min(wake_at, backoff_until)
            events = self._selector.select(max(0.0, wake_at - time.monotonic()))
            # Hellos before new connections: a flood of connects must not starve them.
            for key, _ in sorted(events, key=lambda e: e[0].data == "accept"):
                if key.data == "wake":
                    return False
                if key.data == "accept":
                    if not self._accept():
                        backoff_until = time.monotonic() + self.BACKOFF_SECONDS
                else:
                    self._read(key.fileobj)
        return True

    def _listen(self, on: bool) -> None:
        if on != self._listening:
            if on:
                self._selector.register(self._socket, selectors.EVENT_READ, "accept")
            else:
                self._selector.unregister(self._socket)
            self._listening = on

    def _expire(self, now: float) -> float:
        """Drops the connections whose hello deadline passed; returns the next deadline."""
        for conn, pending in list(self._pending.items()):
            ends = pending.accepted_at + self._hello_timeout
            if ends > now:
                return ends  # the rest were accepted later
            self._drop(conn, f"no hello within {self._hello_timeout:g} s")
        return float("inf")

    def _evict_oldest(self, now: float) -> float:
        """At the cap: closes the oldest pending connection once it has had its grace;
        returns when to look again."""
        conn, pending = next(iter(self._pending.items()))
        if now - pending.accepted_at >= self.GRACE_SECONDS:
            self._drop(conn, f"evicted: more than {self.MAX_PENDING} connections without hello")
            return now
        return pending.accepted_at + self.GRACE_SECONDS

    def _accept(self) -> bool:
        """Accepts one connection; False when out of file descriptors (back off)."""
        try:
            conn, _ = self._socket.accept()
        except BlockingIOError:
            return True  # the client gave up between select and accept
        except OSError as error:
            if error.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                return True  # that connection failed (ECONNABORTED, ...): not ours to end
            if not self._fd_warned:
                self._fd_warned = True
                log.warning("rendezvous at %s: cannot accept (%s); backing off and going on",
                            self.address, error)
            if self._pending:  # free a descriptor, once the oldest has had its grace
                self._evict_oldest(time.monotonic())
            return False
        conn.setblocking(False)
        self._pending[conn] = _Pending(time.monotonic())
        self._selector.register(conn, selectors.EVENT_READ, "read")
        return True

    def _read(self, conn: socket.socket) -> None:
        pending = self._pending.get(conn)
        if pending is None:
            return  # dropped earlier in this round
        try:
            chunk = conn.recv(_MAX_LINE)
        except BlockingIOError:
            return
        except OSError as error:  # a reset: that client is gone
            self._drop(conn, f"connection failed: {error}")
            return
        data = pending.data + chunk
        if not chunk or len(data) > _MAX_LINE:
            self._drop(conn, "closed or too long: " + repr(data[:80]))
            return
        if b"\n" not in data:
            pending.data = data
            return
        rank = self._admit(data.split(b"\n", 1)[0])
        if rank is None:
            self._drop(conn, "bad hello: " + repr(data[:80]))
            return
        self._selector.unregister(conn)
        del self._pending[conn]
        self._joined[rank] = conn

    def _reply(self) -> None:
        reply = json.dumps({"addresses": [self.addresses[r] for r in range(self.world_size)]})
        for rank, conn in self._joined.items():
            try:
                conn.settimeout(5.0)  # the reply fits a socket buffer; a dead rank must not hang us
                conn.sendall(reply.encode() + b"\n")
            except OSError as error:  # that rank is gone; the others learn it from the ring
                self._reject(f"rank {rank}: reply failed: {error}")

    def _drop(self, conn: socket.socket, why: str) -> None:
        self._reject(why)
        self._selector.unregister(conn)
        self._pending.pop(conn, None)
        conn.close()

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
