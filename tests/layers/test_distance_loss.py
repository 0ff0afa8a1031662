"""EuclideanLoss and ContrastiveLoss against float64 NumPy, with finite-difference gradients."""

import numpy as np
import pytest
from caffe_ref import check_probe
from layer_check import check_layer

rng = np.random.default_rng(3)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2)])
def test_euclidean_loss(shape):
    a = rng.normal(size=shape).astype(np.float32)
    b = rng.normal(size=shape).astype(np.float32)
    check_layer(
        'type: "EuclideanLoss"',
        {"a": a, "b": b},
        lambda x, p: [np.array(np.sum((x["a"] - x["b"]) ** 2) / shape[0] / 2)],
    )


def _contrastive_reference(margin, legacy):
    def reference(x, p):
        d2 = np.sum((x["a"] - x["b"]).reshape(len(x["y"]), -1) ** 2, axis=1)
        if legacy:
            dissimilar = np.maximum(margin - d2, 0)
        else:
            dissimilar = np.maximum(margin - np.sqrt(d2), 0) ** 2
        per_pair = np.where(x["y"].astype(int) != 0, d2, dissimilar)
        return [np.array(per_pair.sum() / len(x["y"]) / 2)]

    return reference


@pytest.mark.parametrize("legacy", [False, True])
def test_contrastive_loss(legacy):
    a = rng.normal(size=(6, 4, 1, 1)).astype(np.float32) * 0.5
    b = rng.normal(size=(6, 4, 1, 1)).astype(np.float32) * 0.5
    y = np.array([1, 0, 0, 1, 0, 0], np.float32)
    margin = 2.0
    check_layer(
        f'type: "ContrastiveLoss" contrastive_loss_param {{ margin: {margin} '
        f"legacy_version: {str(legacy).lower()} }}",
        {"a": a, "b": b, "y": y},
        _contrastive_reference(margin, legacy),
        check_bottoms=["a", "b"],
    )


def test_contrastive_loss_shape_mismatch_is_a_shape_error():
    from layer_check import build_probe

    from caffeonspark.errors import ShapeError

    with pytest.raises(ShapeError, match="probe"):
        build_probe(
            'type: "ContrastiveLoss"',
            {"a": np.zeros((2, 3), np.float32), "b": np.zeros((2, 4), np.float32),
             "y": np.zeros(2, np.float32)},
        )


@pytest.mark.parametrize("name", ['euclidean', 'contrastive'])
def test_matches_real_caffe_probe(name):
    """Tops, bottom diffs and parameter diffs equal real Caffe's (shared/anchors/caffe-ref)."""
    check_probe(name)
