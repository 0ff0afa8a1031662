"""Element-wise activations of cpp/layers/neuron.cc: ReLU (negative_slope), Sigmoid, TanH,
AbsVal, BNLL, ELU, Dropout. Forward against float64 NumPy, gradients by finite differences
(Caffe's neuron settings: step 1e-2, threshold 1e-3, kink 0 +- 0.01 where the gradient jumps),
in-place runs against out-of-place ones, Dropout's mask and scaling, and Caffe's ELU probe."""

import numpy as np
import pytest
from caffe_ref import check_probe
from google.protobuf import text_format
from layer_check import DEFAULT_GRADIENT, GradientSettings, build_probe, check_layer

from caffeonspark import engine
from caffeonspark.errors import ConfigError
from caffeonspark.proto import caffe_pb2

KINK = GradientSettings(step=1e-2, threshold=1e-3, kink=0.0, kink_range=0.01)
SHAPES = [(2, 3, 4, 5), (3, 7), (1, 1, 1, 1), (4,)]


def _x(shape, seed=0, scale=1.0):
    return (scale * np.random.default_rng(seed).normal(size=shape)).astype(np.float32)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# Each case: layer text, float64 reference, gradient settings, input scale.
CASES = {
    "relu": ('type: "ReLU"', lambda x: np.maximum(x, 0), KINK),
    "leaky_relu": (
        'type: "ReLU" relu_param { negative_slope: 0.1 }',
        lambda x: np.where(x > 0, x, 0.1 * x),
        KINK,
    ),
    "sigmoid": ('type: "Sigmoid"', _sigmoid, DEFAULT_GRADIENT),
    "tanh": ('type: "TanH"', np.tanh, DEFAULT_GRADIENT),
    "absval": ('type: "AbsVal"', np.abs, KINK),
    "bnll": ('type: "BNLL"', lambda x: np.log1p(np.exp(x)), DEFAULT_GRADIENT),
    "elu": ('type: "ELU"', lambda x: np.where(x > 0, x, np.exp(x) - 1), KINK),
    "elu_alpha": (
        'type: "ELU" elu_param { alpha: 0.3 }',
        lambda x: np.where(x > 0, x, 0.3 * (np.exp(x) - 1)),
        KINK,
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_neuron_forward_and_gradient(case, shape):
    text, ref, gradient = CASES[case]
    check_layer(
        text, {"x": _x(shape, seed=len(shape))}, lambda inp, p: [ref(inp["x"])], gradient=gradient
    )


@pytest.mark.parametrize("case", ["sigmoid", "tanh", "bnll"])
def test_saturating_neurons_at_large_inputs(case):
    text, ref, _ = CASES[case]
    x = np.array([-200.0, -60.0, -20.0, 0.0, 20.0, 60.0, 200.0], np.float32)
    net = check_layer(text, {"x": x}, lambda inp, p: [ref(inp["x"])], gradient=None)
    assert np.all(np.isfinite(net.blobs["top0"].data))


@pytest.mark.parametrize("case", sorted(CASES))
def test_in_place_matches_out_of_place(case):
    text, _, _ = CASES[case]
    x = _x((2, 3, 4), seed=7)
    dy = _x((2, 3, 4), seed=8)
    apart = build_probe(text, {"x": x})
    apart.native.forward_from_to(1, 1)
    apart.blobs["top0"].diff[...] = dy
    apart.native.backward_from_to(1, 1)
    inplace = build_probe(text, {"x": x}, tops=["x"])
    inplace.native.forward_from_to(1, 1)
    np.testing.assert_allclose(inplace.blobs["x"].data, apart.blobs["top0"].data, rtol=1e-6)
    inplace.blobs["x"].diff[...] = dy
    inplace.native.backward_from_to(1, 1)
    np.testing.assert_allclose(inplace.blobs["x"].diff, apart.blobs["x"].diff, rtol=1e-6, atol=1e-7)


def test_relu_backward_respects_propagate_down():
    # Without force_backward: InnerProduct -> ReLU (propagate_down false, a loss weight), so
    # the ReLU runs backward but must leave its bottom's diff alone.
    net_param = caffe_pb2.NetParameter()
    text_format.Parse(
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }'
        'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "h" inner_product_param {'
        '  num_output: 4 weight_filler { type: "gaussian" } } }'
        'layer { name: "relu" type: "ReLU" bottom: "h" top: "y" propagate_down: false'
        "  loss_weight: 1 }",
        net_param,
    )
    net = engine.Net(net_param, phase=engine.TRAIN)
    assert net.native.layer_need_backward(2) and not net.native.bottom_need_backward(2)[0]
    net.blobs["x"].data[...] = _x((2, 3), seed=3)
    net.native.forward_from_to(0, 2)
    net.blobs["h"].diff[...] = 7.0
    net.native.backward_from_to(2, 0)
    assert np.all(net.blobs["h"].diff == 7.0)


# ---- Dropout -------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0.5, 0.2, 0.0])
def test_dropout_train_mask_scaling_and_gradient(ratio):
    x = _x((2, 3, 4, 5), seed=11)
    text = f'type: "Dropout" dropout_param {{ dropout_ratio: {ratio} }}'
    # The helper reseeds the RNG before every forward, so the mask repeats in the check.
    net = check_layer(text, {"x": x}, None, phase=caffe_pb2.TRAIN)
    engine.set_random_seed(1701)
    net.native.forward_from_to(1, 1)
    y = net.blobs["top0"].data.astype(np.float64)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / (1.0 - ratio), rtol=1e-6)
    if ratio == 0.0:
        assert kept.all()
    net.blobs["top0"].diff[...] = 1.0
    net.native.backward_from_to(1, 1)
    np.testing.assert_allclose(net.blobs["x"].diff, kept / (1.0 - ratio), rtol=1e-6)


def test_dropout_keeps_about_one_minus_p():
    x = np.ones((200, 500), np.float32)
    engine.set_random_seed(3)
    net = build_probe('type: "Dropout" dropout_param { dropout_ratio: 0.3 }', {"x": x})
    net.native.forward_from_to(1, 1)
    kept = float(np.mean(net.blobs["top0"].data != 0))
    assert abs(kept - 0.7) < 0.01  # 1e5 draws: standard error 0.0015
    again = net.blobs["top0"].data.copy()
    net.native.forward_from_to(1, 1)
    assert not np.array_equal(again, net.blobs["top0"].data), "mask must be redrawn each forward"


def test_dropout_mask_repeats_with_the_seed():
    x = _x((4, 50), seed=2)
    net = build_probe('type: "Dropout"', {"x": x})
    outs = []
    for _ in range(2):
        engine.set_random_seed(42)
        net.native.forward_from_to(1, 1)
        outs.append(net.blobs["top0"].data.copy())
    np.testing.assert_array_equal(outs[0], outs[1])


def test_dropout_test_phase_is_identity():
    x = _x((2, 3, 4), seed=5)
    net = check_layer(
        'type: "Dropout" dropout_param { dropout_ratio: 0.6 }',
        {"x": x},
        lambda inp, p: [inp["x"]],
        phase=caffe_pb2.TEST,
    )
    net.blobs["top0"].diff[...] = 2.5
    net.native.backward_from_to(1, 1)
    assert np.all(net.blobs["x"].diff == 2.5)


def test_dropout_in_place_train():
    x = _x((3, 40), seed=6)
    net = build_probe('type: "Dropout"', {"x": x}, tops=["x"])
    net.native.forward_from_to(1, 1)
    y = net.blobs["x"].data.copy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], 2 * x[kept], rtol=1e-6)
    net.blobs["x"].diff[...] = 1.0
    net.native.backward_from_to(1, 1)
    np.testing.assert_allclose(net.blobs["x"].diff, 2.0 * kept)


@pytest.mark.parametrize("ratio", [1.0, -0.1])
def test_dropout_rejects_bad_ratio(ratio):
    with pytest.raises(ConfigError, match="probe.*dropout_ratio"):
        build_probe(
            f'type: "Dropout" dropout_param {{ dropout_ratio: {ratio} }}',
            {"x": np.zeros((2, 2), np.float32)},
        )


# ---- Caffe probes --------------------------------------------------------------------------


def test_elu_matches_caffe():
    check_probe("elu")
