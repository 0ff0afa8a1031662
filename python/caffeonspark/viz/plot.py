"""A PNG of training curves: loss and test outputs against iterations and against seconds.

    plot_curves(read_curves("train.log"), "curves.png")

A 2x2 figure (WIDTH x HEIGHT pixels): the top row is the losses (train/loss as displayed,
each test net's loss), the bottom row every other test output (accuracy ...); the left
column against iterations, the right against seconds. Drawn with matplotlib's Agg backend
(no display needed), written under a temporary name then renamed.
Tests: tests/viz/test_plot.py.
"""

from __future__ import annotations

from caffeonspark.atomic_file import atomic_write
from caffeonspark.viz.curves import Curves, Point

__all__ = ["plot_curves", "WIDTH", "HEIGHT"]

WIDTH, HEIGHT, DPI = 1200, 800, 100


def _is_loss(name: str) -> bool:
    return name == "train/loss" or (name.startswith("test") and "loss" in name.split("/")[-1])


def _is_test(name: str) -> bool:
    return name.startswith("test")


def plot_curves(curves: Curves, out: str, title: str = "") -> None:
    """Draw `curves` (curves.py) into the PNG `out`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI)
    axes = figure.subplots(2, 2)
    losses = {n: s for n, s in curves.series.items() if _is_loss(n)}
    others = {n: s for n, s in curves.series.items() if _is_test(n) and not _is_loss(n)}
    for row, (group, what) in enumerate(((losses, "loss"), (others, "test output"))):
        for col, (axis_name, pick) in enumerate(
            (("iterations", _iteration), ("seconds", _seconds))
        ):
            ax = axes[row][col]
            for name, points in sorted(group.items()):
                ax.plot([pick(p) for p in points], [p.value for p in points],
                        marker="o" if len(points) < 30 else None, markersize=3, label=name)
            ax.set_xlabel(axis_name)
            ax.set_ylabel(what)
            ax.grid(True, alpha=0.3)
            if group:
                ax.legend(fontsize="small")
            else:
                ax.text(0.5, 0.5, f"no {what} values", ha="center", va="center",
                        transform=ax.transAxes)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    with atomic_write(out) as handle:
        figure.savefig(handle, format="png", dpi=DPI)


def _iteration(point: Point) -> float:
    return point.iteration


def _seconds(point: Point) -> float:
    return point.seconds
