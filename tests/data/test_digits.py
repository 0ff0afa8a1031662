"""Tests for caffeonspark.data.digits: determinism, shapes, label balance, plausible images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from caffeonspark.data.digits import GLYPHS, generate_digits, write_mnist_like
from caffeonspark.data.idx import read_idx


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray]:
    return generate_digits(500, seed=7)


def test_shapes_and_dtypes(sample: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = sample
    assert images.shape == (500, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (500,) and labels.dtype == np.uint8
    assert labels.max() <= 9


def test_deterministic_given_seed(sample: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = generate_digits(500, seed=7)
    np.testing.assert_array_equal(images, sample[0])
    np.testing.assert_array_equal(labels, sample[1])
    other_images, other_labels = generate_digits(500, seed=8)
    assert not np.array_equal(other_images, images)
    assert not np.array_equal(other_labels, labels)


def test_labels_balanced(sample: tuple[np.ndarray, np.ndarray]) -> None:
    np.testing.assert_array_equal(np.bincount(sample[1], minlength=10), np.full(10, 50))
    _, labels = generate_digits(23, seed=3)
    counts = np.bincount(labels, minlength=10)
    assert counts.sum() == 23 and counts.min() >= 2 and counts.max() <= 3
    # Shuffled, not in 0..9 order.
    assert not np.array_equal(sample[1][:10], np.arange(10))


def test_images_neither_blank_nor_saturated(sample: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = sample
    flat = images.reshape(len(images), -1).astype(np.float64)
    assert (flat.max(axis=1) >= 160).all(), "every image has a bright stroke"
    ink = (flat > 128).mean(axis=1)
    assert (ink > 0.02).all() and (ink < 0.45).all(), (ink.min(), ink.max())
    # Mostly dark background, like MNIST (white digit on black).
    assert np.median(flat) < 20
    # Some images carry noise or blur: intermediate grey levels exist.
    assert ((flat > 10) & (flat < 245)).mean() > 0.05


def test_digits_roughly_centred_by_mass(sample: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = sample
    w = images.astype(np.float64)
    total = w.sum(axis=(1, 2))
    grid = np.arange(28, dtype=np.float64)
    cy = (w.sum(axis=2) * grid).sum(axis=1) / total
    cx = (w.sum(axis=1) * grid).sum(axis=1) / total
    assert np.abs(cy - 13.5).max() < 4.5 and np.abs(cx - 13.5).max() < 4.5
    assert abs(np.mean(cy) - 13.5) < 0.6 and abs(np.mean(cx) - 13.5) < 0.6


def test_classes_differ_on_average(sample: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = sample
    means = np.stack([images[labels == d].mean(axis=0) for d in range(10)]).reshape(10, -1)
    dist = np.linalg.norm(means[:, None] - means[None], axis=2)
    off_diag = dist[~np.eye(10, dtype=bool)]
    assert off_diag.min() > 100  # every pair of class means is visibly different


def test_every_digit_has_styles() -> None:
    assert sorted(GLYPHS) == list(range(10))
    for styles in GLYPHS.values():
        assert styles and all(stroke for style in styles for stroke in style)


def test_zero_and_tiny_n() -> None:
    images, labels = generate_digits(0, seed=1)
    assert images.shape == (0, 28, 28) and labels.shape == (0,)
    images, labels = generate_digits(1, seed=1)
    assert images.shape == (1, 28, 28) and images.max() > 0
    with pytest.raises(ValueError):
        generate_digits(-1)


def test_write_mnist_like(tmp_path: Path) -> None:
    paths = write_mnist_like(tmp_path, n_train=40, n_test=20, seed=5)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        [
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        ]
    )
    train_images = read_idx(paths["train_images"])
    train_labels = read_idx(paths["train_labels"])
    test_images = read_idx(paths["test_images"])
    assert train_images.shape == (40, 28, 28) and train_labels.shape == (40,)
    assert test_images.shape == (20, 28, 28) and read_idx(paths["test_labels"]).shape == (20,)
    expected_images, expected_labels = generate_digits(40, 5)
    np.testing.assert_array_equal(train_images, expected_images)
    np.testing.assert_array_equal(train_labels, expected_labels)
    assert not np.array_equal(test_images, expected_images[:20])  # an independent draw
