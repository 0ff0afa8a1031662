"""A local temporary folder owned by Python objects: removed when the last object holding it
is garbage-collected (weakref.finalize), when one calls release() on it, or at interpreter
exit. The Spark ML stages keep a fitted model's files in one (estimator.py, model.py); copies
of a stage share the same OwnedFolder, so the folder lives as long as any of them.

    files = OwnedFolder("caffe-model-")   # files.path: a fresh folder
    stage._files = files                  # gone once nothing refers to `files`

Tests: tests/ml/test_cleanup.py.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from typing import Any

__all__ = ["OwnedFolder"]


class OwnedFolder:
    """A fresh folder under the temporary directory, removed with this object."""

    def __init__(self, prefix: str) -> None:
        self.path = tempfile.mkdtemp(prefix=prefix)
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.path, ignore_errors=True)

    def release(self) -> None:
        """Remove the folder now (also done when this object is collected)."""
        self._finalizer()

    @property
    def alive(self) -> bool:
        return self._finalizer.alive

    # Stage copies (copy.copy / deepcopy in pyspark.ml) share the folder, never duplicate
    # the finalizer: a duplicate would remove it while the original still uses it.
    def __copy__(self) -> OwnedFolder:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> OwnedFolder:
        return self
