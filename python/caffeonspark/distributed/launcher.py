"""The local launcher: `caffeonspark train -solver S -world_size N` on one machine.

launch() starts N worker processes (worker.py) in their own session, each told its rank,
the job secret (32 random bytes) and the address of a RendezvousServer that hands every
rank the others' ring addresses (loopback). Each rank reads its own shard of the training
data; rank 0 displays, tests and snapshots.

Failure handling: launch() blocks on the ranks' exits (a waiter thread per process; no
polling). The first rank to exit non-zero is the job's error: its status file message, or
the signal that killed it. The other ranks are then given the communication deadline + 5 s
to fail on their own (they do: the ring tells every rank which peer failed), then any still
running are terminated (SIGTERM, then SIGKILL 3 s later). Each worker also dies with the
launcher (PR_SET_PDEATHSIG), so no rank outlives it. launch() returns 0 when every rank
finished, else 1 after logging the first error; LaunchResult has every rank's outcome.
If the rendezvous server fails before any rank does, that is the job's error and the ranks
are terminated at once, instead of each waiting out its deadline.
SIGTERM to the launcher (a scheduler stopping it), while launch() runs in the main thread:
the ranks are terminated, the job folder is removed and launch() raises LaunchTerminated
(the CLI exits 143, as a shell reports a process SIGTERM ended); the previous handler is
put back. Without this the ranks would die with it, but the job folder would stay.
Tests: tests/distributed/test_launcher.py, tests/hostile/test_rendezvous_hostile.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from caffeonspark.distributed.rendezvous import RendezvousServer

__all__ = ["RankOutcome", "LaunchResult", "LaunchTerminated", "launch"]

log = logging.getLogger("caffeonspark")

_SERVER = -1  # the "rank" on the exits queue that stands for the rendezvous server


@dataclasses.dataclass
class RankOutcome:
    rank: int
    pid: int
    returncode: int | None = None
    error: str = ""  # "ClassName: message", or how the process died
    ended_at: float = 0.0  # time.monotonic()


@dataclasses.dataclass
class LaunchResult:
    returncode: int
    first_error: str
    ranks: list[RankOutcome]


class LaunchTerminated(BaseException):
    """launch() got SIGTERM. A BaseException, like KeyboardInterrupt: a request to stop,
    not an error for `except Exception` to swallow."""


class _Sigterm:
    """SIGTERM while launch() runs: recorded at once, raised as LaunchTerminated only inside
    raising() (launch() waiting on its ranks), so that starting a rank or cleaning up is never
    cut in half. Outside the main thread Python cannot take signals: it does nothing."""

    def __init__(self) -> None:
        self.received = False
        self._armed = False
        self._installed = threading.current_thread() is threading.main_thread()
        self._previous: Any = None
        if self._installed:
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.received = True
        if self._armed:
            self.check()

    def check(self) -> None:
        """Raise LaunchTerminated (once) if SIGTERM came."""
        if self.received:
            self._armed = False
            raise LaunchTerminated("the launcher got SIGTERM: the ranks were terminated and "
                                   "the job folder removed")

    @contextlib.contextmanager
    def raising(self) -> Iterator[None]:
        self._armed = True
        try:
            self.check()
            yield
        finally:
            self._armed = False

    def restore(self) -> None:
        if self._installed:  # None: a handler not set from Python, most likely the default
            signal.signal(signal.SIGTERM,
                          signal.SIG_DFL if self._previous is None else self._previous)


def launch(
    solver: str,
    world_size: int,
    *,
    weights: str | None = None,
    snapshot: str | None = None,
    threads: int | None = None,
    comm_timeout: float = 60.0,
    check_params: bool = False,
    resize: bool = False,
    encrypt: bool = False,
    tensorboard: str | None = None,
    on_started=None,
) -> LaunchResult:
    """Trains `solver` with `world_size` ranks on this machine (see the module docstring).
    `tensorboard`: rank 0 writes TensorBoard event files there (viz/tensorboard.py).
    `on_started(pids)` is called once every rank process has started."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    secret = os.urandom(32)
    job_id = f"local-{uuid.uuid4().hex[:12]}"
    threads = threads or max(1, (os.cpu_count() or 1) // world_size)
    status_dir = tempfile.mkdtemp(prefix="caffeonspark-job-")
    exits: queue.Queue[tuple[int, int, float]] = queue.Queue()
    server = RendezvousServer(world_size, secret).start(
        comm_timeout, on_error=lambda _: exits.put((_SERVER, 1, time.monotonic()))
    )
    base = dict(os.environ)
    base.update(
        CAFFEONSPARK_WORLD_SIZE=str(world_size),
        CAFFEONSPARK_RENDEZVOUS=server.address,
        CAFFEONSPARK_JOB_ID=job_id,
        CAFFEONSPARK_JOB_SECRET=secret.hex(),
        CAFFEONSPARK_COMM_TIMEOUT=str(comm_timeout),
        CAFFEONSPARK_SOLVER=os.fspath(solver),
        CAFFEONSPARK_WEIGHTS=weights or "",
        CAFFEONSPARK_SNAPSHOT=os.fspath(snapshot) if snapshot else "",
        CAFFEONSPARK_THREADS=str(threads),
        CAFFEONSPARK_CHECK_PARAMS="1" if check_params else "0",
        CAFFEONSPARK_RESIZE="1" if resize else "0",
        CAFFEONSPARK_ENCRYPT_RING="1" if encrypt else "0",
        CAFFEONSPARK_TENSORBOARD=os.path.abspath(tensorboard) if tensorboard else "",
        CAFFEONSPARK_STATUS_DIR=status_dir,
        CAFFEONSPARK_LAUNCHER_PID=str(os.getpid()),
        OMP_NUM_THREADS=str(threads),
    )
    log.info("Launching %d ranks (job %s, %d thread(s) each)", world_size, job_id, threads)
    procs: list[subprocess.Popen] = []
    sigterm = _Sigterm()
    try:
        for rank in range(world_size):
            env = dict(base, CAFFEONSPARK_RANK=str(rank))
            proc = subprocess.Popen(
                [sys.executable, "-m", "caffeonspark.distributed.worker"],
                env=env,
                start_new_session=True,
            )
            procs.append(proc)
            threading.Thread(
                target=lambda r=rank, p=proc: exits.put((r, p.wait(), time.monotonic())),
                name=f"caffeonspark-wait-rank{rank}",
                daemon=True,
            ).start()
        with sigterm.raising():
            if on_started is not None:
                on_started([p.pid for p in procs])
            outcomes, server_failed = _supervise(procs, exits, status_dir, comm_timeout)
    except BaseException:
        _terminate(procs)
        raise
    finally:
        server.close()
        shutil.rmtree(status_dir, ignore_errors=True)
        sigterm.restore()
    sigterm.check()  # one that came after the ranks had ended
    failed = [o for o in outcomes if o.returncode != 0]
    if server_failed:
        first_error = f"the rendezvous server failed: {_describe(server.error)}"
        log.error("%s; ranks terminated", first_error)
        return LaunchResult(1, first_error, outcomes)
    if not failed:
        return LaunchResult(0, "", outcomes)
    first = min(failed, key=lambda o: o.ended_at)
    first_error = f"rank {first.rank} (pid {first.pid}) failed: {first.error}"
    log.error("%s", first_error)
    for outcome in sorted(failed, key=lambda o: o.ended_at):
        if outcome is not first:
            log.error("rank %d (pid %d): %s", outcome.rank, outcome.pid, outcome.error)
    return LaunchResult(1, first_error, outcomes)


def _describe(error: BaseException | None) -> str:
    return f"{type(error).__name__}: {error}" if error is not None else "unknown error"


def _supervise(
    procs, exits, status_dir: str, comm_timeout: float
) -> tuple[list[RankOutcome], bool]:
    """Every rank's outcome, and whether the rendezvous server failed before any rank did
    (its ranks are then terminated at once: they would only wait for their deadline)."""
    outcomes = [RankOutcome(rank, proc.pid) for rank, proc in enumerate(procs)]
    grace_until = None
    server_failed = False
    pending = len(procs)
    while pending:
        wait = None if grace_until is None else max(0.0, grace_until - time.monotonic())
        try:
            rank, code, ended = exits.get(timeout=wait)
        except queue.Empty:
            stragglers = [o.rank for o in outcomes if o.returncode is None]
            log.error(
                "rank(s) %s still running %.0f s after the first failure: terminating",
                stragglers,
                comm_timeout + 5,
            )
            _terminate(procs)
            grace_until = time.monotonic() + 3600  # the waiters report the kills
            continue
        if rank == _SERVER:
            if grace_until is None:  # after a rank's failure, the ranks end on their own
                server_failed = True
                _terminate(procs)
                grace_until = time.monotonic() + 3600  # the waiters report the kills
            continue
        pending -= 1
        outcome = outcomes[rank]
        outcome.returncode, outcome.ended_at = code, ended
        if code != 0:
            outcome.error = _describe_failure(status_dir, rank, code)
            if grace_until is None:
                grace_until = time.monotonic() + comm_timeout + 5
    return outcomes, server_failed


def _describe_failure(status_dir: str, rank: int, code: int) -> str:
    try:
        with open(os.path.join(status_dir, f"rank{rank}.json")) as handle:
            status = json.load(handle)
        if "error" in status:
            return f"{status['error']}: {status['message']}"
    except (OSError, ValueError):
        pass
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exited with code {code}"


def _terminate(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 3
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
