"""Hostile peers against the driver console (spark/console.py, distributed/peer_text.py): idle,
garbage and unauthenticated connections cost no threads and do not stop real ranks' lines; a
rank out of range is refused; escape sequences are stripped before logging; a bad record is
skipped and later records still arrive; refusals are logged once, then counted."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time

import pytest

from caffeonspark.spark import console as console_module
from caffeonspark.spark.console import DriverConsole
from caffeonspark.spark.reporter import ConsoleClient


@pytest.fixture
def console():
    server = DriverConsole("127.0.0.1", "127.0.0.1", stream=io.StringIO(), tty=False,
                           world_size=2)
    yield server
    server.close()


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def connect(console: DriverConsole) -> socket.socket:
    host, port = console.address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def send(sock: socket.socket, *records: dict) -> None:
    sock.sendall(b"".join(json.dumps(r).encode() + b"\n" for r in records))


def hello(console: DriverConsole, rank: int) -> socket.socket:
    sock = connect(console)
    send(sock, {"token": console.token, "rank": rank})
    return sock


def log_record(msg: str) -> dict:
    return {"t": "log", "level": logging.INFO, "msg": msg, "time": 0}


def test_a_flood_costs_no_threads_and_real_lines_arrive(console, caplog):
    caplog.set_level(logging.INFO, logger="caffeonspark")
    threads_before = threading.active_count()
    held = []
    try:
        for _ in range(200):
            idle = connect(console)
            garbage = connect(console)
            garbage.sendall(b"\x1b[2J\x00GET / HTTP/1.0\r\n" * 3)
            unauthenticated = connect(console)
            send(unauthenticated, {"token": "0" * 32, "rank": 0}, log_record("intruder"))
            half = connect(console)
            half.sendall(b'{"token": "' + console.token[:8].encode())
            held += [idle, garbage, unauthenticated, half]
        assert threading.active_count() <= threads_before
        for rank in range(2):
            client = ConsoleClient(console.address, console.token, rank=rank)
            client.send("log", level=logging.INFO, msg=f"real line from rank {rank}", time=0)
            client.close()
        wait_for(lambda: console.last_lines(0) == ["real line from rank 0"])
        wait_for(lambda: console.last_lines(1) == ["real line from rank 1"])
        assert threading.active_count() <= threads_before
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: console.refused >= 400)  # the garbage and the wrong tokens at least
    assert "intruder" not in caplog.text
    refusals = [r.getMessage() for r in caplog.records if "refused a connection" in r.getMessage()]
    assert len(refusals) == 1  # then only counted
    assert "\x1b" not in caplog.text and "\x00" not in caplog.text


def test_a_garbage_hello_is_quoted_escaped_and_short(console, caplog):
    caplog.set_level(logging.INFO, logger="caffeonspark")
    with connect(console) as sock:
        sock.sendall(b"\x1b[31m" + b"A" * 500 + b"\n")
        wait_for(lambda: console.refused == 1)
    message = next(r.getMessage() for r in caplog.records if "refused" in r.getMessage())
    assert "\x1b" not in message and "\\x1b[31m" in message
    assert "A" * 80 not in message and "..." in message


def test_a_rank_out_of_range_is_refused(console, caplog):
    caplog.set_level(logging.INFO, logger="caffeonspark")
    for rank in (2, -1, 10**12):
        with hello(console, rank) as sock:
            send(sock, log_record("out of range"))
    wait_for(lambda: console.refused == 3)
    assert "out of range (world size 2)" in caplog.text
    assert "[rank" not in caplog.text
    assert console.last_lines(2) == []


def test_escape_sequences_and_controls_are_stripped(console, caplog):
    caplog.set_level(logging.INFO, logger="caffeonspark")
    with hello(console, 0) as sock:
        send(sock, log_record("\x1b[31mred\x1b[0m\tand\x07 \x1b]0;title\x07bell\r\nnext"),
             {"t": "failed", "msg": "Error\x1b[2J: boom\x00"})
    wait_for(lambda: len(console.last_lines(0)) == 2)
    console.drain()  # the rank's connection has ended: its "failed" record was read
    records = [r for r in caplog.records if r.name == "caffeonspark.rank"]
    assert [r.getMessage() for r in records] == ["[rank 0] red\tand bell\nnext"]
    assert console.last_lines(0) == ["red\tand bell", "next"]
    assert "rank 0 failed: Error: boom" in str(console.failure(RuntimeError("spark")))


def test_a_bad_record_is_skipped_and_later_records_arrive(console, caplog):
    caplog.set_level(logging.INFO, logger="caffeonspark")
    with hello(console, 0) as sock:
        sock.sendall(b"not json\n")
        send(sock,
             {"t": "progress", "iter": 5, "max_iter": 10, "loss": 1.5, "eta": 1.0},  # no rate
             {"t": "progress", "iter": "x", "max_iter": 10, "loss": 1.5,
              "images_per_second": 1.0, "eta": 1.0},
             {"t": "log", "level": "high", "msg": "bad level"},
             {"no": "kind"},
             ["a", "list"],
             {"t": "progress", "iter": 6, "max_iter": 10, "loss": 1.0,
              "images_per_second": 2.0, "eta": 2.0},
             log_record("still here"))
    wait_for(lambda: console.last_lines(0) == ["still here"])
    assert console.bad_records == 6
    assert [p["iter"] for p in console.progress] == [6]
    assert console.last_lines(0) == ["still here"]
    assert "progress: iteration 6/10" in caplog.text
    skipped = [r for r in caplog.records if "skipped a bad record" in r.getMessage()]
    assert len(skipped) == 1


def test_the_hello_deadline_is_total(monkeypatch):
    """A peer trickling bytes is refused at the deadline, not kept alive by each byte."""
    monkeypatch.setattr(console_module, "HELLO_SECONDS", 1.0)
    server = DriverConsole("127.0.0.1", "127.0.0.1", stream=io.StringIO(), tty=False)
    try:
        with connect(server) as sock:
            started = time.monotonic()
            sock.settimeout(0.05)  # between bytes: long enough to see the server hang up
            try:
                while True:
                    assert time.monotonic() - started < 5, "the trickling peer was kept"
                    sock.sendall(b" ")
                    try:
                        if sock.recv(1) == b"":
                            break  # refused
                    except TimeoutError:
                        continue
            except OSError:
                pass  # refused: the connection was reset
        wait_for(lambda: server.refused == 1)
    finally:
        server.close()
