"""Filter and BatchReindex (cpp/layers/filter_reindex.cc): forward against NumPy indexing,
gradients by finite differences and exact scatter/accumulate checks, Filter's set-up shape
(all items) and per-forward reshape (including nothing kept), several filtered bottoms, and
the errors (selector shape, item counts, index range, gradient to selector or indices)."""

import numpy as np
import pytest
from layer_check import build_probe, check_layer

from caffeonspark.errors import ConfigError, ShapeError


def _normal(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# ---- Filter --------------------------------------------------------------------------------


@pytest.mark.parametrize("selector_shape", [(5,), (5, 1), (5, 1, 1, 1)])
def test_filter_one_bottom(selector_shape):
    x = _normal((5, 3, 2), seed=1)
    s = np.array([1, 0, 2.5, 0, -1], np.float32).reshape(selector_shape)
    check_layer(
        'type: "Filter"',
        {"x": x, "s": s},
        lambda inp, p: [inp["x"][inp["s"].reshape(-1) != 0]],
        check_bottoms=["x"],
    )


def test_filter_two_bottoms_scatter_back():
    a = _normal((4, 3), seed=2)
    b = _normal((4, 2, 2), seed=3)
    s = np.array([0, 1, 0, 1], np.float32)
    net = build_probe('type: "Filter"', {"a": a, "b": b, "s": s}, num_tops=2)
    assert net.blobs["top0"].data.shape == (4, 3)  # set-up: every item
    net.native.forward_from_to(1, 1)
    np.testing.assert_array_equal(net.blobs["top0"].data, a[[1, 3]])
    np.testing.assert_array_equal(net.blobs["top1"].data, b[[1, 3]])
    dy0 = _normal((2, 3), seed=4)
    dy1 = _normal((2, 2, 2), seed=5)
    net.blobs["top0"].diff[...] = dy0
    net.blobs["top1"].diff[...] = dy1
    net.blobs["a"].diff[...] = 7  # overwritten, not accumulated
    net.native.backward_from_to(1, 1)
    want_a = np.zeros_like(a)
    want_a[[1, 3]] = dy0
    want_b = np.zeros_like(b)
    want_b[[1, 3]] = dy1
    np.testing.assert_array_equal(net.blobs["a"].diff, want_a)
    np.testing.assert_array_equal(net.blobs["b"].diff, want_b)


def test_filter_keeps_nothing_and_reshapes_each_forward():
    x = _normal((3, 2), seed=6)
    net = build_probe('type: "Filter"', {"x": x, "s": np.zeros(3, np.float32)})
    net.native.forward_from_to(1, 1)
    assert net.blobs["top0"].data.shape == (0, 2)
    net.blobs["s"].data[...] = [1, 1, 0]
    net.native.forward_from_to(1, 1)
    np.testing.assert_array_equal(net.blobs["top0"].data, x[:2])


@pytest.mark.parametrize(
    ("inputs", "tops", "error", "match"),
    [
        ({"x": (4, 2), "s": (4, 2)}, 1, ShapeError, "selector"),
        ({"x": (4, 2), "s": (3,)}, 1, ShapeError, "items"),
        ({"x": (4, 2), "y": (4,), "s": (4,)}, 1, ConfigError, "one top per filtered bottom"),
    ],
)
def test_filter_errors(inputs, tops, error, match):
    arrays = {k: np.ones(v, np.float32) for k, v in inputs.items()}
    with pytest.raises(error, match=f"probe.*{match}"):
        build_probe('type: "Filter"', arrays, num_tops=tops)


def test_filter_selector_takes_no_gradient():
    net = build_probe(
        # loss_weight makes the layer part of the loss, so propagate_down stays as written.
        'type: "Filter" loss_weight: 1 propagate_down: true propagate_down: true',
        {"x": np.ones((2, 2), np.float32), "s": np.ones(2, np.float32)},
    )
    net.native.forward_from_to(1, 1)
    with pytest.raises(ConfigError, match="probe.*selector"):
        net.native.backward_from_to(1, 1)


# ---- BatchReindex ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "index",
    [[2, 0, 1, 3], [3, 3, 0], [1], [0, 1, 2, 3, 0, 1]],
    ids=["perm", "repeat", "one", "more"],
)
def test_batch_reindex(index):
    x = _normal((4, 3, 2), seed=7)
    r = np.array(index, np.float32)
    check_layer(
        'type: "BatchReindex"',
        {"x": x, "r": r},
        lambda inp, p: [inp["x"][inp["r"].astype(int)]],
        check_bottoms=["x"],
    )


def test_batch_reindex_backward_accumulates_repeats():
    x = _normal((3, 2), seed=8)
    r = np.array([2, 0, 2, 2], np.float32)
    dy = _normal((4, 2), seed=9)
    net = build_probe('type: "BatchReindex"', {"x": x, "r": r})
    net.native.forward_from_to(1, 1)
    net.blobs["top0"].diff[...] = dy
    net.native.backward_from_to(1, 1)
    want = np.zeros((3, 2))
    np.add.at(want, [2, 0, 2, 2], dy.astype(np.float64))
    np.testing.assert_allclose(net.blobs["x"].diff, want, rtol=1e-6)


def test_batch_reindex_errors():
    with pytest.raises(ShapeError, match="probe.*1-D"):
        build_probe(
            'type: "BatchReindex"',
            {"x": np.ones((3, 2), np.float32), "r": np.zeros((2, 1), np.float32)},
        )
    net = build_probe(
        'type: "BatchReindex" loss_weight: 1 propagate_down: true propagate_down: true',
        {"x": np.ones((3, 2), np.float32), "r": np.array([0, 3], np.float32)},
    )
    with pytest.raises(ShapeError, match=r"probe.*index 3.*\[0, 3\)"):
        net.native.forward_from_to(1, 1)
    net.blobs["r"].data[...] = [0, 2]
    net.native.forward_from_to(1, 1)
    with pytest.raises(ConfigError, match="probe.*index input"):
        net.native.backward_from_to(1, 1)
