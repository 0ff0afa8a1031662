"""The seeing-training verbs of the `caffeonspark` command (python/caffeonspark/cli.py):

    caffeonspark plot LOG|EVENTS -o curves.png [-title T]
    caffeonspark draw NET.prototxt OUT.png [-rankdir LR|TB|BT|RL] [-phase TRAIN|TEST|ALL]

and `tensorboard_for(solver, logdir)`, the context train -tensorboard DIR runs the solver
in. plot reads a training log (the stderr of `caffeonspark train`) or a TensorBoard event
folder or file; draw renders a net prototxt with graphviz's dot (docs/VISUALISE.md).
Tests: tests/viz/test_plot.py, tests/viz/test_draw.py, tests/viz/test_tensorboard.py.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from caffeonspark.errors import FormatError


def _flag(parser: argparse.ArgumentParser, name: str, **kwargs) -> None:
    parser.add_argument(f"-{name}", f"--{name}", dest=name.replace("-", "_"), **kwargs)


def add_viz_verbs(verbs) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add plot and draw to the subparsers `verbs`; returns verb -> handler."""
    plot = verbs.add_parser("plot", help="loss and test outputs against iterations and seconds")
    plot.add_argument("source", help="training log, or TensorBoard event folder or file")
    plot.add_argument("-o", "--o", "-out", "--out", dest="out", required=True,
                      help="PNG to write")
    _flag(plot, "title", default="", help="figure title")

    draw = verbs.add_parser("draw", help="a diagram of a net prototxt (graphviz)")
    draw.add_argument("net", help="net prototxt")
    draw.add_argument("out", help="image to write (.png, .svg, .pdf)")
    _flag(draw, "rankdir", default="LR", choices=["LR", "TB", "BT", "RL"],
          help="direction the net flows (LR)")
    _flag(draw, "phase", default="ALL", choices=["TRAIN", "TEST", "ALL"],
          help="layers of this phase only (ALL: every layer)")
    return {"plot": plot_verb, "draw": draw_verb}


def plot_verb(args: argparse.Namespace) -> int:
    from caffeonspark.viz.curves import read_curves
    from caffeonspark.viz.plot import plot_curves

    curves = read_curves(args.source)
    if not curves.series:
        raise FormatError(f"{args.source}: no display, test or scalar values found")
    plot_curves(curves, args.out, title=args.title)
    print(f"{', '.join(sorted(curves.series))} -> {args.out}")
    return 0


def draw_verb(args: argparse.Namespace) -> int:
    from caffeonspark.model_io import read_net_prototxt
    from caffeonspark.viz.draw import net_graph, write_graph

    graph = net_graph(read_net_prototxt(args.net), phase=args.phase, rankdir=args.rankdir)
    write_graph(graph, args.out)
    print(f"{args.net} ({args.phase}) -> {args.out}")
    return 0


@contextlib.contextmanager
def tensorboard_for(solver: Any, logdir: str | None) -> Iterator[Any]:
    """A TensorBoardLogger on `solver` writing to `logdir` while the body trains, closed
    after; nothing when logdir is None."""
    if not logdir:
        yield None
        return
    from caffeonspark.viz.tensorboard import TensorBoardLogger

    logger = TensorBoardLogger(solver, logdir)
    try:
        yield logger
    finally:
        logger.close()
