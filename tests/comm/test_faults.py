"""Faults between rank processes on loopback, with short deadlines so each resolves in
seconds: a rank killed with SIGKILL, stopped with SIGSTOP, exiting without closing,
aborting, never starting, or calling a different collective / size. Every surviving rank
must raise CommError or PeerTimeout naming the culprit's rank and address within the
deadline + 5 s (none hangs: ranks.py kills a rank still alive at its own timeout)."""

from __future__ import annotations

import socket

import pytest
from ranks import Ranks, describe, run_ranks

from caffeonspark.distributed.rendezvous import LocalRendezvous

DEADLINE = 2.0


def culprit_name(results, rank: int) -> str:
    """ "rank R (host:port)" as the messages name it."""
    for result in results:
        message = result.report.get("message", "")
        start = message.find(f"rank {rank} (")
        if start >= 0:
            return message[start : message.index(")", start) + 1]
    raise AssertionError(f"no message names rank {rank}:\n{describe(results)}")


def assert_all_fail_naming(results, culprit: int, error: str, within: float) -> None:
    fault_at = results[culprit].report.get("fault_at")
    name = culprit_name(results, culprit)
    for result in results:
        if result.rank == culprit:
            continue
        assert result.returncode == 3, describe(results)
        assert result.report["error"] == error, describe(results)
        assert name in result.report["message"], describe(results)
        if fault_at is not None:
            assert result.report["at"] - fault_at <= within, describe(results)


@pytest.mark.parametrize("world_size,victim", [(2, 1), (4, 2)])
def test_killed_rank_is_named_by_every_other_rank(world_size, victim):
    results = run_ranks(
        world_size,
        "loop",
        "--iterations",
        100_000,
        "--count",
        200_000,
        "--fault-rank",
        victim,
        "--fault-at",
        20,
        "--fault",
        "kill",
        "--timeout",
        DEADLINE,
        timeout=40,
    )
    assert results[victim].returncode == -9
    assert_all_fail_naming(results, victim, "CommError", within=DEADLINE + 5)
    for result in results:
        if result.rank != victim:
            assert "died or was killed" in result.report["message"]


def test_stalled_rank_becomes_a_peer_timeout_everywhere():
    ranks = Ranks(
        3,
        "loop",
        "--iterations",
        100_000,
        "--count",
        1000,
        "--fault-rank",
        1,
        "--fault-at",
        5,
        "--fault",
        "stop",
        "--timeout",
        DEADLINE,
        timeout=40,
    )
    results = ranks.wait(expect_hung=(1,))
    assert_all_fail_naming(results, 1, "PeerTimeout", within=DEADLINE + 5)


@pytest.mark.parametrize(
    "fault,words",
    [("abort", "aborted: the test aborts this rank"), ("exit", "without saying goodbye")],
)
def test_rank_that_aborts_or_exits_is_named(fault, words):
    results = run_ranks(
        3,
        "loop",
        "--iterations",
        100_000,
        "--count",
        1000,
        "--fault-rank",
        2,
        "--fault-at",
        3,
        "--fault",
        fault,
        "--timeout",
        DEADLINE,
        timeout=40,
    )
    others = [r for r in results if r.rank != 2]
    assert_all_fail_naming(results, 2, "CommError", within=DEADLINE + 5)
    assert all(words in r.report["message"] for r in others), describe(results)


@pytest.mark.parametrize(
    "fault,words",
    [("mismatch", "differ in size"), ("barrier", "same collectives in the same order")],
)
def test_ranks_calling_different_collectives_fail_clearly(fault, words):
    results = run_ranks(
        3,
        "loop",
        "--iterations",
        10,
        "--count",
        1000,
        "--fault-rank",
        0,
        "--fault-at",
        2,
        "--fault",
        fault,
        "--timeout",
        DEADLINE,
        timeout=40,
    )
    assert all(r.returncode == 3 for r in results), describe(results)
    assert any(words in r.report["message"] for r in results), describe(results)


def test_rank_that_never_starts_is_a_peer_timeout_naming_it():
    """Rank 2's address is published but nothing ever listens there."""
    ranks = Ranks(3, "loop", "--iterations", 1, "--timeout", DEADLINE, ranks=[0, 1], timeout=40)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{unused.getsockname()[1]}"
    LocalRendezvous(ranks.server.address, 2, ranks.secret).all_gather(address)
    results = ranks.wait()[:2]
    for result in results:
        assert result.returncode == 3, describe(results)
        assert result.report["error"] == "PeerTimeout", describe(results)
        assert f"rank 2 ({address})" in result.report["message"], describe(results)
