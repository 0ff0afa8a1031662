"""ArgMax (cpp/layers/argmax.cc): indices and values of the top_k largest entries against a
NumPy reference, with and without axis, with out_max_val, Caffe's top shapes (at least 3
axes without axis), ties (the larger index first), the refusal to backpropagate, and
top_k / axis errors naming the layer."""

import numpy as np
import pytest
from layer_check import build_probe, check_layer

from caffeonspark.errors import ConfigError, ShapeError


def _normal(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _order(values):
    """Indices of `values` from largest to smallest; equal values: larger index first."""
    return sorted(range(len(values)), key=lambda j: (values[j], j), reverse=True)


def _reference(x, top_k, out_max_val, axis):
    if axis is None:
        rows = x.reshape(x.shape[0], -1)
        shape = [1] * max(x.ndim, 3)
        shape[0], shape[1], shape[2] = x.shape[0], 2 if out_max_val else 1, top_k
        out = np.zeros((x.shape[0], shape[1], top_k))
        for n, row in enumerate(rows):
            idx = _order(row)[:top_k]
            out[n, 0] = idx
            if out_max_val:
                out[n, 1] = row[idx]
        return out.reshape(shape)
    moved = np.moveaxis(x, axis, -1)
    out = np.zeros(moved.shape[:-1] + (top_k,))
    for pos in np.ndindex(moved.shape[:-1]):
        idx = _order(moved[pos])[:top_k]
        out[pos] = moved[pos][idx] if out_max_val else idx
    return np.moveaxis(out, -1, axis)


@pytest.mark.parametrize("out_max_val", [False, True])
@pytest.mark.parametrize(
    ("shape", "top_k", "axis"),
    [
        ((4, 10), 1, None),
        ((3, 2, 3, 2), 3, None),
        ((2, 5), 2, None),
        ((2, 4, 3), 2, 1),
        ((2, 4, 3), 1, -1),
        ((3, 2, 4), 3, 0),
    ],
)
def test_argmax(shape, top_k, axis, out_max_val):
    x = _normal(shape, seed=1)
    axis_text = "" if axis is None else f"axis: {axis}"
    text = (
        f'type: "ArgMax" argmax_param {{ top_k: {top_k} '
        f"out_max_val: {str(out_max_val).lower()} {axis_text} }}"
    )
    a = None if axis is None else axis % len(shape)
    check_layer(
        text,
        {"x": x},
        lambda inp, p: [_reference(inp["x"], top_k, out_max_val, a)],
        gradient=None,
    )


def test_ties_put_the_larger_index_first():
    x = np.array([[1.0, 3.0, 3.0, 0.0, 3.0]], np.float32)
    net = build_probe('type: "ArgMax" argmax_param { top_k: 4 out_max_val: true }', {"x": x})
    net.native.forward_from_to(1, 1)
    np.testing.assert_array_equal(
        net.blobs["top0"].data.reshape(2, 4), [[4, 2, 1, 0], [3, 3, 3, 1]]
    )


def test_default_top_shape_has_three_axes():
    net = build_probe('type: "ArgMax"', {"x": _normal((5, 7))})
    assert net.blobs["top0"].shape == (5, 1, 1)


def test_backward_is_refused():
    net = build_probe('type: "ArgMax"', {"x": _normal((2, 3))})
    net.native.forward_from_to(1, 1)
    with pytest.raises(ConfigError, match="probe.*ArgMax has no gradient"):
        net.native.backward_from_to(1, 1)


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("top_k: 7", ConfigError, "top_k 7 exceeds the 6 values"),
        ("top_k: 4 axis: 1", ConfigError, "top_k 4 exceeds the 3 values"),
        ("top_k: 0", ConfigError, "top_k must be at least 1"),
        ("axis: 3", ShapeError, "argmax_param.axis 3"),
    ],
)
def test_errors_name_the_layer(text, error, match):
    with pytest.raises(error, match=f"probe.*{match}"):
        build_probe(f'type: "ArgMax" argmax_param {{ {text} }}', {"x": _normal((2, 3, 2))})
