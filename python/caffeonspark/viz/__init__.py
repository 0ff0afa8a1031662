"""Seeing training: TensorBoard event files (tensorboard.py, layer_timing.py), loss and
accuracy curves from a log or event files (curves.py, plot.py) and net diagrams
(draw.py); the `plot` and `draw` verbs are cli_viz.py. Needs the `viz` extra
(tensorboardX, matplotlib, pydot) and graphviz's `dot` for draw; docs/VISUALISE.md.
Tests: tests/viz/test_tensorboard.py, tests/viz/test_plot.py, tests/viz/test_draw.py.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TensorBoardLogger"]


def __getattr__(name: str) -> Any:
    # tensorboardX is imported only when the logger is asked for (an optional extra).
    if name == "TensorBoardLogger":
        from caffeonspark.viz.tensorboard import TensorBoardLogger

        return TensorBoardLogger
    raise AttributeError(name)
