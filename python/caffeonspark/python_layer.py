"""The Python half of the engine's "Python" layer type (cpp/bindings/python_layer.h).

`create_layer` is called by the engine, holding the GIL, when a net builds a layer with
`type: "Python"`: it imports `python_param.module` (from sys.path, then from the folder of
the net's prototxt, which is on the path only while the module loads), takes the class
`python_param.layer` from it, builds it as pycaffe does (with the LayerParameter) and gives
it `param_str`, `phase` (0 TRAIN, 1 TEST) and `blobs` (caffe/layer.py LayerBlobs). Every
failure is a ConfigError naming the layer, its prototxt line, the module and the class.

`describe_error` turns an exception raised by the user's code into the engine error the
layer throws: its kind (a caffeonspark.errors class keeps its own) and its text with the
Python traceback.

Tests: tests/layers/test_python_layer.py.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from types import ModuleType, TracebackType
from typing import Any

from caffeonspark.errors import ConfigError

# The engine's error taxonomy (cpp/core/errors.h), by class name.
_KINDS = (
    "ConfigError", "ShapeError", "FormatError", "IoError", "CommError", "PeerTimeout",
    "CudaError", "InternalError",
)
_METHODS = ("setup", "reshape", "forward", "backward")


def _label(name: str, where: str) -> str:
    return f"layer '{name}' (Python)" + (f" at {where}" if where else "")


def _traceback_text(exc: BaseException, tb: TracebackType | None = None) -> str:
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__)).rstrip()


def _missing(exc: ModuleNotFoundError, module: str) -> bool:
    """True when the module itself (or a package above it) is what was not found."""
    return bool(exc.name) and (module == exc.name or module.startswith(exc.name + "."))


def _import(module: str, module_dir: str, label: str) -> ModuleType:
    added = bool(module_dir) and module_dir not in sys.path
    if added:
        sys.path.append(module_dir)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if _missing(exc, module):
            places = "sys.path" + (f" or in the prototxt's folder {module_dir}" if module_dir else "")
            raise ConfigError(
                f"{label}: python_param.module '{module}' was found neither on {places}"
            ) from None
        hint = ""
        if exc.name == "caffe":
            hint = (" (a pycaffe module imports `caffe`: call caffeonspark.caffe.install_as_caffe()"
                    " first, or import caffeonspark.caffe as caffe)")
        raise ConfigError(
            f"{label}: importing python_param.module '{module}' failed{hint}:\n"
            f"{_traceback_text(exc)}"
        ) from exc
    except Exception as exc:
        raise ConfigError(
            f"{label}: importing python_param.module '{module}' failed:\n{_traceback_text(exc)}"
        ) from exc
    finally:
        if added and module_dir in sys.path:
            sys.path.remove(module_dir)


def create_layer(
    name: str,
    where: str,
    module: str,
    class_name: str,
    param_str: str,
    phase: int,
    module_dir: str,
    layer_proto: bytes,
    blobs: Any,
) -> Any:
    """The user's layer object for one "Python" layer (see the module docstring)."""
    from caffeonspark.caffe.layer import LayerBlobs
    from caffeonspark.proto import caffe_pb2

    label = _label(name, where)
    if not module or not class_name:
        raise ConfigError(
            f"{label}: python_param must name both module and layer (got module "
            f"'{module}', layer '{class_name}')"
        )
    loaded = _import(module, module_dir, label)
    cls = getattr(loaded, class_name, None)
    origin = getattr(loaded, "__file__", None) or module
    if cls is None:
        raise ConfigError(f"{label}: module '{module}' ({origin}) has no class '{class_name}'")
    if not isinstance(cls, type):
        raise ConfigError(f"{label}: '{module}.{class_name}' ({origin}) is not a class")
    if layer_proto:
        param = caffe_pb2.LayerParameter.FromString(layer_proto)
    else:
        param = caffe_pb2.LayerParameter(name=name, type="Python")
        param.python_param.module, param.python_param.layer = module, class_name
        param.python_param.param_str = param_str
    try:
        layer = cls(param)  # pycaffe builds Python layers with their LayerParameter
    except Exception as exc:
        raise ConfigError(
            f"{label}: building {module}.{class_name}(layer_param) raised:\n{_traceback_text(exc)}"
        ) from exc
    missing = [m for m in _METHODS if not callable(getattr(layer, m, None))]
    if missing:
        raise ConfigError(
            f"{label}: {module}.{class_name} has no method {', '.join(missing)} (derive it from "
            "caffeonspark.caffe.Layer)"
        )
    layer.param_str = param_str
    layer.phase = int(phase)
    layer.blobs = LayerBlobs(blobs)
    return layer


def error_kind(exc: BaseException) -> str | None:
    """The caffeonspark.errors class `exc` is (or derives from), by name; None otherwise."""
    for cls in type(exc).__mro__:
        if cls.__module__ == "caffeonspark.errors" and cls.__name__ in _KINDS:
            return cls.__name__
    return None


def describe_error(
    exc: BaseException, tb: TracebackType | None, layer: Any, method: str | None, fallback: str
) -> tuple[str, str]:
    """(engine error kind, text) for an exception raised in the user's `method`; with no
    method (while the layer is built) the exception's own text, which names the layer."""
    kind = error_kind(exc) or fallback
    if method is None:
        return kind, str(exc)
    cls = type(layer)
    where = f"{cls.__module__}.{cls.__qualname__}.{method}"
    return kind, (
        f"{where} raised {type(exc).__name__}: {exc}\n{_traceback_text(exc, tb)}"
    )
