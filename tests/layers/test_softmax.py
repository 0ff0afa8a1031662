"""Softmax and SoftmaxWithLoss (cpp/layers/softmax.cc): forward against float64 NumPy on
several axes, gradients by finite differences, every loss normalization (FULL, VALID,
BATCH_SIZE, NONE) with and without ignore_label, the deprecated `normalize`, the 2-top form
and its two loss weights, an all-ignored batch (loss 0), label errors, and Caffe's probes."""

import numpy as np
import pytest
from caffe_ref import check_probe
from layer_check import GradientSettings, build_probe, check_layer

from caffeonspark.errors import ConfigError, ShapeError

LOSS_GRADIENT = GradientSettings(step=1e-2, threshold=1e-2)  # Caffe's softmax-loss setting


def _softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _normal(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize(
    ("shape", "axis"),
    [((2, 3, 4, 5), 1), ((2, 3, 4, 5), 2), ((2, 3, 4, 5), -1), ((5, 7), 1), ((4, 6), 0)],
)
def test_softmax(shape, axis):
    x = _normal(shape, seed=1) * 2
    check_layer(
        f'type: "Softmax" softmax_param {{ axis: {axis} }}',
        {"x": x},
        lambda inp, p: [_softmax(inp["x"], axis)],
    )


def test_softmax_large_inputs_stay_finite():
    x = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]], np.float32)
    check_layer('type: "Softmax"', {"x": x}, lambda inp, p: [_softmax(inp["x"], 1)], gradient=None)


def test_softmax_axis2_matches_caffe():
    check_probe("softmax_axis2")


# ---- SoftmaxWithLoss -------------------------------------------------------------------------


def _labels(shape, classes, seed=0, ignore=None, ignore_fraction=0.3):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=shape).astype(np.float32)
    if ignore is not None:
        labels[rng.random(size=shape) < ignore_fraction] = ignore
    return labels


def _loss_reference(x, labels, axis, ignore, mode):
    """-sum log p_label over non-ignored positions / the mode's normaliser (max 1)."""
    p = np.moveaxis(_softmax(x, axis), axis, -1)  # (outer..., inner..., C)
    lab = labels.reshape(p.shape[:-1]).astype(int)
    valid = np.ones(lab.shape, bool) if ignore is None else lab != ignore
    picked = np.take_along_axis(p, np.where(valid, lab, 0)[..., None], axis=-1)[..., 0]
    total = -np.sum(np.log(np.maximum(picked, np.finfo(np.float32).tiny))[valid])
    norm = {
        "FULL": lab.size,
        "VALID": int(valid.sum()),
        "BATCH_SIZE": int(np.prod(x.shape[:axis])),
        "NONE": 1,
    }[mode]
    return np.float64(total / max(1, norm))


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
@pytest.mark.parametrize("ignore", [None, 2])
def test_softmax_loss_normalizations(mode, ignore):
    x = _normal((3, 4, 2, 3), seed=2)
    labels = _labels((3, 1, 2, 3), 4, seed=3, ignore=ignore)
    ignore_text = "" if ignore is None else f"ignore_label: {ignore}"
    check_layer(
        f'type: "SoftmaxWithLoss" loss_param {{ normalization: {mode} {ignore_text} }}',
        {"x": x, "label": labels},
        lambda inp, p: [_loss_reference(inp["x"], inp["label"], 1, ignore, mode)],
        gradient=LOSS_GRADIENT,
        check_bottoms=["x"],
    )


def test_softmax_loss_default_is_valid_and_label_zero_counts():
    # No ignore_label written: label 0 is an ordinary class (presence of the field matters).
    x = _normal((6, 5), seed=4)
    labels = np.array([0, 0, 1, 4, 0, 3], np.float32)
    check_layer(
        'type: "SoftmaxWithLoss"',
        {"x": x, "label": labels},
        lambda inp, p: [_loss_reference(inp["x"], inp["label"], 1, None, "VALID")],
        gradient=LOSS_GRADIENT,
        check_bottoms=["x"],
    )


def test_softmax_loss_ignore_label_zero():
    x = _normal((6, 5), seed=4)
    labels = np.array([0, 0, 1, 4, 0, 3], np.float32)
    check_layer(
        'type: "SoftmaxWithLoss" loss_param { ignore_label: 0 }',
        {"x": x, "label": labels},
        lambda inp, p: [_loss_reference(inp["x"], inp["label"], 1, 0, "VALID")],
        gradient=LOSS_GRADIENT,
        check_bottoms=["x"],
    )


@pytest.mark.parametrize(
    ("loss_param", "mode"),
    [
        ("normalize: true", "VALID"),
        ("normalize: false", "BATCH_SIZE"),
        ("normalize: false normalization: FULL", "FULL"),
        ("normalize: true normalization: NONE", "NONE"),
        ("normalize: true normalization: VALID", "VALID"),
    ],
)
def test_softmax_loss_deprecated_normalize(loss_param, mode):
    x = _normal((2, 3, 5), seed=5)
    labels = _labels((2, 1, 5), 3, seed=6, ignore=1)
    check_layer(
        f'type: "SoftmaxWithLoss" loss_param {{ ignore_label: 1 {loss_param} }}',
        {"x": x, "label": labels},
        lambda inp, p: [_loss_reference(inp["x"], inp["label"], 1, 1, mode)],
        gradient=None,
    )


@pytest.mark.parametrize("axis", [2, -1])
def test_softmax_loss_on_axis_2(axis):
    # The LRCN layout: scores (T, N, C) with labels (T, N) and ignore_label -1.
    x = _normal((4, 3, 6), seed=7)
    labels = _labels((4, 3), 6, seed=8, ignore=-1)
    check_layer(
        f'type: "SoftmaxWithLoss" softmax_param {{ axis: {axis} }} loss_param {{ ignore_label: -1 }}',
        {"x": x, "label": labels},
        lambda inp, p: [_loss_reference(inp["x"], inp["label"], 2, -1, "VALID")],
        gradient=LOSS_GRADIENT,
        check_bottoms=["x"],
    )


def test_softmax_loss_loss_weight_scales_loss_and_gradient():
    x = _normal((4, 3), seed=9)
    labels = _labels((4,), 3, seed=10)
    net = build_probe('type: "SoftmaxWithLoss" loss_weight: 2.5', {"x": x, "label": labels})
    total = net.native.forward_from_to(1, 1)
    loss = _loss_reference(x.astype(np.float64), labels, 1, None, "VALID")
    np.testing.assert_allclose(total, 2.5 * loss, rtol=1e-5)
    net.native.backward_from_to(1, 1)
    onehot = np.eye(3)[labels.astype(int)]
    np.testing.assert_allclose(
        net.blobs["x"].diff,
        2.5 * (_softmax(x.astype(np.float64), 1) - onehot) / 4,
        rtol=1e-5,
        atol=1e-7,
    )


def test_softmax_loss_two_tops():
    x = _normal((3, 4, 2), seed=11)
    labels = _labels((3, 2), 4, seed=12)
    net = check_layer(
        'type: "SoftmaxWithLoss" loss_weight: 1 loss_weight: 0',
        {"x": x, "label": labels},
        lambda inp, p: [
            _loss_reference(inp["x"], inp["label"], 1, None, "VALID"),
            _softmax(inp["x"], 1),
        ],
        num_tops=2,
        gradient=None,
    )
    assert net.blobs["top0"].shape == () and net.blobs["top1"].shape == (3, 4, 2)


def test_softmax_loss_two_tops_need_two_loss_weights():
    inputs = {"x": _normal((3, 4), seed=13), "label": _labels((3,), 4, seed=14)}
    with pytest.raises(ConfigError, match="probe.*loss_weight"):
        build_probe('type: "SoftmaxWithLoss"', inputs, num_tops=2)
    with pytest.raises(ConfigError, match="probe.*loss_weight"):
        build_probe('type: "SoftmaxWithLoss" loss_weight: 1', inputs, num_tops=2)


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
def test_softmax_loss_all_ignored_is_zero(mode):
    x = _normal((3, 4), seed=15)
    labels = np.full((3,), 2, np.float32)
    net = build_probe(
        f'type: "SoftmaxWithLoss" loss_param {{ ignore_label: 2 normalization: {mode} }}',
        {"x": x, "label": labels},
    )
    assert net.native.forward_from_to(1, 1) == 0.0
    net.blobs["x"].diff[...] = 9.0
    net.native.backward_from_to(1, 1)
    assert np.all(net.blobs["x"].diff == 0.0)


def test_softmax_loss_label_errors_name_the_layer():
    with pytest.raises(ShapeError, match="probe.*label count"):
        build_probe(
            'type: "SoftmaxWithLoss"', {"x": _normal((3, 4)), "label": np.zeros((4,), np.float32)}
        )
    net = build_probe(
        'type: "SoftmaxWithLoss"', {"x": _normal((3, 4)), "label": np.array([0, 5, 1], np.float32)}
    )
    with pytest.raises(ShapeError, match="probe.*label 5"):
        net.native.forward_from_to(1, 1)


def test_softmax_loss_probes_match_caffe():
    check_probe("softmaxloss_ignore_valid")
    check_probe("softmaxloss_ignore_batch")
