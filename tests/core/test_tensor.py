"""_engine.Tensor (cpp/core/tensor.h, cpp/core/synced_memory.h): shape and count, reshape
that reallocates only when the capacity grows, zero-filled buffers, `.data` / `.diff` as
NumPy views of engine memory that keep it alive, share_data, and the shape errors."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from caffeonspark._native import _engine
from caffeonspark.errors import ShapeError


def test_shape_and_count():
    t = _engine.Tensor([2, 3, 4])
    assert t.shape == [2, 3, 4]
    assert t.count == 24
    assert _engine.Tensor([5]).count == 5
    assert _engine.Tensor([3, 0, 2]).count == 0
    assert _engine.Tensor([]).count == 1  # a scalar, as Caffe's Blob


def test_views_are_float32_c_order_and_zero_filled():
    t = _engine.Tensor([3, 5])
    for view in (t.data, t.diff):
        assert view.dtype == np.float32
        assert view.shape == (3, 5)
        assert view.flags.c_contiguous and view.flags.writeable
        assert not view.flags.owndata  # engine memory, not a copy
        np.testing.assert_array_equal(view, np.zeros((3, 5), np.float32))


def test_views_write_through_and_data_diff_are_separate():
    t = _engine.Tensor([2, 3])
    first = t.data
    first[...] = np.arange(6, dtype=np.float32).reshape(2, 3)
    second = t.data
    np.testing.assert_array_equal(second, np.arange(6).reshape(2, 3))
    second[1, 2] = -7.5
    assert first[1, 2] == np.float32(-7.5)
    assert np.shares_memory(first, second)
    t.diff[...] = 2.0
    np.testing.assert_array_equal(t.data.ravel(), [0, 1, 2, 3, 4, -7.5])
    np.testing.assert_array_equal(t.diff, np.full((2, 3), 2.0, np.float32))
    assert not np.shares_memory(t.data, t.diff)


def test_view_keeps_memory_alive_after_tensor_is_dropped():
    t = _engine.Tensor([1000])
    view = t.data
    view[...] = np.arange(1000, dtype=np.float32)
    del t
    gc.collect()
    _engine.Tensor([1000]).data[...] = -1.0  # churn the allocator
    np.testing.assert_array_equal(view, np.arange(1000, dtype=np.float32))
    view[0] = 42.0  # still writable memory
    assert view[0] == 42.0


def test_reshape_within_capacity_keeps_the_buffer():
    t = _engine.Tensor([2, 3])
    t.data[...] = np.arange(6, dtype=np.float32).reshape(2, 3)
    before = t.data
    t.reshape([3, 2])
    assert t.shape == [3, 2] and t.count == 6
    np.testing.assert_array_equal(t.data, np.arange(6).reshape(3, 2))
    t.reshape([1, 2])  # shrink: the prefix of the same buffer
    np.testing.assert_array_equal(t.data, [[0, 1]])
    t.reshape([6])  # grow back up to the capacity: no reallocation, values still there
    np.testing.assert_array_equal(t.data, np.arange(6))
    assert np.shares_memory(before, t.data)


def test_reshape_past_capacity_reallocates_zeroed_buffers():
    t = _engine.Tensor([4])
    t.data[...] = 9.0
    t.diff[...] = 3.0
    old = t.data
    t.reshape([2, 5])
    assert t.count == 10
    np.testing.assert_array_equal(t.data, np.zeros((2, 5), np.float32))
    np.testing.assert_array_equal(t.diff, np.zeros((2, 5), np.float32))
    assert not np.shares_memory(old, t.data)
    np.testing.assert_array_equal(old, np.full(4, 9.0, np.float32))  # old view still valid


def test_share_data_shares_values_not_diffs():
    a = _engine.Tensor([4])
    b = _engine.Tensor([2, 2])
    b.share_data(a)
    a.data[...] = [1, 2, 3, 4]
    np.testing.assert_array_equal(b.data, [[1, 2], [3, 4]])
    b.data[0, 0] = 10
    assert a.data[0] == 10
    b.diff[...] = 5
    np.testing.assert_array_equal(a.diff, np.zeros(4, np.float32))
    assert b.shape == [2, 2]  # sharing keeps each tensor's own shape
    # the shared buffer outlives the tensor that allocated it
    del a
    gc.collect()
    np.testing.assert_array_equal(b.data.ravel(), [10, 2, 3, 4])


def test_share_data_needs_equal_counts():
    with pytest.raises(ShapeError, match=r"\(2, 2\).*\(3\)"):
        _engine.Tensor([2, 2]).share_data(_engine.Tensor([3]))


def test_shape_errors():
    with pytest.raises(ShapeError, match="negative dimension"):
        _engine.Tensor([2, -1])
    t = _engine.Tensor([3])
    with pytest.raises(ShapeError, match="negative dimension"):
        t.reshape([-3])
    assert t.shape == [3]  # a failed reshape leaves the tensor as it was
    with pytest.raises(ShapeError, match="2\\^31"):
        _engine.Tensor([65536, 65536])
