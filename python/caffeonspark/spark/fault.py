"""Fault tolerance of the training stage: resuming a retried attempt from the newest
snapshot of this run, and a test-only hook that kills one rank.

Spark retries a failed barrier stage only when it is a shuffle-map stage (a failed barrier
ResultStage aborts the job), so the driver puts a shuffle after the training stage; each
retry starts every rank again. Then (in every task, before training):

- rank 0 counts the attempt: it creates `attempt-<k>` (first free k) in the run directory
  the driver made beside -model (one per job, removed when the job ends);
- rank 0 picks the newest complete snapshot of this run: `<snapshot_prefix>_iter_<N>
  .solverstate[.h5]` with its `.caffemodel[.h5]`, leaving out every snapshot file that
  existed, unchanged, when the job started (`existing_snapshots`, taken by the driver), so
  attempt 0 never resumes from an older run's files;
- `agree` gives every rank rank 0's decision through BarrierTaskContext.allGather, and every
  rank restores that snapshot (weights, history, iteration; the data stream skips the
  batches already trained on), so at most `snapshot` iterations are lost.
The snapshot directory must be reachable from every executor (a shared path or a URI).
With validation, rank 0 also keeps its test results in the run directory (TestJournal), so
a resumed attempt returns the tests of the iterations before its snapshot too.

`FailAt(rank, iteration, marker)` is for tests only, and not part of the API: a test arms
it on a driver with `_arm_fail_at(cos, FailAt(...))`, the driver ships it to the tasks in
the training plan, and that rank's process dies (os._exit) or raises when it reaches
`iteration`; with a marker path it happens once (the marker file is created first),
without one on every attempt.
Tests: tests/spark/test_fault.py.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from caffeonspark.spark import storage

__all__ = [
    "FailAt",
    "Resume",
    "existing_snapshots",
    "newest_snapshot",
    "next_attempt",
    "agree",
    "install_fail_at",
    "TestJournal",
]

log = logging.getLogger("caffeonspark")

_STATE = re.compile(r"_iter_(\d+)\.solverstate(\.h5)?$")
SNAPSHOT_FLAG = "conf snapshot_prefix"
FAIL_EXIT_CODE = 57


@dataclass(frozen=True)
class FailAt:
    """TEST ONLY: kill `rank` when it starts `iteration`. `marker`: a path every executor
    sees; when given, the failure happens once (the file records it); `hard`: os._exit
    (a crashed engine) rather than an exception."""

    rank: int
    iteration: int
    marker: str | None = None
    hard: bool = True


@dataclass(frozen=True)
class Resume:
    """What every rank does in this attempt: `state` None means start from the beginning."""

    attempt: int
    state: str | None = None
    iteration: int = 0


def _snapshot_states(prefix: str) -> list[str]:
    """The solver states under `prefix` (a local path or a URI: storage.py lists both)."""
    folder, base = storage.parent(prefix), storage.basename(prefix)
    names = storage.listdir(folder, SNAPSHOT_FLAG)
    return [storage.join(folder, name) for name in names
            if name.startswith(base + "_iter_") and _STATE.search(name)]


def model_of(state: str) -> str:
    """The weights that go with a solver state: <prefix>_iter_N.caffemodel[.h5]."""
    match = _STATE.search(state)
    return state[: match.start()] + f"_iter_{match.group(1)}.caffemodel{match.group(2) or ''}"


def existing_snapshots(prefix: str) -> dict[str, tuple[int, int]]:
    """Driver, before the stage: the solver states already there (path -> mtime, size)."""
    if not prefix:
        return {}
    found = {}
    for path in _snapshot_states(prefix):
        seen = storage.identity(path, SNAPSHOT_FLAG)
        if seen is not None:
            found[path] = seen
    return found


def newest_snapshot(prefix: str, existing: dict[str, tuple[int, int]]) -> tuple[int, str] | None:
    """(iteration, .solverstate path) of the newest complete snapshot written since
    `existing` was taken; None when there is none."""
    best: tuple[int, str] | None = None
    for path in _snapshot_states(prefix):
        seen = storage.identity(path, SNAPSHOT_FLAG)
        if seen is None or existing.get(path) == seen:
            continue
        if storage.arrow_kind(model_of(path), SNAPSHOT_FLAG) != "file":
            continue  # the state without its weights: a snapshot still being uploaded
        iteration = int(_STATE.search(path).group(1))
        if best is None or iteration > best[0]:
            best = (iteration, path)
    return best


def next_attempt(run_dir: str) -> int:
    """Rank 0: this attempt's number (0 first), counted by files in the run directory."""
    if storage.is_local(run_dir):
        run_dir = storage.local_path(run_dir, SNAPSHOT_FLAG)
        os.makedirs(run_dir, exist_ok=True)
        attempt = 0
        while True:
            try:
                os.close(os.open(os.path.join(run_dir, f"attempt-{attempt}"),
                                 os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                return attempt
            except FileExistsError:
                attempt += 1
    # Elsewhere no exclusive create: list, then add; only rank 0 of one attempt writes here
    # (Spark has stopped the failed attempt's tasks before it starts the next).
    names = set(storage.listdir(run_dir, SNAPSHOT_FLAG))
    attempt = 0
    while f"attempt-{attempt}" in names:
        attempt += 1
    storage.write_text(storage.join(run_dir, f"attempt-{attempt}"), "", SNAPSHOT_FLAG)
    return attempt


def agree(ctx: Any, rank: int, decide: Callable[[], Resume]) -> Resume:
    """Rank 0 decides; every rank returns its decision (one allGather)."""
    mine = decide() if rank == 0 else None
    message = json.dumps({"rank": rank, "resume": None if mine is None else mine.__dict__})
    gathered = [json.loads(m) for m in ctx.allGather(message)]
    (zero,) = [m["resume"] for m in gathered if m["rank"] == 0]
    return Resume(**zero)


class TestJournal:
    """Rank 0's test results so far, in the run directory (JSON, written by rename)."""

    __test__ = False  # not a pytest class

    def __init__(self, run_dir: str) -> None:
        self.path = storage.join(run_dir, "tests.json")
        self._kept = 0

    def keep(self, results: list[dict]) -> None:
        """Record `results` (cheap when nothing new: called before every iteration)."""
        if len(results) == self._kept:
            return
        storage.write_text(self.path, json.dumps(results), SNAPSHOT_FLAG)
        self._kept = len(results)

    def before(self, iteration: int) -> list[dict]:
        """The results a failed attempt recorded for iterations before `iteration` (the
        resumed solver tests `iteration` itself again)."""
        text = storage.read_text(self.path, SNAPSHOT_FLAG)
        results = json.loads(text) if text else []
        return [r for r in results if int(r["iter"]) < iteration]


def _arm_fail_at(driver: Any, fail: FailAt) -> None:
    """TEST ONLY: the trainings `driver` (a CaffeOnSpark) runs from now on carry `fail` in
    their plan (private: tests reach it here, users never see it in the constructor)."""
    driver._fail_at = fail


def install_fail_at(solver: Any, rank: int, fail: FailAt, before_exit: Callable[[], None]) -> None:
    """TEST ONLY: arm `fail` on this rank's solver (nothing when it names another rank)."""
    if fail.rank != rank:
        return

    def check() -> None:
        if solver.iter != fail.iteration:
            return
        if fail.marker is not None:
            try:
                os.close(os.open(fail.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return  # it already happened once
        how = "dies (os._exit)" if fail.hard else "raises"
        log.error("test hook FailAt: rank %d %s at iteration %d", rank, how, fail.iteration)
        before_exit()
        if fail.hard:
            os._exit(FAIL_EXIT_CODE)
        raise RuntimeError(f"test hook FailAt: rank {rank} fails at iteration {fail.iteration}")

    solver.add_callback(on_start=check)
