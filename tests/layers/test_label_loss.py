"""MultinomialLogisticLoss, HingeLoss and InfogainLoss (cpp/layers/label_loss.cc): forward
against float64 NumPy, gradients by finite differences (labels excluded), the 1e-20
probability clamp, L1/L2 hinge, infogain H from a third bottom or a .binaryproto `source`
(identity H equals SoftmaxWithLoss), axis, ignore_label and normalization, the probability
top, and the errors (label range, shapes, missing H, label gradient)."""

import numpy as np
import pytest
from layer_check import GradientSettings, build_probe, check_layer

from caffeonspark import model_io
from caffeonspark.errors import ConfigError, IoError, ShapeError

LOSS_GRADIENT = GradientSettings(step=1e-2, threshold=1e-2)


def _normal(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _labels(shape, classes, seed=0):
    return np.random.default_rng(seed).integers(0, classes, size=shape).astype(np.float32)


def _softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


# ---- MultinomialLogisticLoss ----------------------------------------------------------------


@pytest.mark.parametrize("label_shape", [(4,), (4, 1, 1, 1)])
def test_multinomial_logistic(label_shape):
    rng = np.random.default_rng(1)
    p = rng.uniform(0.2, 1.0, size=(4, 5)).astype(np.float32)
    labels = _labels(label_shape, 5, seed=2)

    def reference(inp, _):
        rows = inp["p"].reshape(4, -1)
        picked = rows[np.arange(4), inp["l"].reshape(-1).astype(int)]
        return [np.asarray(-np.sum(np.log(picked)) / 4)]

    check_layer(
        'type: "MultinomialLogisticLoss"',
        {"p": p, "l": labels},
        reference,
        gradient=LOSS_GRADIENT,
        check_bottoms=["p"],
    )


def test_multinomial_logistic_clamps_at_1e_minus_20():
    p = np.array([[0.0, 1.0], [0.5, 0.5]], np.float32)
    net = build_probe(
        'type: "MultinomialLogisticLoss"', {"p": p, "l": np.array([0, 1], np.float32)}
    )
    net.native.forward_from_to(1, 1)
    want = (-np.log(1e-20) - np.log(0.5)) / 2
    np.testing.assert_allclose(float(net.blobs["top0"].data), want, rtol=1e-5)
    net.native.backward_from_to(1, 1)
    np.testing.assert_allclose(net.blobs["p"].diff, [[-0.5 / 1e-20, 0], [0, -0.5 / 0.5]], rtol=1e-5)


# ---- HingeLoss -----------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_hinge(norm):
    x = _normal((5, 4), seed=3)
    labels = _labels((5,), 4, seed=4)

    def reference(inp, _):
        t = -np.ones((5, 4))
        t[np.arange(5), inp["l"].astype(int)] = 1
        d = np.maximum(0, 1 - t * inp["x"])
        return [np.asarray((np.sum(d) if norm == "L1" else np.sum(d * d)) / 5)]

    check_layer(
        f'type: "HingeLoss" hinge_loss_param {{ norm: {norm} }}',
        {"x": x, "l": labels},
        reference,
        gradient=GradientSettings(step=1e-2, threshold=1e-2, kink=1.0, kink_range=2e-2),
        check_bottoms=["x"],
    )


def test_hinge_default_is_l1_and_gradient_signs():
    x = np.array([[0.5, 2.0, -3.0]], np.float32)
    net = build_probe('type: "HingeLoss" loss_weight: 2', {"x": x, "l": np.array([0], np.float32)})
    net.native.forward_from_to(1, 1)
    # margins: label 1 - 0.5 = 0.5; others max(0, 1 + 2) = 3 and max(0, 1 - 3) = 0.
    np.testing.assert_allclose(float(net.blobs["top0"].data), 3.5, rtol=1e-6)
    net.native.backward_from_to(1, 1)
    np.testing.assert_allclose(net.blobs["x"].diff, [[-2.0, 2.0, 0.0]])


# ---- InfogainLoss --------------------------------------------------------------------------


def _infogain_reference(x, labels, h, axis, ignore=None, mode="VALID"):
    p = np.moveaxis(_softmax(x, axis), axis, -1)
    p = p.reshape(-1, p.shape[-1])
    lab = labels.reshape(-1).astype(int)
    keep = np.ones(lab.shape, bool) if ignore is None else lab != ignore
    loss = -np.sum(h[lab[keep]] * np.log(np.maximum(p[keep], 1e-20)))
    outer = int(np.prod(x.shape[: axis % x.ndim]))
    norm = {"FULL": lab.size, "VALID": int(keep.sum()), "BATCH_SIZE": outer, "NONE": 1}[mode]
    return loss / max(1.0, norm)


def _h(classes, seed=5):
    return np.random.default_rng(seed).uniform(0, 1, size=(classes, classes)).astype(np.float32)


@pytest.mark.parametrize(
    ("shape", "axis", "label_shape"),
    [
        ((4, 3), 1, (4,)),
        ((2, 3, 2, 2), 1, (2, 2, 2)),
        ((2, 2, 3), 2, (2, 2)),
        ((2, 2, 3), -1, (2, 2, 1)),
    ],
)
def test_infogain_third_bottom(shape, axis, label_shape):
    classes = shape[axis]
    x = _normal(shape, seed=6)
    labels = _labels(label_shape, classes, seed=7)
    h = _h(classes)
    check_layer(
        f'type: "InfogainLoss" infogain_loss_param {{ axis: {axis} }}',
        {"x": x, "l": labels, "H": h},
        lambda inp, p: [np.asarray(_infogain_reference(inp["x"], inp["l"], inp["H"], axis))],
        gradient=LOSS_GRADIENT,
        check_bottoms=["x"],
    )


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
def test_infogain_source_file_ignore_label_and_normalization(tmp_path, mode):
    h = _h(4, seed=8)
    source = tmp_path / "H.binaryproto"
    model_io.write_binaryproto(source, h.reshape(1, 1, 4, 4))
    x = _normal((3, 4, 2), seed=9)
    labels = _labels((3, 2), 4, seed=10)
    labels[0, 1] = labels[2, 0] = 7
    check_layer(
        f'type: "InfogainLoss" infogain_loss_param {{ source: "{source}" }} '
        f"loss_param {{ ignore_label: 7 normalization: {mode} }}",
        {"x": x, "l": labels},
        lambda inp, p: [
            np.asarray(_infogain_reference(inp["x"], inp["l"], h.astype(np.float64), 1, 7, mode))
        ],
        gradient=LOSS_GRADIENT,
        check_bottoms=["x"],
    )


def test_infogain_identity_equals_softmax_with_loss_and_probability_top():
    x = _normal((5, 3), seed=11)
    labels = _labels((5,), 3, seed=12)
    eye = np.eye(3, dtype=np.float32)
    info = build_probe(
        'type: "InfogainLoss" loss_weight: 1 loss_weight: 0',
        {"x": x, "l": labels, "H": eye},
        num_tops=2,
    )
    soft = build_probe('type: "SoftmaxWithLoss"', {"x": x, "l": labels})
    for net in (info, soft):
        net.native.forward_from_to(1, 1)
        net.native.backward_from_to(1, 1)
    np.testing.assert_allclose(info.blobs["top0"].data, soft.blobs["top0"].data, rtol=1e-5)
    np.testing.assert_allclose(info.blobs["x"].diff, soft.blobs["x"].diff, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        info.blobs["top1"].data, _softmax(x.astype(np.float64), 1), rtol=1e-5
    )


@pytest.mark.parametrize(
    ("text", "inputs", "error", "match"),
    [
        ('type: "InfogainLoss"', {"x": (2, 3), "l": (2,)}, ConfigError, "source"),
        ('type: "InfogainLoss"', {"x": (2, 3), "l": (2,), "H": (2, 2)}, ShapeError, "classes"),
        ('type: "InfogainLoss"', {"x": (2, 3), "l": (3,), "H": (3, 3)}, ShapeError, "label"),
        (
            'type: "InfogainLoss" loss_param { normalize: true }',
            {"x": (2, 3), "l": (2,), "H": (3, 3)},
            ConfigError,
            "normalize",
        ),
        (
            'type: "InfogainLoss" infogain_loss_param { source: "/nonexistent/H.binaryproto" }',
            {"x": (2, 3), "l": (2,)},
            IoError,
            "infogain_loss_param.source",
        ),
        ('type: "MultinomialLogisticLoss"', {"x": (2, 3), "l": (2, 2)}, ShapeError, "labels"),
        ('type: "HingeLoss"', {"x": (2, 3), "l": (3,)}, ShapeError, "first dimension"),
    ],
)
def test_setup_errors(text, inputs, error, match):
    arrays = {k: np.zeros(v, np.float32) for k, v in inputs.items()}
    with pytest.raises(error, match=f"probe.*{match}|{match}.*probe"):
        build_probe(text, arrays)


@pytest.mark.parametrize("kind", ["MultinomialLogisticLoss", "HingeLoss", "InfogainLoss"])
def test_label_out_of_range_and_label_gradient(kind):
    x = np.full((2, 3), 0.5, np.float32)
    inputs = {"x": x, "l": np.array([0, 3], np.float32)}
    if kind == "InfogainLoss":
        inputs["H"] = np.eye(3, dtype=np.float32)
    net = build_probe(f'type: "{kind}"', inputs)
    with pytest.raises(ShapeError, match="probe.*label 3"):
        net.native.forward_from_to(1, 1)
    inputs["l"] = np.array([0, 2], np.float32)
    net = build_probe(f'type: "{kind}" ' + "propagate_down: true " * len(inputs), inputs)
    net.native.forward_from_to(1, 1)
    with pytest.raises(ConfigError, match="probe.*label"):
        net.native.backward_from_to(1, 1)
