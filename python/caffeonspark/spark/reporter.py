"""A training rank's side of the driver console (executor side): its log lines and progress
go to the driver over TCP, and its iterations are timed for the summary.

    client = ConsoleClient("driverhost:port", token, rank)   # a logging.Handler
    logging.getLogger("caffeonspark").addHandler(client)
    meter = IterationMeter(solver, rank, images_per_iteration, world_size, client)
    solver.add_callback(on_start=meter.on_start)
    ...
    client.close()                                  # sends what is queued (bounded wait)

ConsoleClient never blocks the rank: emit() formats the record and puts one JSON line on a
bounded queue (dropped, and counted, when the queue is full); a daemon thread connects,
proves the job's token in its first line, then sends the queue. When the driver cannot be
reached the client says so once on stderr and drops what follows; training goes on.
Records: {"t": "log", "level", "msg", "time"}, {"t": "progress", "iter", "max_iter",
"loss", "images_per_second", "eta"}, {"t": "failed", "msg", "comm"} (comm: a CommError, the
rank failed because a peer did), {"t": "done"}. The driver side is console.py.

IterationMeter is called before every iteration (pycaffe's on_start): it keeps the wall
clock of the first completed iteration and the steady-state images/s (the first WARMUP
iterations left out) for the summary, and on rank 0 sends a progress record at the solver's
display interval or every PROGRESS_SECONDS, whichever comes first.
Tests: tests/spark/test_console.py.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import sys
import threading
import time
from typing import Any

__all__ = ["ConsoleClient", "IterationMeter", "WARMUP", "PROGRESS_SECONDS"]

WARMUP = 3  # iterations left out of the steady-state rate (allocation, first touches)
PROGRESS_SECONDS = 2.0
QUEUE_RECORDS = 2000
CONNECT_SECONDS = 5.0
SEND_SECONDS = 5.0


class ConsoleClient(logging.Handler):
    """A logging handler streaming this rank's records to the driver (non-blocking)."""

    def __init__(self, address: str, token: str, rank: int) -> None:
        super().__init__()
        self.rank = rank
        self.dropped = 0
        self._address = address
        self._hello = json.dumps({"token": token, "rank": rank})
        self._queue: queue.Queue[bytes] = queue.Queue(QUEUE_RECORDS)
        self._closing = threading.Event()
        self._dead = False
        self._thread = threading.Thread(
            target=self._run, name=f"caffeonspark-console-rank{rank}", daemon=True
        )
        self._thread.start()

    # -- producer side (any thread, never blocks) -------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        if self._dead:
            return
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:  # a bad format string must not break training
            text = str(record.msg)
        self._offer({"t": "log", "level": record.levelno, "msg": text, "time": record.created})

    def send(self, kind: str, **fields: Any) -> None:
        self._offer({"t": kind, **fields})

    def _offer(self, record: dict) -> None:
        if self._dead:
            return
        try:
            self._queue.put_nowait(json.dumps(record).encode() + b"\n")
        except queue.Full:
            self.dropped += 1

    def flush(self, timeout: float = 2.0) -> None:
        """Wait (at most `timeout` s) until everything queued has been sent, or the sender
        has given up."""
        sent = self._queue.all_tasks_done  # the queue's condition, notified by task_done
        with sent:
            sent.wait_for(lambda: not self._queue.unfinished_tasks or self._dead, timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (waiting at most `timeout` s), then end the connection."""
        self._closing.set()
        self._thread.join(timeout)
        super().close()

    # -- the sender thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            host, _, port = self._address.rpartition(":")
            sock = socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS)
        except OSError as err:
            self._give_up(f"cannot reach the driver console at {self._address}: {err}")
            return
        try:
            sock.settimeout(SEND_SECONDS)
            sock.sendall(self._hello.encode() + b"\n")
            while True:
                try:
                    first = self._queue.get(timeout=0.1)
                except queue.Empty:
                    if self._closing.is_set():
                        break
                    continue
                lines = [first]
                while len(lines) < 256:
                    try:
                        lines.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                sock.sendall(b"".join(lines))
                for _ in lines:
                    self._queue.task_done()
            if self.dropped:
                note = {"t": "log", "level": logging.WARNING, "time": time.time(),
                        "msg": f"{self.dropped} log record(s) dropped (the console queue was full)"}
                sock.sendall(json.dumps(note).encode() + b"\n")
        except OSError as err:
            self._give_up(f"the driver console at {self._address} went away: {err}")
        finally:
            sock.close()

    def _give_up(self, why: str) -> None:
        # Not through logging: this handler would see its own complaint.
        with self._queue.all_tasks_done:  # wake flush(): nothing more will be sent
            self._dead = True
            self._queue.all_tasks_done.notify_all()
        try:
            print(f"caffeonspark rank {self.rank}: {why}; logging locally only", file=sys.stderr)
        except (OSError, ValueError):
            pass  # stderr itself is gone (the worker is shutting down): nowhere left to say it


class IterationMeter:
    """Times iterations (called before each one); rank 0 also reports progress."""

    def __init__(
        self,
        solver: Any,
        rank: int,
        images_per_iteration: int,
        world_size: int,
        client: ConsoleClient | None,
    ) -> None:
        self._solver = solver
        self._rank = rank
        self._images = images_per_iteration
        self._world = world_size
        self._client = client if rank == 0 else None
        self._display = int(solver.param.display)
        self._max_iter = int(solver.param.max_iter)
        self._calls = 0
        self._first_done_wall: float | None = None
        self._warm: tuple[int, float] | None = None  # (iteration, perf time) after warm-up
        self._last: tuple[int, float] | None = None  # the latest call
        self._report: tuple[int, float] | None = None  # the latest progress record

    def on_start(self) -> None:
        now = time.perf_counter()
        it = self._solver.iter
        self._calls += 1
        if self._calls == 2:
            self._first_done_wall = time.time()
        if self._calls == WARMUP + 1:
            self._warm = (it, now)
        self._last = (it, now)
        if self._client is None:
            return
        if self._report is None:
            self._report = (it, now)
            return
        due = self._display > 0 and it % self._display == 0
        if due or now - self._report[1] >= PROGRESS_SECONDS:
            self._send_progress(it, now)

    def _send_progress(self, it: int, now: float) -> None:
        done, since = it - self._report[0], now - self._report[1]
        if done <= 0 or since <= 0:
            return
        iters_per_second = done / since
        self._report = (it, now)
        self._client.send(
            "progress",
            iter=it,
            max_iter=self._max_iter,
            loss=float(self._solver.smoothed_loss),
            images_per_second=iters_per_second * self._images * self._world,
            eta=max(0, self._max_iter - it) / iters_per_second,
        )

    def finish(self) -> None:
        """After training: the first completed iteration is known even with one iteration."""
        if self._calls == 1:
            self._first_done_wall = time.time()
            self._last = (self._solver.iter, time.perf_counter())

    @property
    def first_iteration_time(self) -> float | None:
        """time.time() when this rank's first iteration (of this attempt) completed."""
        return self._first_done_wall

    @property
    def images_per_second(self) -> float | None:
        """This rank's images/s after warm-up (None when too few iterations ran)."""
        start = self._warm
        if start is None or self._last is None or self._last[0] <= start[0]:
            return None
        iterations, seconds = self._last[0] - start[0], self._last[1] - start[1]
        return iterations * self._images / seconds if seconds > 0 else None
