"""core/small_gemm (the per-image products of Convolution) through the _engine._small_gemm and
_small_gemm_gather test hooks: ragged shapes on every axis (partial row tiles, partial and
narrow column blocks, the zero-padded last columns, empty contraction), A as stored,
transposed or gathered through offset tables, overwrite and accumulate, against float64
NumPy; and the same bits on a repeated call. Also core/transpose (_engine._transpose), which
converts the channel-minor products: ragged shapes around its 16×16 blocks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from caffeonspark import _engine

ROWS = [1, 5, 8, 13, 32, 50]
COLUMNS = [1, 15, 16, 17, 33, 48, 64, 65, 100]
DEPTHS = [0, 1, 25, 130, 700]  # 700: three chunks of the contraction


def _run(m, n, depth, transpose_a, accumulate, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(depth, m) if transpose_a else (m, depth)).astype(np.float32)
    b = rng.normal(size=(depth, n)).astype(np.float32)
    c = rng.normal(size=(m, n)).astype(np.float32)
    op_a = a.T if transpose_a else a
    want = op_a.astype(np.float64) @ b.astype(np.float64)
    if accumulate:
        want += c
    _engine._small_gemm(a, transpose_a, b, c, accumulate)
    return c, want, np.abs(op_a).astype(np.float64) @ np.abs(b).astype(np.float64)


@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("accumulate", [False, True])
def test_small_gemm_ragged_shapes(transpose_a, accumulate):
    for m, n, depth in itertools.product(ROWS, COLUMNS, DEPTHS):
        got, want, scale = _run(m, n, depth, transpose_a, accumulate)
        # float32 rounding of a length-`depth` sum: bounded by depth·eps·Σ|a||b| (+ |c|).
        bound = 1e-6 * (depth + 2) * (scale + 1)
        assert np.all(np.abs(got - want) <= bound), (m, n, depth)


def test_small_gemm_conv_shapes_repeat_bitwise():
    for m, n, depth in [(32, 256, 800), (64, 64, 800), (800, 256, 32), (75, 32, 1024)]:
        first, want, scale = _run(m, n, depth, False, False, seed=3)
        again, _, _ = _run(m, n, depth, False, False, seed=3)
        np.testing.assert_array_equal(first, again)
        assert np.all(np.abs(first - want) <= 1e-6 * depth * (scale + 1))


def test_small_gemm_rejects_mismatched_shapes():
    from caffeonspark.errors import ShapeError

    with pytest.raises(ShapeError):
        _engine._small_gemm(
            np.zeros((2, 3), np.float32), False, np.zeros((4, 5), np.float32),
            np.zeros((2, 5), np.float32), False,
        )


@pytest.mark.parametrize("accumulate", [False, True])
def test_small_gemm_gather_is_the_gathered_product(accumulate):
    """A(m, l) = a[rows[m] + cols[l]]: an im2col-like gather with overlapping reads."""
    rng = np.random.default_rng(5)
    for m, n, depth in itertools.product([1, 7, 16, 30], [16, 17, 40, 64], [1, 9, 75]):
        a = rng.normal(size=4000).astype(np.float32)
        rows = rng.integers(0, 2000, size=m).astype(np.int32)
        cols = rng.integers(0, 2000, size=depth).astype(np.int32)
        b = rng.normal(size=(depth, n)).astype(np.float32)
        c = rng.normal(size=(m, n)).astype(np.float32)
        gathered = a[rows[:, None] + cols[None, :]].astype(np.float64)
        want = gathered @ b + (c if accumulate else 0)
        _engine._small_gemm_gather(a, rows, cols, b, c, accumulate)
        bound = 1e-6 * (depth + 2) * (np.abs(gathered) @ np.abs(b) + 1)
        assert np.all(np.abs(c - want) <= bound), (m, n, depth)


def test_transpose_blocks_and_ragged_edges():
    rng = np.random.default_rng(9)
    for rows, cols in itertools.product([1, 15, 16, 17, 48, 100], [1, 16, 31, 64]):
        src = rng.normal(size=(rows, cols)).astype(np.float32)
        dst, row_sums = _engine._transpose(src)
        np.testing.assert_array_equal(dst, src.T)
        want = src.astype(np.float64).sum(axis=1)
        np.testing.assert_allclose(row_sums, want, rtol=1e-6, atol=1e-5)
