"""tools/bench_scaling.py's weak-scaling model (docs/SCALING.md), checked against closed forms:
the ring's 2(N-1)/N traffic plus 2(N-1) latencies per bucket, the overlap window, and the
efficiency it gives; the measurement itself needs root and runs by hand (docs/SCALING.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "tools" / "bench_scaling.py"


@pytest.fixture(scope="module")
def bench():
    if not PATH.is_file():
        pytest.skip("tools/ is not next to the tests (an installed package)")
    spec = importlib.util.spec_from_file_location("bench_scaling", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ring_traffic_and_latency(bench):
    # 244 MB over 1 GB/s: 2 ranks send it once (2(N-1)/N = 1), 256 ranks almost twice.
    assert bench.ring_seconds(244e6, 2, 1e9, 0.0, 1) == pytest.approx(0.244)
    assert bench.ring_seconds(244e6, 256, 1e9, 0.0, 1) == pytest.approx(0.244 * 2 * 255 / 256)
    # every bucket goes round the ring in 2(N-1) steps, each paying the latency once
    assert bench.ring_seconds(0.0, 8, 1e9, 50e-6, 10) == pytest.approx(2 * 7 * 10 * 50e-6)
    assert bench.ring_seconds(1e9, 1, 1e9, 1.0, 5) == 0.0


def test_overlap_window_and_efficiency(bench):
    # 1 s of compute, 0.6 s of it backward; communication free under up to 0.6 s of it
    assert bench.iteration_seconds(1.0, 0.5, 0.6) == 1.0
    assert bench.iteration_seconds(1.0, 0.8, 0.6) == pytest.approx(1.2)
    assert bench.efficiency(1.0, 0.8, 0.6) == pytest.approx(1 / 1.2)
    assert bench.efficiency(1.0, 0.8, 0.0) == pytest.approx(1 / 1.8)
    # a run's window: comm alone 0.3 s, iteration 1.1 s over compute 1.0 s: 0.2 s were free
    row = {"alone_s": 0.3, "iteration_s": 1.1, "compute_s": 1.0, "forward_s": 0.4}
    assert bench.window_of(row) == pytest.approx(0.2)
    # never more than backward's share, never below zero
    assert bench.window_of({**row, "alone_s": 5.0, "iteration_s": 1.0}) == pytest.approx(0.6)
    assert bench.window_of({**row, "iteration_s": 2.0}) == 0.0
