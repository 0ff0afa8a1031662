"""distributed/run.py without processes: the order of one rank's run (attach, solve, detach,
read the stats, close the ring) and, when anything fails, detach and abort with the error
instead of close; aborting_ring alone aborts on error and leaves the ring open on success.
The real runs: tests/distributed/test_launcher.py, tests/spark/test_spark.py."""

from __future__ import annotations

import pytest

from caffeonspark.distributed import run


class Calls(list):
    """What the fakes were asked to do, in order."""


class FakeComm:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def abort(self, reason: str) -> None:
        self.calls.append(("abort", reason))

    def close(self) -> None:
        self.calls.append(("close",))


class FakeSolver:
    def __init__(self, calls: Calls, error: BaseException | None = None) -> None:
        self.calls, self.error = calls, error

    def solve(self) -> None:
        self.calls.append(("solve",))
        if self.error is not None:
            raise self.error


@pytest.fixture
def calls(monkeypatch) -> Calls:
    recorded = Calls()

    class FakeDataParallel:
        def __init__(self, solver, comm, options) -> None:
            recorded.append(("attach", options))

        def detach(self) -> None:
            recorded.append(("detach",))

        @property
        def stats(self) -> dict[str, float]:
            recorded.append(("stats",))
            return {"iterations": 3.0}

    monkeypatch.setattr(run, "DataParallel", FakeDataParallel)
    return recorded


def test_a_run_attaches_solves_detaches_and_closes(calls):
    stats = run.run_data_parallel(FakeSolver(calls), FakeComm(calls), "options")
    assert stats == {"iterations": 3.0}
    assert calls == [("attach", "options"), ("solve",), ("detach",), ("stats",), ("close",)]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_failed_run_detaches_and_aborts_the_ring_with_the_error(calls, error):
    with pytest.raises(type(error)):
        run.run_data_parallel(FakeSolver(calls, error), FakeComm(calls))
    reason = f"{type(error).__name__}: {error}"
    assert calls == [("attach", None), ("solve",), ("detach",), ("abort", reason)]


def test_aborting_ring_aborts_on_error_only(calls):
    comm = FakeComm(calls)
    with run.aborting_ring(comm):
        pass
    assert calls == []
    with pytest.raises(ValueError), run.aborting_ring(comm):
        raise ValueError("bad weights")
    assert calls == [("abort", "ValueError: bad weights")]
