"""The driver console (driver side): every training rank's log lines and rank 0's progress
reach the driver over TCP, and a failed stage becomes a RankFailure carrying the failed
ranks' last lines.

    with DriverConsole.open(spark) as console:       # listening on the driver host
        plan = ...(console=(console.address, console.token))
        try:
            df.mapInArrow(...).collect()
        except Exception as err:
            raise console.failure(err) from err

Executors' stderr stays on the executors on a real cluster, so each rank streams its
"caffeonspark" log records (reporter.ConsoleClient) to a listener the driver opens on
spark.driver.host (bound on spark.driver.bindAddress when set), port chosen by the system.
A connection's first line must carry the job's random token (in the task plan) and a rank
within the world size; any other connection is refused (logged once, then counted). One
selector thread serves every connection, so a flood of connections costs descriptors but
no threads, and what a peer sends is stripped of control characters before it is shown
(distributed/hello_gate.py bounds the connections waiting for a hello; DriverConsole says
how bad records are skipped). The driver logs each line on "caffeonspark.rank" as
"[rank r] message" at the rank's level, keeps the last KEEP_LINES of each rank's latest
connection (its latest attempt), and shows
progress records: one live line on a TTY, log lines otherwise. failure(spark_error) names
the failed ranks of the latest attempt, those that failed on their own first (from the
ranks' reports, the connections that ended without a result, and the partition in Spark's
"barrier task ...Task(stage, partition)"), with their last lines and Spark's message.
Tests: tests/spark/test_console.py, tests/hostile/test_console_hostile.py,
tests/distributed/test_hello_gate.py.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import selectors
import socket
import sys
import threading
import time
from collections import deque
from typing import Any, TextIO

from caffeonspark.distributed import hello_gate
from caffeonspark.distributed.hello_gate import HELLO_BYTES, HelloGate, Waiting, listen
from caffeonspark.distributed.peer_text import RateLimitedLog, clean, quote
from caffeonspark.errors import CaffeOnSparkError

__all__ = ["DriverConsole", "RankFailure", "KEEP_LINES"]

KEEP_LINES = 50
HELLO_SECONDS = hello_gate.HELLO_SECONDS  # read at construction (tests shorten it)
MAX_LINE = 1 << 20  # bytes; a longer line ends the connection
MAX_RANKS = 1 << 16  # the rank bound when the world size is not given

_PROGRESS = ("loss", "images_per_second", "eta")  # float fields; iter, max_iter are ints

log = logging.getLogger("caffeonspark")
rank_log = logging.getLogger("caffeonspark.rank")

_BARRIER_TASK = re.compile(r"barrier task \w*Task\((\d+), (\d+)\)")


class RankFailure(CaffeOnSparkError, RuntimeError):
    """Training failed: `.ranks` are the failed ranks, `.last_lines` {rank: [line, ...]},
    `.spark_message` Spark's own reason; the message holds all three."""

    def __init__(self, message: str, ranks: list[int], last_lines: dict[int, list[str]],
                 spark_message: str) -> None:
        super().__init__(message)
        self.ranks = ranks
        self.last_lines = last_lines
        self.spark_message = spark_message


class _Conn(Waiting):
    """One peer connection: once its hello was valid, its rank."""

    __slots__ = ("rank", "bad")

    def __init__(self, sock: socket.socket, peer: Any, accepted_at: float) -> None:
        super().__init__(sock, peer, accepted_at)
        self.rank: int | None = None
        self.bad = 0  # records skipped


class DriverConsole:
    """The listener; one selector thread serves every connection.

    A connection must send a valid hello within HELLO_SECONDS of being accepted (in total).
    At most hello_gate.MAX_WAITING connections wait for their hello; beyond that the oldest
    is closed once it has had its grace, so idle connections cannot lock ranks out. A
    refused connection is logged once with its first bytes quoted, then only counted. A
    record that is not valid JSON, lacks a key or has a wrong type is skipped and counted
    (`bad_records`); everything a peer sends is stripped of control characters before it
    is logged or shown."""

    def __init__(self, bind: str, host: str, stream: TextIO | None = None,
                 tty: bool | None = None, world_size: int | None = None) -> None:
        self.token = secrets.token_hex(16)
        self.world_size = world_size
        self._server = listen(bind)
        self.address = f"{host}:{self._server.getsockname()[1]}"
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._lines: dict[int, deque[str]] = {}
        # Each rank's latest connection (its latest attempt): "running", "done", "lost"
        # (ended without a result), or its error {"msg", "comm": failed because of a peer}.
        self._ends: dict[int, Any] = {}
        self._lock = threading.Condition()  # notified when a rank's connection ends
        self._open_ranks = 0  # authenticated connections still open
        self._live = False  # a progress line is on the terminal
        self.progress: deque[dict] = deque(maxlen=100)  # the latest progress records
        self._refusals = RateLimitedLog(log, "connection(s) refused (no valid hello)")
        self._bad = RateLimitedLog(log, "bad record(s) skipped")
        self._selector = selectors.DefaultSelector()
        self._gate: HelloGate[_Conn] = HelloGate(self._server, self._selector, "console",
                                                 _Conn, self._refused,
                                                 hello_seconds=HELLO_SECONDS)
        self._thread = threading.Thread(target=self._serve, name="caffeonspark-console",
                                        daemon=True)
        self._thread.start()

    @property
    def refused(self) -> int:
        """Connections refused so far (no valid hello in time, or evicted)."""
        return self._refusals.count

    @property
    def bad_records(self) -> int:
        return self._bad.count

    @classmethod
    def open(cls, spark: Any, **kwargs: Any) -> DriverConsole:
        """Listening on the driver's host as Spark knows it."""
        conf = spark.sparkContext.getConf()
        host = conf.get("spark.driver.host", None) or socket.gethostname()
        bind = conf.get("spark.driver.bindAddress", None) or host
        try:
            return cls(bind, host, **kwargs)
        except OSError:
            log.info("console: cannot bind %s; listening on every interface", bind)
            return cls("", host, **kwargs)

    def __enter__(self) -> DriverConsole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections ----------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while not self._gate.woken:  # until close()
                for conn in self._gate.serve(self._gate.expire(time.monotonic())):
                    self._read(conn)
        finally:
            for conn in [key.data for key in self._selector.get_map().values()]:
                if isinstance(conn, _Conn):
                    self._end(conn, None)
            self._selector.close()

    def _read(self, conn: _Conn) -> None:
        try:
            chunk = conn.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError as err:
            self._end(conn, err)
            return
        if not chunk:
            self._end(conn, None)
            return
        conn.buffer += chunk
        while conn.sock.fileno() >= 0 and b"\n" in conn.buffer:
            line, conn.buffer = conn.buffer.split(b"\n", 1)
            if conn.rank is None:
                self._hello(conn, line)
            else:
                self._record(conn, line)
        limit = HELLO_BYTES if conn.rank is None else MAX_LINE
        if conn.sock.fileno() >= 0 and len(conn.buffer) > limit:
            self._end(conn, ValueError(f"a line longer than {limit} bytes"))

    def _hello(self, conn: _Conn, line: bytes) -> None:
        try:
            hello = json.loads(line)
            token, rank = str(hello["token"]), int(hello["rank"])
        except (ValueError, KeyError, TypeError, IndexError):
            self._gate.refuse(conn, "not a hello: " + quote(line))
            return
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            self._gate.refuse(conn, "no valid token")
            return
        limit = self.world_size if self.world_size is not None else MAX_RANKS
        if not 0 <= rank < limit:
            self._gate.refuse(conn, f"rank {rank} out of range (world size {self.world_size})")
            return
        conn.rank = rank
        with self._lock:  # a new connection is the rank's next attempt
            self._gate.admit(conn)
            self._lines[rank] = deque(maxlen=KEEP_LINES)
            self._ends[rank] = "running"
            self._open_ranks += 1

    def _record(self, conn: _Conn, line: bytes) -> None:
        try:
            self._handle(conn.rank, json.loads(line))
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as err:
            conn.bad += 1
            self._bad.event("console: rank %d: skipped a bad record (%s: %s)", conn.rank,
                            type(err).__name__, clean(str(err), newlines=False)[:200])

    def _refused(self, conn: _Conn, why: str) -> None:
        self._refusals.event("console: refused a connection from %s:%s (%s)",
                             conn.peer[0], conn.peer[1], why)
        with self._lock:
            self._lock.notify_all()  # drain() waits for the waiting connections too

    def _end(self, conn: _Conn, err: BaseException | None) -> None:
        self._gate.end(conn)
        if conn.rank is None:
            with self._lock:
                self._lock.notify_all()
            return
        if err is not None:
            log.warning("console: rank %d's connection ended: %s", conn.rank, err)
        with self._lock:
            if self._ends.get(conn.rank) == "running":
                self._ends[conn.rank] = "lost"
            self._open_ranks -= 1
            self._lock.notify_all()

    def _handle(self, rank: int, record: dict) -> None:
        """One record; a missing key or wrong type raises (the record is then skipped)."""
        kind = record["t"]
        if kind == "log":
            text = clean(str(record["msg"]))
            level = min(max(int(record.get("level", logging.INFO)), logging.DEBUG),
                        logging.CRITICAL)
            when = record.get("time")
            with self._lock:
                self._lines[rank].extend(text.splitlines() or [""])
            self._clear_live()
            rank_log.log(level, "[rank %d] %s", rank, text,
                         extra={"rank": rank,
                                "rank_time": float(when) if when is not None else None})
        elif kind == "progress":
            progress = {key: float(record[key]) for key in _PROGRESS}
            progress.update(iter=int(record["iter"]), max_iter=int(record["max_iter"]))
            self._show_progress(progress)
            self.progress.append(progress)
        elif kind == "failed":
            with self._lock:
                self._ends[rank] = {"msg": clean(str(record.get("msg", ""))),
                                    "comm": bool(record.get("comm"))}
        elif kind == "done":
            with self._lock:
                self._ends[rank] = "done"

    # -- progress -------------------------------------------------------------------------

    def _show_progress(self, record: dict) -> None:
        eta = int(record["eta"])
        text = (
            f"iteration {record['iter']}/{record['max_iter']}, loss {record['loss']:.4g}, "
            f"{record['images_per_second']:.0f} images/s, ETA {eta // 3600}:"
            f"{eta % 3600 // 60:02d}:{eta % 60:02d}"
        )
        if self._tty:
            self._stream.write("\r" + text + "\x1b[K")
            self._stream.flush()
            self._live = True
        else:
            log.info("progress: %s", text)

    def _clear_live(self) -> None:
        if self._live:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._live = False

    # -- results --------------------------------------------------------------------------

    def last_lines(self, rank: int) -> list[str]:
        with self._lock:
            return list(self._lines.get(rank, ()))

    def drain(self, timeout: float = 5.0) -> None:
        """Wait (at most `timeout` s) for the connections still open to end (those still
        without a hello too: they may be a rank's, not yet read)."""
        with self._lock:
            self._lock.wait_for(lambda: not self._open_ranks and not self._gate, timeout)

    def failure(self, error: BaseException) -> RankFailure:
        """The RankFailure for a failed training stage (`error`: what Spark raised). The
        ranks that failed on their own come first: an error of their own, then a rank
        that ended without a result (crashed) and that Spark names, then other such ranks
        (crashed, or killed by Spark after the first failure), then the ranks that failed
        because a peer broke the ring (CommError)."""
        self.drain(timeout=3.0)
        spark_message = str(error).strip()
        named = {int(m.group(2)) for m in _BARRIER_TASK.finditer(spark_message)}
        with self._lock:
            ends = {rank: end for rank, end in self._ends.items() if end not in ("running", "done")}
        for rank in named:
            ends.setdefault(rank, "lost")

        def order(rank: int) -> tuple[int, int]:
            end = ends[rank]
            if isinstance(end, dict):
                return (3 if end["comm"] else 0), rank
            return (1 if rank in named else 2), rank

        ranks = sorted(ends, key=order)
        last = {rank: self.last_lines(rank) for rank in ranks}
        parts = [
            "training failed on rank(s) " + (", ".join(map(str, ranks)) or "unknown")
            + " (Spark gave up retrying the barrier stage)"
        ]
        for rank in ranks:
            end = ends[rank]
            if isinstance(end, dict):
                how = "failed because a peer did" if end["comm"] else "failed"
                parts.append(f"rank {rank} {how}: {end['msg']}")
            else:
                parts.append(f"rank {rank} ended without a result (its process died, or Spark "
                             "killed it after another rank failed)")
            parts.append(f"--- rank {rank}, last {len(last[rank])} line(s) ---")
            parts.extend(last[rank] or ["(nothing received from this rank)"])
        summary = spark_message.splitlines()
        parts.append("--- Spark's cause ---")
        parts.extend(summary[:40] + (["..."] if len(summary) > 40 else []))
        return RankFailure("\n".join(parts), ranks, last, spark_message)

    def close(self) -> None:
        self.drain(timeout=3.0)
        self._gate.wake()
        self._thread.join(5.0)
        self._clear_live()
        self._refusals.flush()
        self._bad.flush()
        self._gate.close()
