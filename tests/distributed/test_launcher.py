"""The local launcher (`caffeonspark train -solver S -world_size N`): ranks as processes over
loopback, each reading its shard, rank 0 displaying, testing and snapshotting; and its
failure handling: a rank killed with SIGKILL mid-training makes every other rank exit
non-zero naming it within the comm deadline + 5 s, the launcher exits non-zero with the
first error, no rank outlives the launcher (even one killed with SIGKILL), and the last
snapshot stays valid; a launcher sent SIGTERM stops its ranks, removes its job folder and
exits 143."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from lenet_files import write_lenet

from caffeonspark import cli, model_io
from caffeonspark.distributed import launcher
from caffeonspark.distributed.launcher import LaunchTerminated, launch
from caffeonspark.solver import Solver

DEADLINE = 3.0


def wait_for(predicate, seconds: float, what: str) -> None:
    """Waits for an external process's visible effect (a file, an exit)."""
    end = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().split(")")[-1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_cli_trains_with_two_ranks_rank_0_snapshots(digits, tmp_path, caplog):
    solver = write_lenet(
        tmp_path, digits, 16, 20, display=10, snapshot=10, test_interval=10, test_iter=[2]
    )
    assert cli.main(["train", "-solver", str(solver), "-world_size", "2", "-threads", "1"]) == 0
    snaps = sorted(p.name for p in (tmp_path / "snap").iterdir())
    assert snaps == [
        "lenet_iter_10.caffemodel",
        "lenet_iter_10.solverstate",
        "lenet_iter_20.caffemodel",
        "lenet_iter_20.solverstate",
    ]
    restored = Solver(str(solver))
    restored.restore(tmp_path / "snap" / "lenet_iter_20.solverstate")
    assert restored.iter == 20


def test_rank_0_testing_longer_than_the_deadline_is_not_a_failure(digits, tmp_path):
    """While rank 0 tests (500 forwards), rank 1 waits in its first allreduce longer than
    the 1 s comm deadline: heartbeats keep it from taking rank 0 for dead."""
    solver = write_lenet(
        tmp_path, digits, 16, 6, test_interval=5, test_iter=[500], test_initialization=False
    )
    started = time.monotonic()
    result = launch(str(solver), 2, threads=1, comm_timeout=1.0)
    assert result.returncode == 0, result.first_error
    assert time.monotonic() - started > 1.5  # the test did outlast the deadline


def test_killed_rank_fails_the_job_naming_it(digits, tmp_path):
    solver = write_lenet(tmp_path, digits, 16, 100_000, snapshot=5)
    started: dict = {}
    outcome: dict = {}

    def run():
        outcome["result"] = launch(
            str(solver),
            3,
            threads=1,
            comm_timeout=DEADLINE,
            on_started=lambda pids: started.setdefault("pids", pids),
        )

    thread = threading.Thread(target=run)
    thread.start()
    first_snapshot = tmp_path / "snap" / "lenet_iter_5.solverstate"
    wait_for(first_snapshot.exists, 60, "the first snapshot")
    victim = started["pids"][1]
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    thread.join(DEADLINE + 30)
    assert not thread.is_alive(), "the launcher did not return"
    result = outcome["result"]
    assert result.returncode == 1
    assert result.first_error.startswith(f"rank 1 (pid {victim}) failed: killed by SIGKILL")
    name = None
    for rank in (0, 2):
        ranked = result.ranks[rank]
        assert ranked.returncode == 1, ranked
        assert ranked.error.startswith("CommError: "), ranked
        assert "rank 1 (127.0.0.1:" in ranked.error, ranked
        name = name or ranked.error[ranked.error.index("rank 1 (") :].split(")")[0]
        assert name in ranked.error
        assert ranked.ended_at - killed_at <= DEADLINE + 5, ranked
    assert not any(alive(pid) for pid in started["pids"])
    # Every snapshot on disk is whole (written to a temporary name, then renamed).
    states = sorted((tmp_path / "snap").glob("*.solverstate"))
    restored = Solver(str(solver))
    restored.restore(states[-1])
    assert restored.iter >= 5
    model_io.read_caffemodel(str(states[-1]).replace(".solverstate", ".caffemodel"))


def test_failing_ranks_make_the_launcher_exit_non_zero_with_the_first_error(digits, tmp_path):
    solver = write_lenet(tmp_path, digits, 16, 10)
    net = tmp_path / "lenet_train_test.prototxt"
    net.write_text(net.read_text().replace(str(digits.train), str(tmp_path / "missing_lmdb")))
    result = launch(str(solver), 2, threads=1, comm_timeout=DEADLINE)
    assert result.returncode == 1
    assert "IoError" in result.first_error and "missing_lmdb" in result.first_error


@pytest.mark.parametrize("victim", ["launcher", "rank"])
def test_no_rank_outlives_the_cli(victim, digits, tmp_path):
    """`caffeonspark train -world_size 3` as a process: killing the launcher with SIGKILL
    takes its ranks with it; killing a rank makes the command exit non-zero naming it."""
    solver = write_lenet(tmp_path, digits, 16, 100_000, snapshot=5)
    command = [
        sys.executable,
        "-m",
        "caffeonspark.cli",
        "train",
        "-solver",
        str(solver),
        "-world_size",
        "3",
        "-threads",
        "1",
        "-comm_timeout",
        str(DEADLINE),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for((tmp_path / "snap" / "lenet_iter_5.solverstate").exists, 60, "the first snapshot")
    ranks = children_of(proc.pid)
    assert len(ranks) == 3
    if victim == "launcher":
        proc.kill()
        proc.communicate()
        wait_for(lambda: not any(alive(pid) for pid in ranks), 10, "the ranks to die")
        return
    os.kill(ranks[2], signal.SIGKILL)
    output, _ = proc.communicate(timeout=DEADLINE + 30)
    assert proc.returncode == 1, output
    assert f"rank 2 (pid {ranks[2]}) failed: killed by SIGKILL" in output
    assert "CommError: rank 2 (127.0.0.1:" in output
    assert not any(alive(pid) for pid in ranks)


def test_sigterm_stops_the_ranks_and_removes_the_job_folder(digits, tmp_path):
    """`caffeonspark train -world_size 2` sent SIGTERM (a scheduler stopping it) exits 143
    promptly; no rank survives it and its job folder is gone."""
    solver = write_lenet(tmp_path, digits, 16, 100_000)
    temp = tmp_path / "tmp"  # where the launcher's mkdtemp puts the job folder
    temp.mkdir()
    command = [sys.executable, "-m", "caffeonspark.cli", "train", "-solver", str(solver),
               "-world_size", "2", "-threads", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, TMPDIR=str(temp)))
    try:
        wait_for(lambda: len(children_of(proc.pid)) == 2, 60, "both ranks")
        ranks = children_of(proc.pid)
        jobs = list(temp.glob("caffeonspark-job-*"))
        assert len(jobs) == 1
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, output
    assert time.monotonic() - sent < 10, "the launcher did not stop promptly"
    assert "the launcher got SIGTERM" in output
    assert not any(alive(pid) for pid in ranks)
    assert not jobs[0].exists()


def test_sigterm_handler_raises_only_while_waiting_and_is_put_back():
    before = signal.getsignal(signal.SIGTERM)
    sigterm = launcher._Sigterm()
    try:
        os.kill(os.getpid(), signal.SIGTERM)  # while ranks start: recorded, not raised
        with pytest.raises(LaunchTerminated, match="SIGTERM"):
            with sigterm.raising():
                pass
        sigterm.received = False
        with pytest.raises(LaunchTerminated):
            with sigterm.raising():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # interrupted by the handler
    finally:
        sigterm.restore()
    assert signal.getsignal(signal.SIGTERM) == before
