"""caffe.Layer: the base class pycaffe's Python layers derive from.

The engine has no "Python" layer type yet, so a net naming one raises NotImplementedError
when it is built (caffe/pycaffe.py); the class is here so modules defining such layers
import unchanged. Tests: tests/caffe/test_net_api.py.
"""

from __future__ import annotations

from typing import Any


class Layer:
    """Override setup, reshape, forward and backward; `param_str` is python_param's string."""

    param_str: str = ""
    phase: int = 1

    def setup(self, bottom: list[Any], top: list[Any]) -> None:
        """Check the bottoms and read param_str, once, before the first reshape."""

    def reshape(self, bottom: list[Any], top: list[Any]) -> None:
        """Reshape the tops from the bottoms' shapes."""

    def forward(self, bottom: list[Any], top: list[Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__}.forward is not written")

    def backward(self, top: list[Any], propagate_down: list[bool], bottom: list[Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__}.backward is not written")
