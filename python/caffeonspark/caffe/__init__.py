"""pycaffe as a drop-in: `import caffeonspark.caffe as caffe`, or
`caffeonspark.caffe.install_as_caffe()` once, after which `import caffe` (and
`from caffe import layers as L, params as P`, `from caffe.proto import caffe_pb2`,
`import caffe.io`) give these modules.

Net, the solvers, NetSpec, io, draw, Layer, Classifier, Detector, Timer and the mode
switches behave as pycaffe's do, on the native engine; docs/PYCAFFE.md lists what is
covered and where it differs.

Tests: tests/caffe/.
"""

from __future__ import annotations

import sys

from caffeonspark import engine as _engine_py
from caffeonspark._native import _engine
from caffeonspark.caffe import draw, io, net_spec, proto
from caffeonspark.caffe.classifier import Classifier
from caffeonspark.caffe.detector import Detector
from caffeonspark.caffe.layer import Layer
from caffeonspark.caffe.net_spec import NetSpec, layers, params, to_proto
from caffeonspark.caffe.pycaffe import Net
from caffeonspark.caffe.solvers import (
    AdaDeltaSolver,
    AdaGradSolver,
    AdamSolver,
    NesterovSolver,
    RMSPropSolver,
    SGDSolver,
    get_solver,
)
from caffeonspark.caffe.timer import Timer
from caffeonspark.proto import caffe_pb2 as _caffe_pb2

TRAIN = _caffe_pb2.TRAIN
TEST = _caffe_pb2.TEST

set_mode_cpu = _engine_py.set_mode_cpu
set_mode_gpu = _engine_py.set_mode_gpu
set_device = _engine_py.set_device
set_random_seed = _engine_py.set_random_seed

__version__ = "1.0.0"  # the pycaffe API level these modules follow

__all__ = [
    "AdaDeltaSolver", "AdaGradSolver", "AdamSolver", "Classifier", "Detector", "Layer",
    "NesterovSolver", "Net", "NetSpec", "RMSPropSolver", "SGDSolver", "TEST", "TRAIN", "Timer",
    "get_solver", "draw", "install_as_caffe", "io", "layer_type_list", "layers", "net_spec", "params", "proto",
    "set_device", "set_mode_cpu", "set_mode_gpu", "set_random_seed", "to_proto",
]


def layer_type_list() -> list[str]:
    """The layer types the engine can build, sorted (Caffe's LayerRegistry::LayerTypeList)."""
    return sorted(_engine.layer_types())


def install_as_caffe() -> None:
    """Make `import caffe` (and its submodules) resolve to these modules, so pycaffe
    scripts run unchanged. Refuses to replace a different `caffe` already imported."""
    this = sys.modules[__name__]
    existing = sys.modules.get("caffe")
    if existing is not None and existing is not this:
        raise ImportError(f"another module named 'caffe' is already imported ({existing!r})")
    sys.modules["caffe"] = this
    for sub in ("draw", "io", "net_spec", "proto", "pycaffe", "layer", "solvers", "classifier", "detector"):
        sys.modules[f"caffe.{sub}"] = sys.modules[f"{__name__}.{sub}"]
    sys.modules["caffe.proto.caffe_pb2"] = _caffe_pb2
