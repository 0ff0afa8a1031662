"""Ring allreduce, broadcast and barrier across rank processes on loopback.

The grid: world sizes 1, 2, 3, 4, 5, 8 x lengths 0, 1, P-1, 1000, 1 000 003 of random
float32 data. Every rank must end byte-identical, and equal to the float64 NumPy sum within
float32 rounding of a P-term sum (|err| <= P * 2^-24 * sum |x_i| per element). Small
segments (4 KiB, window 3) make even the 1000-element case span several frames per chunk;
two extra runs use the default segment size.
"""

from __future__ import annotations

import numpy as np
import pytest
from comm_worker import rank_data
from ranks import describe, run_ranks

WORLD_SIZES = (1, 2, 3, 4, 5, 8)
BIG = 1_000_003


def lengths_for(world_size: int) -> list[int]:
    return sorted({0, 1, max(world_size - 1, 0), 1000, BIG})


def check_sums(out, world_size, lengths, seed, average=False):
    for length in lengths:
        results = [np.load(out / f"r{r}_n{length}.npy") for r in range(world_size)]
        for r, result in enumerate(results[1:], start=1):
            assert result.tobytes() == results[0].tobytes(), (
                f"P={world_size} n={length}: rank {r} differs from rank 0"
            )
        inputs = np.stack([rank_data(seed, r, length) for r in range(world_size)]).astype(
            np.float64
        )
        expected = inputs.sum(axis=0)
        bound = world_size * 2.0**-24 * np.abs(inputs).sum(axis=0) + 1e-30
        if average:
            expected /= world_size
            bound = bound / world_size + 2.0**-24 * np.abs(expected)
        error = np.abs(results[0].astype(np.float64) - expected)
        worst = int(np.argmax(error - bound)) if length else 0
        assert np.all(error <= bound), (
            f"P={world_size} n={length}: element {worst} off by {error[worst]:.3g} "
            f"(bound {bound[worst]:.3g})"
        )


@pytest.mark.parametrize("world_size", WORLD_SIZES)
def test_allreduce_grid(world_size, tmp_path):
    lengths = lengths_for(world_size)
    results = run_ranks(
        world_size,
        "grid",
        "--out",
        tmp_path,
        "--seed",
        world_size,
        "--lengths",
        ",".join(map(str, lengths)),
        "--segment-bytes",
        4096,
        "--window",
        3,
    )
    assert all(r.returncode == 0 for r in results), describe(results)
    check_sums(tmp_path, world_size, lengths, seed=world_size)


@pytest.mark.parametrize("world_size", [3, 4])
def test_allreduce_average_with_default_segments(world_size, tmp_path):
    lengths = [world_size - 1, 1000, BIG]
    results = run_ranks(
        world_size,
        "grid",
        "--out",
        tmp_path,
        "--seed",
        77,
        "--average",
        "--lengths",
        ",".join(map(str, lengths)),
    )
    assert all(r.returncode == 0 for r in results), describe(results)
    check_sums(tmp_path, world_size, lengths, seed=77, average=True)


@pytest.mark.parametrize("world_size,root", [(1, 0), (2, 1), (3, 0), (5, 3)])
def test_broadcast_copies_the_roots_bytes(world_size, root, tmp_path):
    lengths = [0, 1, 1000, 300_001]
    results = run_ranks(
        world_size,
        "broadcast",
        "--out",
        tmp_path,
        "--seed",
        5,
        "--root",
        root,
        "--lengths",
        ",".join(map(str, lengths)),
        "--segment-bytes",
        65536,
        "--window",
        2,
    )
    assert all(r.returncode == 0 for r in results), describe(results)
    for length in lengths:
        expected = rank_data(5, root, length).tobytes()
        for r in range(world_size):
            assert np.load(tmp_path / f"r{r}_n{length}.npy").tobytes() == expected, (r, length)


def test_barrier_releases_nobody_before_the_last_arrival():
    results = run_ranks(4, "barrier")
    assert all(r.returncode == 0 for r in results), describe(results)
    last_arrival = max(r.report["arrived"] for r in results)
    for r in results:
        assert r.report["left"] >= last_arrival, describe(results)
