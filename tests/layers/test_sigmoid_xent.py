"""SigmoidCrossEntropyLoss (cpp/layers/sigmoid_xent.cc): forward against a float64 NumPy
cross entropy (computed directly from sigmoid(x), not from the stable form the layer uses),
gradients by finite differences, every loss_param normalization with and without
ignore_label, the BATCH_SIZE default and the deprecated `normalize`, large scores staying
finite, shape and target-gradient errors, and the real-Caffe probe."""

import numpy as np
import pytest
from caffe_ref import check_probe
from layer_check import GradientSettings, build_probe, check_layer

from caffeonspark.errors import ConfigError, ShapeError

LOSS_GRADIENT = GradientSettings(step=1e-2, threshold=1e-2)


def _normal(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _targets(shape, seed=0, ignore=None, fraction=0.3):
    rng = np.random.default_rng(seed)
    t = rng.random(size=shape).astype(np.float32)
    if ignore is not None:
        t[rng.random(size=shape) < fraction] = ignore
    return t


def _reference(x, t, ignore, mode):
    p = 1.0 / (1.0 + np.exp(-x))
    per = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    keep = np.ones_like(x, bool) if ignore is None else t.astype(np.int64) != ignore
    valid = int(keep.sum())
    norm = {"FULL": x.size, "VALID": valid, "BATCH_SIZE": x.shape[0], "NONE": 1}[mode]
    return np.sum(per[keep]) / max(1.0, norm)


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
@pytest.mark.parametrize("ignore", [None, -1])
def test_normalizations(mode, ignore):
    x = _normal((3, 4, 2), seed=1) * 2
    t = _targets((3, 4, 2), seed=2, ignore=ignore)
    loss = f"loss_param {{ normalization: {mode} " + (
        f"ignore_label: {ignore} }}" if ignore is not None else "}"
    )
    check_layer(
        f'type: "SigmoidCrossEntropyLoss" {loss}',
        {"x": x, "t": t},
        lambda inp, p: [np.asarray(_reference(inp["x"], inp["t"], ignore, mode))],
        gradient=LOSS_GRADIENT,
        check_bottoms=["x"],
    )


@pytest.mark.parametrize(
    ("loss", "mode"),
    [
        ("", "BATCH_SIZE"),
        ("loss_param { normalize: true }", "VALID"),
        ("loss_param { normalize: false }", "BATCH_SIZE"),
        ("loss_param { normalize: false normalization: FULL }", "FULL"),
    ],
)
def test_default_is_batch_size_and_normalize_applies_only_alone(loss, mode):
    x = _normal((4, 5), seed=3)
    t = _targets((4, 5), seed=4)
    net = build_probe(f'type: "SigmoidCrossEntropyLoss" {loss}', {"x": x, "t": t})
    net.native.forward_from_to(1, 1)
    want = _reference(x.astype(np.float64), t.astype(np.float64), None, mode)
    np.testing.assert_allclose(float(net.blobs["top0"].data), want, rtol=1e-5)


def test_gradient_is_sigmoid_minus_target_times_weight():
    x = _normal((2, 6), seed=5) * 3
    t = _targets((2, 6), seed=6, ignore=3, fraction=0.25)
    net = build_probe(
        'type: "SigmoidCrossEntropyLoss" loss_weight: 2.5 '
        "loss_param { ignore_label: 3 normalization: VALID }",
        {"x": x, "t": t},
    )
    net.native.forward_from_to(1, 1)
    net.native.backward_from_to(1, 1)
    x64, t64 = x.astype(np.float64), t.astype(np.float64)
    keep = t.astype(np.int64) != 3
    want = np.where(keep, (1 / (1 + np.exp(-x64)) - t64) * 2.5 / keep.sum(), 0.0)
    np.testing.assert_allclose(net.blobs["x"].diff, want, rtol=1e-5, atol=1e-7)


def test_large_scores_stay_finite():
    x = np.array([[80.0, -80.0, 30.0, -30.0]], np.float32)
    t = np.array([[0.0, 1.0, 1.0, 0.0]], np.float32)
    net = build_probe('type: "SigmoidCrossEntropyLoss"', {"x": x, "t": t})
    net.native.forward_from_to(1, 1)
    # log(1 + e^80) ~ 80 twice, log(1 + e^-30) ~ 9.4e-14 twice.
    np.testing.assert_allclose(float(net.blobs["top0"].data), 160.0, rtol=1e-6)


def test_count_mismatch_and_target_gradient_errors():
    with pytest.raises(ShapeError, match="probe"):
        build_probe(
            'type: "SigmoidCrossEntropyLoss"',
            {"x": np.zeros((2, 3), np.float32), "t": np.zeros((2, 4), np.float32)},
        )
    net = build_probe(
        'type: "SigmoidCrossEntropyLoss" propagate_down: true propagate_down: true',
        {"x": np.zeros((2, 3), np.float32), "t": np.zeros((2, 3), np.float32)},
    )
    net.native.forward_from_to(1, 1)
    with pytest.raises(ConfigError, match="probe.*target"):
        net.native.backward_from_to(1, 1)


def test_matches_caffe():
    check_probe("sigmoid_xent")
