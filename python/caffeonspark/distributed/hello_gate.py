"""The door of a listener that must survive hostile peers: HelloGate accepts connections
on one selector thread and keeps those still waiting for their first message (the hello)
in check, so idle, slow or flooding clients cost only their own connections.

The server that owns the gate decides what a valid hello is and what follows it; the gate
owns the listening socket's registration, the connections waiting for a hello, their
deadline (counted from accept, in total), the cap on how many may wait (the oldest evicted
once it has had its grace), pausing accepts while full, and backing off when accept runs
out of descriptors or memory (logged once). Used by distributed/rendezvous.py and
spark/console.py.
Tests: tests/distributed/test_hello_gate.py, tests/hostile/test_rendezvous_hostile.py,
tests/hostile/test_console_hostile.py.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["HelloGate", "Waiting", "listen", "HELLO_SECONDS", "HELLO_BYTES", "MAX_WAITING",
           "GRACE_SECONDS", "BACKOFF_SECONDS"]

HELLO_SECONDS = 10.0  # from accept to a valid hello, in total
HELLO_BYTES = 4096  # the longest hello line
MAX_WAITING = 64  # connections waiting for their hello at once
GRACE_SECONDS = 0.5  # the least time a connection gets for its hello before eviction
BACKOFF_SECONDS = 0.1  # no accepts for this long after running out of descriptors
BACKLOG = 128

# accept failed for want of resources: retrying at once would spin, so back off.
_EXHAUSTED = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

log = logging.getLogger("caffeonspark")


def listen(host: str) -> socket.socket:
    """A non-blocking listening socket on `host`, port chosen by the system."""
    server = socket.create_server((host, 0), backlog=BACKLOG)
    server.setblocking(False)
    return server


class Waiting:
    """An accepted connection; the gate keeps it until admit() or end()."""

    __slots__ = ("sock", "peer", "accepted_at", "buffer")

    def __init__(self, sock: socket.socket, peer: Any, accepted_at: float) -> None:
        self.sock = sock
        self.peer = peer
        self.accepted_at = accepted_at
        self.buffer = b""  # bytes received and not yet understood


C = TypeVar("C", bound=Waiting)


class HelloGate(Generic[C]):
    """Accepts on `listener` through `selector` (shared with the owning server), registering
    each connection with the record `new(sock, peer, accepted_at)` as its selector data.

    The owner's loop is `for data in gate.serve(gate.expire(now)): ...`: expire() ends
    what is due and says when to look again, serve() waits until then and yields the
    selector data of every ready connection before it accepts a new one, so a flood of
    connects cannot starve hellos. `wake()` (any thread) ends serve() early and sets
    `woken`. `on_refuse(conn, why)` is told of every connection the gate refuses (already
    closed by then); the owner refuses through refuse(), admits a connection whose hello
    was valid through admit(), and closes any through end()."""

    def __init__(self, listener: socket.socket, selector: selectors.BaseSelector, name: str,
                 new: Callable[[socket.socket, Any, float], C],
                 on_refuse: Callable[[C, str], None], *, hello_seconds: float = HELLO_SECONDS,
                 max_waiting: int = MAX_WAITING, grace_seconds: float = GRACE_SECONDS,
                 backoff_seconds: float = BACKOFF_SECONDS) -> None:
        self.name = name  # for the log
        self.hello_seconds = float(hello_seconds)
        self.max_waiting = int(max_waiting)
        self.grace_seconds = float(grace_seconds)
        self.backoff_seconds = float(backoff_seconds)
        self.woken = False
        self._listener = listener
        self._selector = selector
        self._on_refuse = on_refuse
        self._new = new
        self._waiting: dict[socket.socket, C] = {}  # oldest first
        self._accepting = False
        self._backoff_until = 0.0
        self._warned = False
        self._wake_r, self._wake_w = socket.socketpair()
        selector.register(self._wake_r, selectors.EVENT_READ, self._wake_r)

    def __len__(self) -> int:
        """Connections waiting for their hello."""
        return len(self._waiting)

    def __iter__(self) -> Iterator[C]:
        return iter(list(self._waiting.values()))

    @property
    def accepting(self) -> bool:
        """Whether the listener is registered (not full, not backing off)."""
        return self._accepting

    def expire(self, now: float) -> float:
        """Refuses the connections whose hello deadline passed and, at the cap, the oldest
        once it has had its grace; listens unless full or backing off. Returns when to look
        again (inf: nothing due)."""
        wake_at = float("inf")
        for conn in list(self._waiting.values()):
            ends = conn.accepted_at + self.hello_seconds
            if ends > now:
                wake_at = ends  # the rest were accepted later
                break
            self.refuse(conn, f"no hello within {self.hello_seconds:g} s")
        if len(self._waiting) >= self.max_waiting:
            wake_at = min(wake_at, self._evict_oldest(now))
        backing_off = now < self._backoff_until
        self._listen(not backing_off and len(self._waiting) < self.max_waiting)
        return min(wake_at, self._backoff_until) if backing_off else wake_at

    def serve(self, until: float) -> Iterator[Any]:
        """Waits for events until `until` (monotonic; inf: no limit); yields each ready
        connection's selector data, then accepts one connection if one is ready. Ends at
        once on wake()."""
        timeout = None if until == float("inf") else max(0.0, until - time.monotonic())
        ready = False
        for key, _ in self._selector.select(timeout):
            if key.data is self._wake_r:
                self.woken = True
                return
            if key.data is self:
                ready = True
            else:
                yield key.data
        if ready:
            self._accept()

    def admit(self, conn: C) -> None:
        """`conn` sent a valid hello: no longer the gate's (still registered)."""
        del self._waiting[conn.sock]

    def refuse(self, conn: C, why: str) -> None:
        """Closes a waiting connection and tells on_refuse why."""
        self.end(conn)
        self._on_refuse(conn, why)

    def end(self, conn: C) -> None:
        """Closes a connection, waiting or admitted (once; then a no-op)."""
        if conn.sock.fileno() >= 0:
            self._selector.unregister(conn.sock)
            conn.sock.close()
        self._waiting.pop(conn.sock, None)

    def wake(self) -> None:
        """Ends the owner's serve() (from any thread)."""
        self._wake_w.send(b"x")

    def close(self) -> None:
        """Closes the listener and the wake-up pair (after the owner's loop ended)."""
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def _listen(self, on: bool) -> None:
        if on != self._accepting:
            if on:
                self._selector.register(self._listener, selectors.EVENT_READ, self)
            else:
                self._selector.unregister(self._listener)
            self._accepting = on

    def _evict_oldest(self, now: float) -> float:
        """Refuses the oldest waiting connection once it has had its grace; returns when
        to look again."""
        conn = next(iter(self._waiting.values()))
        if now - conn.accepted_at >= self.grace_seconds:
            self.refuse(conn, f"evicted: more than {self.max_waiting} connections without hello")
            return now
        return conn.accepted_at + self.grace_seconds

    def _accept(self) -> None:
        try:
            sock, peer = self._listener.accept()
        except BlockingIOError:
            return  # the client gave up between select and accept
        except OSError as error:
            if error.errno not in _EXHAUSTED:
                return  # that connection failed (ECONNABORTED, ...): not ours to end
            if not self._warned:
                self._warned = True
                log.warning("%s: cannot accept (%s); backing off and going on",
                            self.name, error)
            now = time.monotonic()
            if self._waiting:  # free a descriptor, once the oldest has had its grace
                self._evict_oldest(now)
            self._backoff_until = now + self.backoff_seconds
            return
        sock.setblocking(False)
        conn = self._new(sock, peer, time.monotonic())
        self._waiting[sock] = conn
        self._selector.register(sock, selectors.EVENT_READ, conn)
