"""HelloGate on its own (distributed/hello_gate.py): the hello deadline counts from accept,
the oldest waiting connection is evicted at the cap once it has had its grace, accepts pause
while full, ready connections are served before a new one is accepted, and an accept out of
descriptors backs off (logged once) while a failed client's accept does not. Times passed to
expire() are chosen, not waited for."""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from caffeonspark.distributed.hello_gate import HelloGate, Waiting, listen

Refused = list[tuple[Waiting, str]]


class FailingListener:
    """A real listener whose accept() raises the errnos queued in `errors` first."""

    def __init__(self) -> None:
        self.real = listen("127.0.0.1")
        self.errors: list[int] = []

    def fileno(self) -> int:
        return self.real.fileno()

    def accept(self) -> tuple[socket.socket, object]:
        if self.errors:
            code = self.errors.pop(0)
            raise OSError(code, os.strerror(code))
        return self.real.accept()

    def getsockname(self) -> tuple:
        return self.real.getsockname()

    def close(self) -> None:
        self.real.close()


@pytest.fixture
def make_gate() -> Iterator[Callable[..., tuple[HelloGate[Waiting], Refused, tuple]]]:
    """make_gate(listener=None, **options) -> (gate, refused, address): a gate on 127.0.0.1
    whose refusals are recorded in `refused`."""
    made: list[tuple[HelloGate[Waiting], selectors.BaseSelector]] = []

    def make(listener=None, **options) -> tuple[HelloGate[Waiting], Refused, tuple]:
        listener = listener or listen("127.0.0.1")
        selector = selectors.DefaultSelector()
        refused: Refused = []
        gate = HelloGate(listener, selector, "test gate", Waiting,
                         lambda conn, why: refused.append((conn, why)), **options)
        made.append((gate, selector))
        return gate, refused, listener.getsockname()[:2]

    yield make
    for gate, selector in made:
        for conn in gate:
            gate.end(conn)
        gate.close()
        selector.close()


@pytest.fixture
def connect() -> Iterator[Callable[[tuple], socket.socket]]:
    clients: list[socket.socket] = []

    def connect(address: tuple) -> socket.socket:
        clients.append(socket.create_connection(address, timeout=5))
        return clients[-1]

    yield connect
    for client in clients:
        client.close()


def accept(gate: HelloGate[Waiting], waiting: int) -> list[Waiting]:
    """Serves the gate (as its owner's loop would) until `waiting` connections wait."""
    deadline = time.monotonic() + 10
    while len(gate) < waiting:
        now = time.monotonic()
        assert now < deadline, "the gate did not accept"
        assert list(gate.serve(min(gate.expire(now), deadline))) == []
    return list(gate)


def test_the_hello_deadline_counts_from_accept(make_gate, connect):
    gate, refused, address = make_gate(hello_seconds=2.0)
    connect(address)
    [first] = accept(gate, 1)
    connect(address)
    second = accept(gate, 2)[1]
    assert gate.expire(first.accepted_at + 1.999) == first.accepted_at + 2.0
    assert refused == []
    # The first is refused at its own deadline; the later one is told to come back at its.
    assert gate.expire(first.accepted_at + 2.0) == second.accepted_at + 2.0
    assert refused == [(first, "no hello within 2 s")]
    assert first.sock.fileno() == -1 and list(gate) == [second]
    assert gate.expire(second.accepted_at + 2.0) == float("inf")
    assert [conn for conn, _ in refused] == [first, second] and len(gate) == 0


def test_at_the_cap_the_oldest_is_evicted_after_its_grace_and_accepts_pause(make_gate,
                                                                           connect):
    gate, refused, address = make_gate(max_waiting=2, grace_seconds=1.0)
    for _ in range(2):
        connect(address)
    first, second = accept(gate, 2)
    connect(address)  # a third, in the listen backlog
    assert gate.expire(first.accepted_at + 0.5) == first.accepted_at + 1.0  # in its grace
    assert refused == [] and not gate.accepting
    assert list(gate.serve(time.monotonic())) == [] and len(gate) == 2  # paused: not accepted
    assert gate.expire(first.accepted_at + 1.0) == first.accepted_at + 1.0  # look again now
    assert refused == [(first, "evicted: more than 2 connections without hello")]
    assert gate.accepting
    third = accept(gate, 2)[1]
    assert list(gate) == [second, third]  # oldest first: second is the next to go
    gate.expire(second.accepted_at + 1.0)
    assert [conn for conn, _ in refused] == [first, second]


def test_ready_connections_are_served_before_a_new_accept(make_gate, connect):
    gate, _, address = make_gate()
    connect(address).sendall(b"hello")
    connect(address)
    [first] = accept(gate, 1)
    seen: list[object] = []
    while len(gate) < 2:
        before = len(gate)
        for data in gate.serve(time.monotonic() + 5):
            assert len(gate) == before  # no accept yet in this round
            seen.append(data)
            first.buffer += first.sock.recv(64)
    assert seen == [first] and first.buffer == b"hello"


def test_out_of_descriptors_backs_off_logged_once(make_gate, connect, caplog):
    caplog.set_level(logging.WARNING, logger="caffeonspark")
    listener = FailingListener()
    gate, refused, address = make_gate(listener, grace_seconds=0.0, backoff_seconds=5.0)
    connect(address)
    [first] = accept(gate, 1)
    connect(address)  # waits in the backlog while accept fails
    listener.errors = [errno.EMFILE, errno.EMFILE]
    started = time.monotonic()
    assert list(gate.serve(started + 5)) == []
    failed = time.monotonic()
    assert refused == [(first, "evicted: more than 64 connections without hello")]  # freed
    wake = gate.expire(failed)
    assert started + 5 <= wake <= failed + 5 and not gate.accepting  # backing off
    assert gate.expire(wake) == float("inf") and gate.accepting
    assert list(gate.serve(time.monotonic() + 5)) == []  # the second EMFILE: back off again
    assert not listener.errors and len(gate) == 0
    assert gate.expire(time.monotonic()) > time.monotonic() and not gate.accepting
    warnings = [r.getMessage() for r in caplog.records if "cannot accept" in r.getMessage()]
    assert warnings == [f"test gate: cannot accept ([Errno {errno.EMFILE}] "
                        f"{os.strerror(errno.EMFILE)}); backing off and going on"]
    gate.expire(time.monotonic() + 5)  # the back-off is over
    assert list(gate.serve(time.monotonic() + 5)) == [] and len(gate) == 1  # accepted


def test_a_failed_client_is_not_a_reason_to_back_off(make_gate, connect, caplog):
    caplog.set_level(logging.WARNING, logger="caffeonspark")
    listener = FailingListener()
    gate, refused, address = make_gate(listener)
    connect(address)
    listener.errors = [errno.ECONNABORTED]
    gate.expire(time.monotonic())
    assert list(gate.serve(time.monotonic() + 5)) == [] and not listener.errors
    assert gate.expire(time.monotonic()) == float("inf") and gate.accepting
    assert refused == [] and "cannot accept" not in caplog.text


def test_wake_ends_serve(make_gate):
    gate, _, _ = make_gate()
    gate.wake()
    assert list(gate.serve(float("inf"))) == [] and gate.woken
