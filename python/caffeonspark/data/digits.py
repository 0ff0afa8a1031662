"""A generator of an MNIST-like data set, for training LeNet on a machine with no internet.

Each digit 0-9 is defined here as a few strokes (polylines and elliptic arcs) in a unit box,
with two or three writing styles per digit (a 1 with or without flag and foot, a 7 with or
without crossbar, an open or closed 4, ...). An image is made by:

1. picking a style, bending the strokes with a small random smooth (quadratic) warp and a
   little per-vertex jitter, a random aspect ratio, and in one image out of five a pen lift
   (a short run of up to three segments left out);
2. a random affine map: rotation within +-15 degrees, scale 0.8-1.15, shear, then centring by
   stroke mass at the image centre and a translation of at most +-3 px (mostly near 0);
3. drawing the strokes anti-aliased with a random stroke width (distance of each pixel centre
   to the nearest segment, turned into coverage with a 1 px soft edge);
4. sometimes a stray mark, sometimes a 3x3 blur, then Gaussian noise of random strength,
   clipped and quantised to uint8. White digit on black, 28x28, like MNIST.

There is no elastic distortion. Everything is pure NumPy and deterministic given the seed:
``generate_digits(n, seed)`` returns the same arrays for the same (n, seed). Labels are exactly
balanced (each digit n // 10 or n // 10 + 1 times) in random order.

``write_mnist_like(out_dir, ...)`` writes the four MNIST-named IDX files; run as a module
(``python -m caffeonspark.data.digits OUT_DIR``) it does the same from the command line.

Tests: tests/data/test_digits.py.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from caffeonspark.data.idx import write_idx

__all__ = [
    "IMAGE_SIZE",
    "GLYPHS",
    "generate_digits",
    "write_mnist_like",
    "MNIST_FILES",
]

IMAGE_SIZE = 28

# MNIST's file names: (images, labels) for the training and the test split.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

_Point = tuple[float, float]


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int) -> list[_Point]:
    """Points of an elliptic arc from angle a0 to a1 (degrees; 0 = right, 90 = up), n segments.

    The unit box has y pointing down, so "up" means smaller y.
    """
    t = np.radians(np.linspace(a0, a1, n + 1))
    return [(float(cx + rx * np.cos(a)), float(cy - ry * np.sin(a))) for a in t]


# GLYPHS[d] is a list of styles; a style is a list of strokes; a stroke is a polyline
# (list of (x, y) points in the unit box, x to the right, y down).
GLYPHS: dict[int, list[list[list[_Point]]]] = {
    0: [
        [_arc(0.5, 0.5, 0.30, 0.46, 90, 450, 14)],
        [_arc(0.5, 0.5, 0.23, 0.46, 100, 465, 14)],
    ],
    1: [
        [[(0.5, 0.03), (0.5, 0.97)]],
        [[(0.30, 0.22), (0.53, 0.03), (0.53, 0.97)]],
        [[(0.30, 0.22), (0.53, 0.03), (0.53, 0.97)], [(0.30, 0.97), (0.76, 0.97)]],
    ],
    2: [
        [_arc(0.5, 0.30, 0.28, 0.26, 160, -20, 8) + [(0.18, 0.97), (0.85, 0.97)]],
        [_arc(0.5, 0.32, 0.30, 0.28, 180, -50, 9) + [(0.45, 0.75), (0.2, 0.97), (0.86, 0.96)]],
    ],
    3: [
        [_arc(0.5, 0.27, 0.27, 0.23, 150, -90, 9) + _arc(0.5, 0.73, 0.31, 0.24, 90, -150, 9)[1:]],
        [[(0.2, 0.04), (0.8, 0.04), (0.46, 0.42)] + _arc(0.5, 0.70, 0.31, 0.26, 100, -150, 10)],
    ],
    4: [
        [[(0.66, 0.97), (0.66, 0.03), (0.12, 0.68), (0.88, 0.68)]],
        [[(0.25, 0.03), (0.18, 0.62), (0.85, 0.62)], [(0.68, 0.20), (0.68, 0.97)]],
    ],
    5: [
        [[(0.80, 0.04), (0.30, 0.04), (0.25, 0.44)] + _arc(0.5, 0.68, 0.30, 0.27, 150, -150, 10)],
        [[(0.82, 0.04), (0.30, 0.05), (0.24, 0.42)] + _arc(0.48, 0.66, 0.33, 0.30, 160, -160, 11)],
    ],
    6: [
        [[(0.72, 0.04), (0.50, 0.18), (0.32, 0.40)] + _arc(0.5, 0.72, 0.28, 0.23, 180, 540, 13)],
        [_arc(0.85, 0.60, 0.63, 0.56, 120, 180, 5) + _arc(0.5, 0.74, 0.28, 0.21, 180, 540, 13)[1:]],
    ],
    7: [
        [[(0.15, 0.04), (0.85, 0.04), (0.40, 0.97)]],
        [[(0.15, 0.04), (0.85, 0.04), (0.40, 0.97)], [(0.35, 0.52), (0.75, 0.52)]],
        [[(0.15, 0.14), (0.18, 0.04), (0.85, 0.04), (0.68, 0.35), (0.55, 0.65), (0.50, 0.97)]],
    ],
    8: [
        [_arc(0.5, 0.27, 0.23, 0.22, 270, 630, 12), _arc(0.5, 0.72, 0.28, 0.25, 90, 450, 12)],
        [_arc(0.53, 0.25, 0.20, 0.21, 270, 630, 12), _arc(0.5, 0.70, 0.30, 0.27, 90, 450, 12)],
    ],
    9: [
        [_arc(0.48, 0.30, 0.27, 0.25, 0, 360, 12) + [(0.70, 0.97)]],
        [_arc(0.48, 0.30, 0.27, 0.25, 0, 360, 12) + [(0.74, 0.60), (0.65, 0.85), (0.50, 0.97)]],
    ],
}


class _Style:
    """One glyph style flattened for rendering: vertices and segment endpoint indices."""

    def __init__(self, strokes: Sequence[Sequence[_Point]]) -> None:
        verts: list[_Point] = []
        starts: list[int] = []
        for stroke in strokes:
            base = len(verts)
            verts.extend(stroke)
            starts.extend(range(base, base + len(stroke) - 1))
        self.vertices = np.asarray(verts, dtype=np.float64) - 0.5  # centred unit box
        self.seg_a = np.asarray(starts, dtype=np.intp)
        self.seg_b = self.seg_a + 1


_STYLES: list[list[_Style]] = [[_Style(s) for s in GLYPHS[d]] for d in range(10)]
# A flat style numbering: style id -> (digit, style object).
_FLAT: list[_Style] = [s for d in range(10) for s in _STYLES[d]]
_FIRST_ID = np.cumsum([0] + [len(_STYLES[d]) for d in range(10)])

_CHUNK = 2048
_GLYPH_HEIGHT = 19.0  # px, before the random scale


def _segment_distance2(
    ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray, size: int
) -> np.ndarray:
    """Squared distance from each pixel centre to the nearest segment, per image.

    ax..by have shape (m, S) in pixel coordinates (x = column, y = row); returns (m, size, size).
    """
    m, n_seg = ax.shape
    grid = np.arange(size, dtype=np.float32)
    best = np.full((m, size, size), np.inf, dtype=np.float32)
    t = np.empty((m, size, size), dtype=np.float32)
    qx = np.empty_like(t)
    qy = np.empty_like(t)
    dx_all = (bx - ax).astype(np.float32)
    dy_all = (by - ay).astype(np.float32)
    inv_len2 = 1.0 / np.maximum(dx_all * dx_all + dy_all * dy_all, np.float32(1e-6))
    for s in range(n_seg):
        dx = dx_all[:, s, None, None]
        dy = dy_all[:, s, None, None]
        px = grid[None, None, :] - ax[:, s, None, None].astype(np.float32)  # (m, 1, size)
        py = grid[None, :, None] - ay[:, s, None, None].astype(np.float32)  # (m, size, 1)
        # t = clip(((p - a) . d) / |d|^2, 0, 1): the closest point's position on the segment.
        np.add(
            px * (dx * inv_len2[:, s, None, None]), py * (dy * inv_len2[:, s, None, None]), out=t
        )
        np.clip(t, 0.0, 1.0, out=t)
        np.multiply(t, dx, out=qx)
        np.subtract(px, qx, out=qx)
        np.multiply(t, dy, out=qy)
        np.subtract(py, qy, out=qy)
        np.multiply(qx, qx, out=qx)
        np.multiply(qy, qy, out=qy)
        np.add(qx, qy, out=qx)
        np.minimum(best, qx, out=best)
    return best


def _coverage(dist2: np.ndarray, half_width: np.ndarray) -> np.ndarray:
    """Anti-aliased stroke coverage in [0, 1] from squared distance; soft edge 1 px wide."""
    dist = np.sqrt(dist2, out=dist2)
    hw = half_width.astype(np.float32)[:, None, None]
    cov = np.subtract(hw + np.float32(0.5), dist, out=dist)
    return np.clip(cov, 0.0, 1.0, out=cov)


def _render_style(
    style: _Style, params: dict[str, np.ndarray], rng: np.random.Generator, size: int
) -> np.ndarray:
    """Render len(params['theta']) images of one style; returns float32 coverage (m, size, size)."""
    m = params["theta"].shape[0]
    v = np.broadcast_to(style.vertices, (m, *style.vertices.shape)).copy()  # (m, V, 2)
    ux, uy = v[..., 0], v[..., 1]
    w = params["warp"]  # (m, 6): smooth quadratic bend of the strokes
    bend_x = w[:, 0, None] * ux * uy + w[:, 1, None] * uy * uy + w[:, 2, None] * ux * ux
    bend_y = w[:, 3, None] * ux * uy + w[:, 4, None] * ux * ux + w[:, 5, None] * uy * uy
    v[..., 0] = ux + bend_x
    v[..., 1] = uy + bend_y
    v += rng.normal(0.0, 0.02, size=v.shape)
    v[..., 0] *= params["aspect"][:, None]

    # Affine: scale * rotation * shear (x += k y), in pixels.
    th, k = params["theta"], params["shear"]
    s = params["scale"] * _GLYPH_HEIGHT
    c, sn = np.cos(th), np.sin(th)
    m00, m01 = s * c, s * (c * k - sn)
    m10, m11 = s * sn, s * (sn * k + c)
    x0, y0 = v[..., 0], v[..., 1]
    px = m00[:, None] * x0 + m01[:, None] * y0
    py = m10[:, None] * x0 + m11[:, None] * y0

    ax, ay = px[:, style.seg_a], py[:, style.seg_a]
    bx, by = px[:, style.seg_b], py[:, style.seg_b]
    # Pen lifts: a few images lose a short run of segments (never more than a third).
    n_seg = style.seg_a.size
    max_gap = n_seg // 3
    gapped = np.flatnonzero(params["gap"]) if max_gap >= 1 else np.empty(0, dtype=np.intp)
    if gapped.size:
        g_len = rng.integers(1, max_gap + 1, size=gapped.size)
        g_len = np.minimum(g_len, 3)
        g_start = rng.integers(0, n_seg - g_len + 1)
        seg_idx = np.arange(n_seg)
        drop = np.zeros((m, n_seg), dtype=bool)
        drop[gapped] = (seg_idx >= g_start[:, None]) & (seg_idx < (g_start + g_len)[:, None])
    else:
        drop = np.zeros((m, n_seg), dtype=bool)
    # Centre of stroke mass: length-weighted mean of the segment midpoints.
    seg_len = np.hypot(bx - ax, by - ay) + 1e-9
    cx = (seg_len * (ax + bx)).sum(axis=1) / (2 * seg_len.sum(axis=1))
    cy = (seg_len * (ay + by)).sum(axis=1) / (2 * seg_len.sum(axis=1))
    centre = (size - 1) / 2.0
    ox = centre + params["shift"][:, 0] - cx
    oy = centre + params["shift"][:, 1] - cy
    # Centre by the mass of the whole glyph, then park dropped segments far off the image.
    far = np.where(drop, -1e4, 0.0)
    d2 = _segment_distance2(
        ax + ox[:, None] + far,
        ay + oy[:, None] + far,
        bx + ox[:, None] + far,
        by + oy[:, None] + far,
        size,
    )
    return _coverage(d2, params["half_width"])


def _blur3(img: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur of a batch (m, H, W), zero-padded."""
    p = np.pad(img, ((0, 0), (1, 1), (1, 1)))
    h = 0.25 * p[:, :, :-2] + 0.5 * p[:, :, 1:-1] + 0.25 * p[:, :, 2:]
    return 0.25 * h[:, :-2, :] + 0.5 * h[:, 1:-1, :] + 0.25 * h[:, 2:, :]


def _draw_params(n: int, labels: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-image random parameters, drawn up front for all n images."""
    n_styles = np.array([len(_STYLES[d]) for d in range(10)])
    style_id = _FIRST_ID[labels] + (rng.random(n) * n_styles[labels]).astype(np.intp)
    return {
        "style": style_id,
        "warp": rng.normal(0.0, 0.45, size=(n, 6)),
        "aspect": rng.uniform(0.7, 1.25, size=n),
        "theta": np.radians(rng.uniform(-15.0, 15.0, size=n)),
        "scale": rng.uniform(0.8, 1.15, size=n),
        "shear": rng.uniform(-0.35, 0.35, size=n),
        # Sum of two uniforms: within +-3 px, mostly near the centre.
        "shift": rng.uniform(-1.5, 1.5, size=(n, 2)) + rng.uniform(-1.5, 1.5, size=(n, 2)),
        "half_width": rng.uniform(0.75, 1.7, size=n),
        "peak": rng.uniform(0.85, 1.0, size=n),
        "blur": rng.random(n) < 0.25,
        "noise": rng.uniform(0.0, 0.08, size=n),
        "stray": rng.random(n) < 0.05,
        "gap": rng.random(n) < 0.2,
    }


def generate_digits(n: int, seed: int = 0, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` MNIST-like digit images; deterministic given (n, seed).

    Returns ``(images, labels)``: images uint8 of shape (n, size, size), white digit on black;
    labels uint8 of shape (n,), each of 0-9 equally often (up to n % 10) in random order.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    params = _draw_params(n, labels, rng)
    images = np.empty((n, size, size), dtype=np.uint8)
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        chunk = {k: v[lo:hi] for k, v in params.items()}
        cov = np.zeros((hi - lo, size, size), dtype=np.float32)
        for sid in np.unique(chunk["style"]):
            sel = np.flatnonzero(chunk["style"] == sid)
            sub = {k: v[sel] for k, v in chunk.items()}
            cov[sel] = _render_style(_FLAT[sid], sub, rng, size)
        cov *= chunk["peak"].astype(np.float32)[:, None, None]

        stray = np.flatnonzero(chunk["stray"])
        if stray.size:
            a = rng.uniform(2.0, size - 3.0, size=(stray.size, 2))
            ang = rng.uniform(0.0, np.pi, size=stray.size)
            length = rng.uniform(2.0, 5.0, size=stray.size)
            b = a + length[:, None] * np.stack([np.cos(ang), np.sin(ang)], axis=1)
            d2 = _segment_distance2(a[:, :1], a[:, 1:], b[:, :1], b[:, 1:], size)
            mark = _coverage(d2, rng.uniform(0.5, 1.0, size=stray.size))
            mark *= rng.uniform(0.4, 1.0, size=stray.size).astype(np.float32)[:, None, None]
            cov[stray] = np.maximum(cov[stray], mark)

        blur = np.flatnonzero(chunk["blur"])
        if blur.size:
            cov[blur] = _blur3(cov[blur])

        noise = rng.standard_normal(size=cov.shape, dtype=np.float32)
        noise *= chunk["noise"].astype(np.float32)[:, None, None]
        cov += noise
        np.clip(cov, 0.0, 1.0, out=cov)
        images[lo:hi] = np.rint(cov * np.float32(255.0)).astype(np.uint8)
    return images, labels


def write_mnist_like(
    out_dir: str | os.PathLike[str],
    n_train: int = 60000,
    n_test: int = 10000,
    seed: int = 1,
) -> dict[str, Path]:
    """Generate the set and write MNIST-named IDX files into ``out_dir``.

    The training split uses ``seed`` and the test split ``seed + 1_000_003`` (independent draws).
    Returns the written paths, keyed ``train_images``, ``train_labels``, ``test_images``,
    ``test_labels``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for split, count, split_seed in (("train", n_train, seed), ("test", n_test, seed + 1_000_003)):
        images, labels = generate_digits(count, split_seed)
        img_name, lbl_name = MNIST_FILES[split]
        write_idx(out / img_name, images)
        write_idx(out / lbl_name, labels)
        written[f"{split}_images"] = out / img_name
        written[f"{split}_labels"] = out / lbl_name
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the MNIST-like IDX files into a directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--n-train", type=int, default=60000)
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    for name, path in write_mnist_like(args.out_dir, args.n_train, args.n_test, args.seed).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
