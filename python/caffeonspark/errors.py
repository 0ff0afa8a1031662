"""The exception taxonomy Python sees (mirrors cpp/core/errors.h).

The native module raises these same classes: the binding maps each C++ error type onto
the class of the same name here, so `except caffeonspark.errors.ShapeError` catches both.
The C++ list (COS_ERROR_TYPES, exposed as _engine.error_types()) is the reference: names
and hierarchy here are pinned to it by tests/test_errors.py.
"""


class CaffeOnSparkError(Exception):
    """Base of every error raised by caffeonspark."""


class ConfigError(CaffeOnSparkError, ValueError):
    """A net, solver or flag is invalid: names the file, line, layer or flag at fault."""


class ShapeError(CaffeOnSparkError, ValueError):
    """Blob shapes do not agree (a layer's inputs, a weight copied from a model)."""


class FormatError(CaffeOnSparkError, ValueError):
    """A file is not what its format says: truncated model, corrupt record, bad prototxt."""


class IoError(CaffeOnSparkError, OSError):
    """A file or data source cannot be read or written."""


class CommError(CaffeOnSparkError, RuntimeError):
    """Communication between ranks failed (names the rank and address)."""


class PeerTimeout(CommError, TimeoutError):
    """A peer did not answer within its deadline."""


class CudaError(CaffeOnSparkError, RuntimeError):
    """A CUDA call failed, or the build has no CUDA."""


class InternalError(CaffeOnSparkError, RuntimeError):
    """A broken invariant inside the engine: a bug, please report it."""
