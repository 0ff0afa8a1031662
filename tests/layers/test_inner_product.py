"""InnerProduct: forward against NumPy, gradients by finite differences (axis, transpose)."""

import numpy as np
import pytest
from caffe_ref import check_probe
from layer_check import check_layer


def _filler(kind="gaussian"):
    return (
        f'weight_filler {{ type: "{kind}" std: 0.5 }} bias_filler {{ type: "gaussian" std: 0.5 }}'
    )


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 7), (1, 1, 1, 1)])
def test_inner_product_default_axis(shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    check_layer(
        f'type: "InnerProduct" inner_product_param {{ num_output: 4 {_filler()} }}',
        {"x": x},
        lambda inp, p: [inp["x"].reshape(shape[0], -1) @ p[0].T + p[1]],
    )


def test_inner_product_axis2_transpose_no_bias():
    x = np.random.default_rng(1).normal(size=(3, 2, 5)).astype(np.float32)
    check_layer(
        'type: "InnerProduct" inner_product_param { num_output: 3 axis: 2 transpose: true '
        'bias_term: false weight_filler { type: "gaussian" std: 0.5 } }',
        {"x": x},
        lambda inp, p: [inp["x"] @ p[0]],
    )


def test_inner_product_shape_mismatch_names_layer():
    from layer_check import build_probe

    from caffeonspark.errors import ShapeError

    net = build_probe(
        'type: "InnerProduct" inner_product_param { num_output: 2 }',
        {"x": np.zeros((2, 3), np.float32)},
    )
    net.blobs["x"].reshape(2, 4)
    with pytest.raises(ShapeError, match="probe"):
        net.reshape()


@pytest.mark.parametrize("name", ['ip_transpose_axis2'])
def test_matches_real_caffe_probe(name):
    """Tops, bottom diffs and parameter diffs equal real Caffe's (shared/anchors/caffe-ref)."""
    check_probe(name)
