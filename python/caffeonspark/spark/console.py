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
A connection's first line must carry the job's random token (in the task plan); any other
connection is refused and logged. The driver logs each line on "caffeonspark.rank" as
"[rank r] message" at the rank's level, keeps the last KEEP_LINES of each rank's latest
connection (its latest attempt), and shows
progress records: one live line on a TTY, log lines otherwise. failure(spark_error) names
the failed ranks of the latest attempt, those that failed on their own first (from the
ranks' reports, the connections that ended without a result, and the partition in Spark's
"barrier task ...Task(stage, partition)"), with their last lines and Spark's message.
Tests: tests/spark/test_console.py.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import socket
import sys
import threading
import time
from collections import deque
from typing import Any, TextIO

from caffeonspark.errors import CaffeOnSparkError

__all__ = ["DriverConsole", "RankFailure", "KEEP_LINES"]

KEEP_LINES = 50
HELLO_SECONDS = 10.0
MAX_LINE = 1 << 20  # bytes; a longer line ends the connection

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


class DriverConsole:
    """The listener; one reader thread per rank connection."""

    def __init__(self, bind: str, host: str, stream: TextIO | None = None,
                 tty: bool | None = None) -> None:
        self.token = secrets.token_hex(16)
        self._server = socket.create_server((bind, 0))
        self._server.settimeout(0.25)  # accept() polls so close() ends the acceptor
        self.address = f"{host}:{self._server.getsockname()[1]}"
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._lines: dict[int, deque[str]] = {}
        # Each rank's latest connection (its latest attempt): "running", "done", "lost"
        # (ended without a result), or its error {"msg", "comm": failed because of a peer}.
        self._ends: dict[int, Any] = {}
        self._readers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._live = False  # a progress line is on the terminal
        self.progress: deque[dict] = deque(maxlen=100)  # the latest progress records
        self.refused = 0
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept, name="caffeonspark-console",
                                          daemon=True)
        self._acceptor.start()

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

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, peer = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            reader = threading.Thread(target=self._serve, args=(conn, peer), daemon=True,
                                      name=f"caffeonspark-console-{peer[0]}:{peer[1]}")
            with self._lock:
                self._readers.append(reader)
            reader.start()

    def _serve(self, conn: socket.socket, peer: tuple) -> None:
        with conn:
            stream = conn.makefile("rb")
            try:
                conn.settimeout(HELLO_SECONDS)
                hello = json.loads(stream.readline(4096))
                token = str(hello.get("token", ""))
                rank = int(hello["rank"])
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                hello, rank, token = None, -1, ""
            if hello is None or not hmac.compare_digest(token.encode(), self.token.encode()):
                self.refused += 1
                log.warning("console: refused a connection from %s:%s (no valid token)", *peer[:2])
                return
            conn.settimeout(None)
            with self._lock:  # a new connection is the rank's next attempt
                self._lines[rank] = deque(maxlen=KEEP_LINES)
                self._ends[rank] = "running"
            try:
                while line := stream.readline(MAX_LINE):
                    self._handle(rank, json.loads(line))
            except (OSError, ValueError, TypeError, AttributeError) as err:
                log.warning("console: rank %d's connection ended: %s", rank, err)
            with self._lock:
                if self._ends.get(rank) == "running":
                    self._ends[rank] = "lost"

    def _handle(self, rank: int, record: dict) -> None:
        kind = record.get("t")
        if kind == "log":
            text = str(record.get("msg", ""))
            with self._lock:
                self._lines[rank].extend(text.splitlines() or [""])
            self._clear_live()
            rank_log.log(int(record.get("level", logging.INFO)), "[rank %d] %s", rank, text,
                         extra={"rank": rank, "rank_time": record.get("time")})
        elif kind == "progress":
            self.progress.append(record)
            self._show_progress(record)
        elif kind == "failed":
            with self._lock:
                self._ends[rank] = {"msg": str(record.get("msg", "")),
                                    "comm": bool(record.get("comm"))}
        elif kind == "done":
            with self._lock:
                self._ends[rank] = "done"

    # -- progress -------------------------------------------------------------------------

    def _show_progress(self, record: dict) -> None:
        eta = int(record.get("eta", 0))
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
        """Wait (at most `timeout` s) for the connections still open to end."""
        deadline = time.monotonic() + timeout
        with self._lock:
            readers = list(self._readers)
        for reader in readers:
            reader.join(max(0.0, deadline - time.monotonic()))

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
        self._closed = True
        self.drain(timeout=3.0)
        self._clear_live()
        self._server.close()
        self._acceptor.join(2.0)
