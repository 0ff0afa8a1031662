"""The engine's Net (cpp/net/net.h): blobs by name, in-place tops, loss weights, parameter
sharing by name, which layers need backward (pruning, propagate_down, force_backward) and
the Split layers netspec.py inserts where a blob feeds two layers. Values are checked
against float64 NumPy; EuclideanLoss is sum((y - t)^2) / (2 N)."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from caffeonspark import engine
from caffeonspark.errors import ConfigError, ShapeError
from caffeonspark.proto import caffe_pb2

RTOL, ATOL = 1e-5, 1e-5
GAUSS = 'weight_filler { type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 }'


def build(text: str, force_backward: bool = False, **inputs: np.ndarray) -> engine.Net:
    param = text_format.Parse(text, caffe_pb2.NetParameter(name="n"))
    param.force_backward = force_backward
    net = engine.Net(param, phase=engine.TRAIN)
    for name, value in inputs.items():
        net.blobs[name].data[...] = value
    return net


def f64(blob) -> np.ndarray:
    return blob.astype(np.float64)


def inputs(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype(np.float32) for s in shapes]


def need_backward(net: engine.Net) -> dict[str, bool]:
    native = net.native
    return {name: native.layer_need_backward(i) for i, name in enumerate(native.layer_names)}


def test_blobs_by_name_in_place_relu_and_loss_weight():
    x, t = inputs((4, 5), (4, 3))
    net = build(
        f"""
layer {{ name: "in" type: "Input" top: "x" top: "t"
        input_param {{ shape {{ dim: 4 dim: 5 }} shape {{ dim: 4 dim: 3 }} }} }}
layer {{ name: "fc" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param {{ num_output: 3 {GAUSS} }} }}
layer {{ name: "relu" type: "ReLU" bottom: "y" top: "y" }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "l" loss_weight: 2 }}
""",
        x=x, t=t,
    )
    # the in-place ReLU adds no blob; the net's outputs are the unconsumed tops
    assert list(net.blobs) == ["x", "t", "y", "l"]
    assert net.outputs == ["l"]
    w, b = (f64(p.data) for p in net.params["fc"])
    z = x.astype(np.float64) @ w.T + b
    y = np.maximum(z, 0)
    n = x.shape[0]
    expected_loss = 2 * np.sum((y - t) ** 2) / (2 * n)

    loss = net.native.forward()
    np.testing.assert_allclose(loss, expected_loss, rtol=RTOL)
    np.testing.assert_allclose(net.blobs["y"].data, y, rtol=RTOL, atol=ATOL)
    # as in Caffe the loss top holds the layer's own loss; the weight applies to the net's
    np.testing.assert_allclose(net.blobs["l"].data, expected_loss / 2, rtol=RTOL)

    net.native.clear_param_diffs()
    net.native.backward()
    assert net.blobs["l"].diff == pytest.approx(2.0)  # the loss top's diff is its weight
    dz = 2 * (y - t) / n * (z > 0)
    np.testing.assert_allclose(net.params["fc"][0].diff, dz.T @ x, rtol=1e-4, atol=ATOL)
    np.testing.assert_allclose(net.params["fc"][1].diff, dz.sum(0), rtol=1e-4, atol=ATOL)
    assert not net.blobs["x"].diff.any()  # no force_backward: nothing flows into the inputs


def test_non_loss_top_with_loss_weight_contributes_weighted_sum():
    (x,) = inputs((6, 4), seed=1)
    net = build(
        f"""
layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ dim: 6 dim: 4 }} }} }}
layer {{ name: "fc" type: "InnerProduct" bottom: "x" top: "y" loss_weight: 0.5
        inner_product_param {{ num_output: 3 {GAUSS} }} }}
""",
        x=x,
    )
    w, b = (f64(p.data) for p in net.params["fc"])
    y = x.astype(np.float64) @ w.T + b
    np.testing.assert_allclose(net.native.forward(), 0.5 * y.sum(), rtol=RTOL)
    assert net.native.blob_loss_weights == [0.0, 0.5]
    net.native.clear_param_diffs()
    net.native.backward()
    np.testing.assert_allclose(net.blobs["y"].diff, np.full((6, 3), 0.5))
    np.testing.assert_allclose(net.params["fc"][0].diff, 0.5 * np.ones((3, 6)) @ x, rtol=1e-5)
    np.testing.assert_allclose(net.params["fc"][1].diff, np.full(3, 0.5 * 6), rtol=1e-6)


SHARED = """
layer { name: "in" type: "Input" top: "a" top: "b"
        input_param { shape { dim: 4 dim: 5 } shape { dim: 2 dim: %d } } }
layer { name: "f1" type: "InnerProduct" bottom: "a" top: "y1" loss_weight: 1
        param { name: "w" } param { name: "bias" }
        inner_product_param { num_output: 3
          weight_filler { type: "gaussian" std: 1 } bias_filler { type: "constant" value: 1 } } }
layer { name: "f2" type: "InnerProduct" bottom: "b" top: "y2" loss_weight: 3
        param { name: "w" %s } param { name: "bias" }
        inner_product_param { num_output: 3 } }
"""


def test_parameters_shared_by_name_share_data_and_sum_gradients():
    a, b = inputs((4, 5), (2, 5), seed=2)
    net = build(SHARED % (5, ""), a=a, b=b)
    (w1, b1), (w2, b2) = net.params["f1"], net.params["f2"]
    # one buffer: the sharer's filler did not overwrite the owner's values
    assert np.shares_memory(w1.data, w2.data) and np.shares_memory(b1.data, b2.data)
    np.testing.assert_array_equal(b2.data, np.ones(3))
    native = net.native
    assert len(native.learnable_params) == 2  # owners only
    assert native.learnable_param_id(1, 0) == native.learnable_param_id(2, 0)

    w = f64(w1.data)
    loss = native.forward()
    expected = (a @ w.T + 1).sum() + 3 * (b @ w.T + 1).sum()
    np.testing.assert_allclose(loss, expected, rtol=RTOL)
    native.clear_param_diffs()
    native.backward()
    dw = np.ones((3, 1)) * (a.sum(0) + 3 * b.sum(0))
    np.testing.assert_allclose(w1.diff, dw, rtol=1e-5, atol=ATOL)
    np.testing.assert_allclose(w2.diff, dw, rtol=1e-5, atol=ATOL)
    np.testing.assert_allclose(b1.diff, np.full(3, 4 + 3 * 2.0), rtol=1e-6)

    native.update()  # w -= diff, once for the shared owner
    np.testing.assert_allclose(w2.data, w - dw, rtol=1e-5, atol=ATOL)


def test_shared_parameter_shapes_strict_and_permissive():
    with pytest.raises(ShapeError, match=r"'f2'.*'w'.*\(3, 6\).*\(3, 5\)"):
        build(SHARED % (6, ""))
    with pytest.raises(ShapeError, match="18 elements.*15"):
        build(SHARED % (6, "share_mode: PERMISSIVE"))


PRUNE = f"""
layer {{ name: "in" type: "Input" top: "x" top: "t"
        input_param {{ shape {{ dim: 4 dim: 5 }} shape {{ dim: 4 dim: 3 }} }} }}
layer {{ name: "frozen" type: "InnerProduct" bottom: "x" top: "h"
        param {{ lr_mult: 0 }} param {{ lr_mult: 0 }}
        inner_product_param {{ num_output: 3 {GAUSS} }} }}
layer {{ name: "fc" type: "InnerProduct" bottom: "h" top: "y"
        inner_product_param {{ num_output: 3 {GAUSS} }} }}
layer {{ name: "side" type: "InnerProduct" bottom: "h" top: "s"
        inner_product_param {{ num_output: 2 {GAUSS} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "l"
        propagate_down: true propagate_down: false }}
"""


def _prune_reference(net, x, t):
    wf, bf = (f64(p.data) for p in net.params["frozen"])
    w, b = (f64(p.data) for p in net.params["fc"])
    h = x @ wf.T + bf
    y = h @ w.T + b
    dy = (y - t) / x.shape[0]
    return h, y, dy, w, wf


def test_backward_prunes_frozen_inputs_dead_branches_and_propagate_down_false():
    x, t = inputs((4, 5), (4, 3), seed=3)
    net = build(PRUNE, x=x, t=t)
    assert need_backward(net) == {
        "in": False,
        "frozen": False,  # lr_mult 0 and its bottom needs no gradient
        "h_frozen_0_split": False,
        "fc": True,
        "side": False,  # its top reaches no loss
        "loss": True,
    }
    assert net.native.bottom_need_backward(net.layer_dict["loss"]) == [True, False]
    h, y, dy, w, _ = _prune_reference(net, x, t)
    net.native.forward()
    net.native.clear_param_diffs()
    net.native.backward()
    np.testing.assert_allclose(net.params["fc"][0].diff, dy.T @ h, rtol=1e-4, atol=ATOL)
    np.testing.assert_allclose(net.blobs["y"].diff, dy, rtol=1e-4, atol=ATOL)
    for name in ("t", "x", "h"):
        assert not net.blobs[name].diff.any(), name
    assert not net.params["frozen"][0].diff.any()
    assert not net.params["side"][0].diff.any()


def test_force_backward_reaches_the_inputs():
    x, t = inputs((4, 5), (4, 3), seed=3)
    net = build(PRUNE, force_backward=True, x=x, t=t)
    assert all(need_backward(net).values())
    h, y, dy, w, wf = _prune_reference(net, x, t)
    net.native.forward()
    net.native.clear_param_diffs()
    net.native.backward()
    # "side" contributes nothing to the loss, so h's gradient comes from fc alone
    np.testing.assert_allclose(net.blobs["h"].diff, dy @ w, rtol=1e-4, atol=ATOL)
    np.testing.assert_allclose(net.blobs["x"].diff, dy @ w @ wf, rtol=1e-4, atol=ATOL)
    np.testing.assert_allclose(net.params["frozen"][0].diff, (dy @ w).T @ x, rtol=1e-4,
                               atol=ATOL)
    assert not net.params["side"][0].diff.any()
    # As in Caffe, force_backward overrides propagate_down: false where the layer allows it
    np.testing.assert_allclose(net.blobs["t"].diff, -dy, rtol=1e-4, atol=ATOL)


def test_split_inserted_for_a_blob_feeding_two_layers_sums_gradients():
    (x,) = inputs((3, 4), seed=4)
    net = build(
        f"""
layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ dim: 3 dim: 4 }} }} }}
layer {{ name: "fa" type: "InnerProduct" bottom: "x" top: "ya" loss_weight: 1
        inner_product_param {{ num_output: 2 {GAUSS} }} }}
layer {{ name: "fb" type: "InnerProduct" bottom: "x" top: "yb" loss_weight: 2
        inner_product_param {{ num_output: 5 {GAUSS} }} }}
""",
        force_backward=True,
        x=x,
    )
    assert net.layer_names == ["in", "x_in_0_split", "fa", "fb"]
    assert net.layer_types[1] == "Split"
    assert {"x_in_0_split_0", "x_in_0_split_1"} <= set(net.blobs)
    wa, wb = f64(net.params["fa"][0].data), f64(net.params["fb"][0].data)
    net.native.forward()
    for name in ("x_in_0_split_0", "x_in_0_split_1"):
        np.testing.assert_array_equal(net.blobs[name].data, x)
    net.native.backward()
    expected = np.ones((3, 2)) @ wa + 2 * np.ones((3, 5)) @ wb
    np.testing.assert_allclose(net.blobs["x"].diff, expected, rtol=1e-5, atol=ATOL)


def test_unknown_blob_is_a_config_error_naming_the_net():
    net = build('layer { name: "in" type: "Input" top: "x" '
                'input_param { shape { dim: 1 } } }')
    assert net.native.has_blob("x") and not net.native.has_blob("y")
    with pytest.raises(ConfigError, match="net 'n' has no blob 'y'"):
        net.native.blob("y")
