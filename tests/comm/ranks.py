"""Runs one test scenario as P separate rank processes on loopback (tests/comm/comm_worker.py,
or another worker script) with the package's own rendezvous, and collects each rank's exit
code, last JSON line and exit time. Used by tests/comm/ and tests/distributed/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import caffeonspark
from caffeonspark.distributed.rendezvous import RendezvousServer

WORKER = Path(__file__).with_name("comm_worker.py")
# The caffeonspark under test (checkout python/ in development, site-packages after
# `pip install`): rank processes must import the same one.
PYTHON_DIR = Path(caffeonspark.__file__).resolve().parents[1]


@dataclass
class RankResult:
    rank: int
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    exited_at: float = 0.0  # time.monotonic() when the process ended
    report: dict = field(default_factory=dict)  # the last JSON line on stdout


def worker_env(rank: int, world_size: int, server: str, secret: bytes, job_id: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PYTHON_DIR), env.get("PYTHONPATH", "")])
    env.update(
        TEST_RANK=str(rank),
        TEST_WORLD_SIZE=str(world_size),
        TEST_RENDEZVOUS=server,
        TEST_SECRET=secret.hex(),
        TEST_JOB_ID=job_id,
        OMP_NUM_THREADS="1",
    )
    return env


class Ranks:
    """Started rank processes; `wait()` collects them (killing all at `timeout`)."""

    def __init__(
        self,
        world_size: int,
        scenario: str,
        *args: str,
        ranks=None,
        secret: bytes | None = None,
        stdin_ranks=(),
        timeout: float = 60.0,
        worker: Path = WORKER,
    ) -> None:
        self.world_size = world_size
        self.secret = secret or os.urandom(16)
        self.timeout = timeout
        self.server = RendezvousServer(world_size, self.secret).start(timeout)
        self.started_at = time.monotonic()
        self.results = [RankResult(r) for r in range(world_size)]
        self.procs: dict[int, subprocess.Popen] = {}
        self._threads = []
        for rank in ranks if ranks is not None else range(world_size):
            proc = subprocess.Popen(
                [sys.executable, str(worker), scenario, *map(str, args)],
                env=worker_env(rank, world_size, self.server.address, self.secret, "test-job"),
                stdin=subprocess.PIPE if rank in stdin_ranks else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            self.procs[rank] = proc
            thread = threading.Thread(target=self._collect, args=(rank, proc), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _collect(self, rank: int, proc: subprocess.Popen) -> None:
        # Not communicate(): it would close stdin, which some scenarios wait on.
        errors: list[str] = []
        reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
        reader.start()
        out = proc.stdout.read()
        reader.join()
        proc.wait()
        err = errors[0] if errors else ""
        result = self.results[rank]
        result.exited_at = time.monotonic()
        result.returncode, result.stdout, result.stderr = proc.returncode, out, err
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if lines:
            result.report = json.loads(lines[-1])

    def send(self, rank: int, text: str) -> None:
        self.procs[rank].stdin.write(text)
        self.procs[rank].stdin.flush()

    def wait(self, expect_hung=()) -> list[RankResult]:
        """Waits for every rank but `expect_hung` (killed once the others ended)."""
        deadline = self.started_at + self.timeout
        ranks = list(self.procs)
        for rank, thread in zip(ranks, self._threads, strict=True):
            if rank not in expect_hung:
                thread.join(max(0.0, deadline - time.monotonic()))
        hung = [r for r, p in self.procs.items() if p.poll() is None and r not in expect_hung]
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for thread in self._threads:
            thread.join(5)
        self.server.close()
        assert not hung, f"rank(s) {hung} still running after {self.timeout} s: " + "\n".join(
            f"--- rank {r}\n{self.results[r].stderr[-2000:]}" for r in hung
        )
        return self.results


def run_ranks(
    world_size: int, scenario: str, *args: str, timeout: float = 60.0, worker: Path = WORKER
) -> list[RankResult]:
    return Ranks(world_size, scenario, *args, timeout=timeout, worker=worker).wait()


def describe(results: list[RankResult]) -> str:
    return "\n".join(
        f"--- rank {r.rank}: exit {r.returncode}, report {r.report}\n{r.stderr[-1500:]}"
        for r in results
    )
