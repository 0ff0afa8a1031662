"""The driver console without Spark (spark/console.py, spark/reporter.py): a rank's client
streams log records to the driver's listener, which logs them rank-prefixed at their level
and keeps the last lines; a wrong token is refused; progress is a live line on a TTY and a
log line otherwise; the client never blocks (unreachable driver, full queue); failure()
names the ranks from Spark's message and the ranks' own reports, with their last lines.
The same over a real Spark stage: tests/spark/test_fault.py."""

from __future__ import annotations

import io
import json
import logging
import socket
import time

import pytest

from caffeonspark.spark import reporter
from caffeonspark.spark.console import KEEP_LINES, DriverConsole, RankFailure
from caffeonspark.spark.reporter import ConsoleClient, IterationMeter


@pytest.fixture
def console():
    stream = io.StringIO()
    server = DriverConsole("127.0.0.1", "127.0.0.1", stream=stream, tty=False)
    yield server
    server.close()


def rank_logger(client: ConsoleClient) -> logging.Logger:
    logger = logging.getLogger(f"test.console.rank{client.rank}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.handlers[:] = [client]
    return logger


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_rank_lines_reach_the_driver_logger(console, caplog):
    caplog.set_level(logging.INFO, logger="caffeonspark")
    client = ConsoleClient(console.address, console.token, rank=1)
    logger = rank_logger(client)
    logger.info("Iteration %d, loss = %s", 20, "0.5")
    logger.warning("two\nlines")
    try:
        raise ValueError("bad value")
    except ValueError:
        logger.exception("it failed")
    client.close()
    console.drain()
    records = [r for r in caplog.records if r.name == "caffeonspark.rank"]
    assert [r.getMessage() for r in records[:2]] == [
        "[rank 1] Iteration 20, loss = 0.5", "[rank 1] two\nlines"
    ]
    assert [r.levelno for r in records] == [logging.INFO, logging.WARNING, logging.ERROR]
    assert all(r.rank == 1 for r in records)
    assert "ValueError: bad value" in records[2].getMessage()
    lines = console.last_lines(1)
    assert lines[:3] == ["Iteration 20, loss = 0.5", "two", "lines"]
    assert lines[-1] == "ValueError: bad value"


def test_keeps_the_last_lines_per_rank(console):
    client = ConsoleClient(console.address, console.token, rank=0)
    logger = rank_logger(client)
    for i in range(KEEP_LINES + 30):
        logger.info("line %d", i)
    client.close()
    console.drain()
    assert console.last_lines(0) == [f"line {i}" for i in range(30, KEEP_LINES + 30)]
    assert console.last_lines(3) == []
    retried = ConsoleClient(console.address, console.token, rank=0)  # the next attempt
    rank_logger(retried).info("attempt 1")
    retried.close()
    console.drain()
    assert console.last_lines(0) == ["attempt 1"]


def hung_up(sock: socket.socket) -> bool:
    """The driver closed the connection: an orderly end of stream, or a reset when it closed
    with our unread lines still in its buffer (both happen, depending on timing)."""
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_wrong_token_is_refused(console, caplog):
    caplog.set_level(logging.INFO, logger="caffeonspark")
    host, port = console.address.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(json.dumps({"token": "0" * 32, "rank": 0}).encode() + b"\n")
        log = {"t": "log", "level": logging.INFO, "msg": "intruder", "time": 0}
        sock.sendall(json.dumps(log).encode() + b"\n")
        assert hung_up(sock)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"not json\n")
        assert hung_up(sock)
    wait_for(lambda: console.refused == 2)
    assert console.last_lines(0) == []
    assert "intruder" not in caplog.text
    assert "console: refused a connection from 127.0.0.1" in caplog.text


def test_progress_is_a_live_line_on_a_tty():
    stream = io.StringIO()
    server = DriverConsole("127.0.0.1", "127.0.0.1", stream=stream, tty=True)
    try:
        client = ConsoleClient(server.address, server.token, rank=0)
        client.send("progress", iter=40, max_iter=100, loss=0.25, images_per_second=1234.4,
                    eta=3725.0)
        rank_logger(client).info("a line")  # clears the live line first
        client.close()
        server.drain()
    finally:
        server.close()
    assert stream.getvalue() == (
        "\riteration 40/100, loss 0.25, 1234 images/s, ETA 1:02:05\x1b[K\r\x1b[K"
    )
    assert server.progress[0]["iter"] == 40


def test_progress_is_logged_without_a_tty(console, caplog):
    caplog.set_level(logging.INFO, logger="caffeonspark")
    client = ConsoleClient(console.address, console.token, rank=0)
    client.send("progress", iter=5, max_iter=10, loss=1.5, images_per_second=99.6, eta=12.0)
    client.close()
    console.drain()
    assert "progress: iteration 5/10, loss 1.5, 100 images/s, ETA 0:00:12" in caplog.text


def test_client_never_blocks(capfd):
    # Nobody listens: the rank says so once on stderr and drops its lines.
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{free.getsockname()[1]}"
    client = ConsoleClient(address, "x" * 32, rank=2)
    logger = rank_logger(client)
    started = time.perf_counter()
    for i in range(10 * reporter.QUEUE_RECORDS):
        logger.info("line %d", i)
    assert time.perf_counter() - started < 5
    client.close()
    assert "caffeonspark rank 2: cannot reach the driver console" in capfd.readouterr().err
    # A driver that does not read: the queue fills, records are dropped, emit returns.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        client = ConsoleClient(f"127.0.0.1:{silent.getsockname()[1]}", "x" * 32, rank=3)
        logger = rank_logger(client)
        started = time.perf_counter()
        for _ in range(50_000):
            logger.info("%s", "x" * 200)
        assert time.perf_counter() - started < 10
        assert client.dropped > 0
        client.close(timeout=0.5)


def connect(console, rank: int, lines: list[str], *records: dict) -> None:
    """One attempt of `rank`: its log lines, then `records` (none: it crashed)."""
    client = ConsoleClient(console.address, console.token, rank=rank)
    logger = rank_logger(client)
    for line in lines:
        logger.info(line)
    for record in records:
        client.send(**record)
    client.close()
    console.drain()


SPARK_ERROR = (
    "Job aborted due to stage failure: ShuffleMapStage 4 (collect) has failed the maximum "
    "allowable number of times: 4. Most recent failure reason: Stage failed because barrier "
    "task ShuffleMapTask(4, {}) finished unsuccessfully.\nPython worker exited"
)


def test_failure_names_the_crashed_rank_first(console):
    # Rank 1 crashes in attempt 0 and 1; rank 0's CommError follows; attempt 0's own
    # errors are forgotten; rank 2 finished.
    connect(console, 0, ["old"], {"kind": "failed", "msg": "ValueError: old attempt"})
    connect(console, 1, ["rank 1, attempt 0"])
    connect(console, 0, ["rank 0 trains"],
            {"kind": "failed", "msg": "CommError: rank 1 broke the connection", "comm": True})
    connect(console, 1, ["rank 1 trains", "rank 1 dies"])
    connect(console, 2, ["rank 2 trains"], {"kind": "done"})
    spark_error = RuntimeError(SPARK_ERROR.format(0))  # Spark saw rank 0's failure first
    failure = console.failure(spark_error)
    assert isinstance(failure, RankFailure)
    assert failure.ranks == [1, 0]
    assert failure.last_lines == {1: ["rank 1 trains", "rank 1 dies"], 0: ["rank 0 trains"]}
    text = str(failure)
    assert text.startswith("training failed on rank(s) 1, 0 (Spark gave up retrying")
    assert ("rank 1 ended without a result (its process died, or Spark killed it after another"
            " rank failed)\n--- rank 1, last 2 line(s) ---\nrank 1 trains\nrank 1 dies\n") in text
    assert "rank 0 failed because a peer did: CommError: rank 1 broke the connection" in text
    assert "old attempt" not in text and "rank 2" not in text
    assert text.endswith("--- Spark's cause ---\n" + str(spark_error))


def test_failure_puts_a_rank_s_own_error_before_a_silent_rank(console):
    connect(console, 0, ["rank 0 trains"])  # killed by Spark without a word
    connect(console, 1, ["rank 1 trains"], {"kind": "failed", "msg": "RuntimeError: boom"})
    failure = console.failure(RuntimeError(SPARK_ERROR.format(1)))
    assert failure.ranks == [1, 0]
    assert "rank 1 failed: RuntimeError: boom" in str(failure)
    # Spark names a rank the console never heard from.
    empty = DriverConsole("127.0.0.1", "127.0.0.1", stream=io.StringIO(), tty=False)
    try:
        failure = empty.failure(RuntimeError(SPARK_ERROR.format(3)))
    finally:
        empty.close()
    assert failure.ranks == [3] and "(nothing received from this rank)" in str(failure)


class FakeSolver:
    def __init__(self, display: int = 0, max_iter: int = 100) -> None:
        self.iter = 0
        self.smoothed_loss = 2.0
        self.param = type("P", (), {"display": display, "max_iter": max_iter})()


class Sent:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def send(self, kind, **fields):
        self.records.append({"t": kind, **fields})


def test_iteration_meter(monkeypatch):
    clock = iter(float(t) for t in range(1000))
    monkeypatch.setattr(reporter.time, "perf_counter", lambda: next(clock) * 0.5)
    solver, sent = FakeSolver(display=4, max_iter=20), Sent()
    meter = IterationMeter(solver, 0, images_per_iteration=64, world_size=2, client=sent)
    for it in range(10):  # each iteration takes 0.5 s
        solver.iter = it
        meter.on_start()
    meter.finish()
    # steady state: iterations 3..9 (after WARMUP), 64 images each per 0.5 s
    assert meter.images_per_second == pytest.approx(128.0)
    assert meter.first_iteration_time is not None
    assert [r["iter"] for r in sent.records] == [4, 8]
    assert sent.records[1] == {"t": "progress", "iter": 8, "max_iter": 20, "loss": 2.0,
                               "images_per_second": 256.0, "eta": 6.0}
    few = IterationMeter(FakeSolver(), 1, 64, 2, client=sent)
    few.on_start()
    few.finish()
    assert few.images_per_second is None and few.first_iteration_time is not None
