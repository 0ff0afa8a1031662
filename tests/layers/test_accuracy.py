"""Accuracy (cpp/layers/accuracy.cc): an independent float64 reference (ties count against
the true class), hand-worked examples with ties, top_k, ignore_label (its presence matters:
ignore_label 0 differs from none), per-class accuracy, axis 2, the no-gradient contract under
force_backward, errors, and Caffe's top-3 probe."""

import numpy as np
import pytest
from caffe_ref import check_probe
from layer_check import build_probe, check_layer

from caffeonspark.errors import ConfigError, ShapeError


def _accuracy(scores, labels, axis=1, top_k=1, ignore=None):
    """(overall, per-class) with Caffe's rule: a position is right when fewer than top_k
    other classes score at least as high as the true class."""
    s = np.moveaxis(scores, axis, -1).reshape(-1, scores.shape[axis])
    lab = labels.reshape(-1).astype(int)
    classes = s.shape[1]
    right = np.zeros(classes)
    seen = np.zeros(classes)
    for row, label in zip(s, lab, strict=True):
        if ignore is not None and label == ignore:
            continue
        rivals = np.sum(row >= row[label]) - 1
        seen[label] += 1
        right[label] += rivals < top_k
    overall = right.sum() / seen.sum() if seen.sum() else 0.0
    per_class = np.divide(right, seen, out=np.zeros(classes), where=seen > 0)
    return np.float64(overall), per_class


def _text(top_k=1, axis=1, ignore=None):
    ignore_text = "" if ignore is None else f"ignore_label: {ignore}"
    return f'type: "Accuracy" accuracy_param {{ top_k: {top_k} axis: {axis} {ignore_text} }}'


def test_ties_count_against_the_true_class():
    scores = np.array([[1, 2, 2, 0], [3, 3, 3, 3], [0, 5, 1, 1], [2, 1, 0, 2]], np.float32)
    labels = np.array([1, 2, 1, 3], np.float32)
    # row 0: one rival ties (right from k=2); row 1: three rivals tie (from k=4); row 2: a
    # clear winner (always right); row 3: one rival ties (from k=2).
    for top_k, want in [(1, 0.25), (2, 0.75), (3, 0.75), (4, 1.0)]:
        check_layer(
            _text(top_k),
            {"x": scores, "label": labels},
            lambda inp, p, k=top_k, w=want: [np.float64(w)],
            gradient=None,
        )


@pytest.mark.parametrize("top_k", [1, 2, 5])
@pytest.mark.parametrize("ignore", [None, 0, 3])
def test_random_scores_against_reference(top_k, ignore):
    rng = np.random.default_rng(top_k * 10 + (ignore or 0))
    scores = np.round(rng.normal(size=(40, 6)), 1).astype(np.float32)  # rounding makes ties
    labels = rng.integers(0, 6, size=40).astype(np.float32)
    check_layer(
        _text(top_k, ignore=ignore),
        {"x": scores, "label": labels},
        lambda inp, p: list(_accuracy(inp["x"], inp["label"], 1, top_k, ignore)),
        num_tops=2,
        gradient=None,
    )


def test_ignore_label_zero_differs_from_none():
    scores = np.array([[0, 1], [0, 1], [1, 0]], np.float32)
    labels = np.array([0, 1, 0], np.float32)
    check_layer(
        _text(), {"x": scores, "label": labels}, lambda inp, p: [np.float64(2 / 3)], gradient=None
    )
    check_layer(
        _text(ignore=0),
        {"x": scores, "label": labels},
        lambda inp, p: [np.float64(1.0)],
        gradient=None,
    )


def test_all_ignored_gives_zero_and_per_class_zero_for_absent_classes():
    scores = np.eye(3, dtype=np.float32)
    labels = np.full(3, 7, np.float32)
    check_layer(
        _text(ignore=7),
        {"x": scores, "label": labels},
        lambda inp, p: [np.float64(0), np.zeros(3)],
        num_tops=2,
        gradient=None,
    )


@pytest.mark.parametrize(("shape", "axis"), [((3, 4, 5), 2), ((3, 4, 5), -1), ((2, 5, 3, 2), 1)])
def test_axis(shape, axis):
    rng = np.random.default_rng(3)
    scores = rng.normal(size=shape).astype(np.float32)
    canonical = axis % len(shape)
    label_shape = shape[:canonical] + shape[canonical + 1 :]
    labels = rng.integers(0, shape[canonical], size=label_shape).astype(np.float32)
    labels.reshape(-1)[::4] = -1
    check_layer(
        _text(top_k=2, axis=axis, ignore=-1),
        {"x": scores, "label": labels},
        lambda inp, p: list(_accuracy(inp["x"], inp["label"], canonical, 2, -1)),
        num_tops=2,
        gradient=None,
    )


def test_force_backward_net_runs_backward_without_touching_inputs():
    scores = np.random.default_rng(4).normal(size=(5, 3)).astype(np.float32)
    net = build_probe(_text(), {"x": scores, "label": np.zeros(5, np.float32)})
    assert not any(net.native.bottom_need_backward(1))
    net.blobs["x"].diff[...] = 3.0
    net.native.forward_from_to(1, 1)
    net.native.backward_from_to(1, 1)
    assert np.all(net.blobs["x"].diff == 3.0)


def test_asking_for_a_gradient_is_a_config_error():
    scores = np.random.default_rng(5).normal(size=(5, 3)).astype(np.float32)
    net = build_probe(
        _text() + " loss_weight: 1 propagate_down: true propagate_down: false",
        {"x": scores, "label": np.zeros(5, np.float32)},
    )
    net.native.forward_from_to(1, 1)
    with pytest.raises(ConfigError, match="probe.*no gradient"):
        net.native.backward_from_to(1, 1)


def test_errors_name_the_layer():
    scores = np.zeros((4, 3), np.float32)
    with pytest.raises(ConfigError, match="probe.*top_k 4"):
        build_probe(_text(top_k=4), {"x": scores, "label": np.zeros(4, np.float32)})
    with pytest.raises(ShapeError, match="probe.*label count"):
        build_probe(_text(), {"x": scores, "label": np.zeros(3, np.float32)})
    net = build_probe(_text(), {"x": scores, "label": np.array([0, 1, 3, 2], np.float32)})
    with pytest.raises(ShapeError, match="probe.*label 3"):
        net.native.forward_from_to(1, 1)


def test_top3_matches_caffe():
    check_probe("accuracy_top3")
