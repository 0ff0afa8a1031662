"""Reading untrusted HDF5 files (models and solver states) without being led elsewhere.

An HDF5 file can point outside itself and can declare far more than it stores, so every
access here is checked before h5py follows or reads anything:
- links: only hard links are followed (`group.get(name, getlink=True)` first); a soft link
  or an external link (which would open another file) is a FormatError;
- datasets: external storage (raw bytes taken from another file) and virtual datasets
  (data mapped from other datasets or files) are FormatErrors;
- sizes: the declared shape and dtype are checked before the data is read, since a tiny
  chunked, compressed or fill-value dataset can declare gigabytes. MAX_DATASET_VALUES caps a
  dataset whose expected shape is not known (env CAFFEONSPARK_MAX_H5_VALUES overrides it).
Every refusal is a FormatError naming the file and the object; so is every error h5py
raises on a damaged file (corrupt_is_format_error: KeyError, RuntimeError, OSError, ...).

Tests: tests/hostile/test_model_files.py.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from caffeonspark.errors import CaffeOnSparkError, FormatError

# 2^28 float32 values (1 GiB) is larger than any blob of the nets Caffe ships.
MAX_DATASET_VALUES = int(os.environ.get("CAFFEONSPARK_MAX_H5_VALUES", 1 << 28))
_MAX_STRING_BYTES = 1 << 16  # a path (learned_net)
# What h5py raises on a damaged file: HDF5's error stack surfaces as KeyError (an object
# header it cannot open), RuntimeError (a bad B-tree or heap), OSError, ValueError, TypeError.
_H5_ERRORS = (KeyError, RuntimeError, OSError, ValueError, TypeError)


@contextlib.contextmanager
def corrupt_is_format_error(path: str) -> Iterator[None]:
    """Around a whole read: h5py's errors on a damaged file become a FormatError naming it."""
    try:
        yield
    except CaffeOnSparkError:
        raise
    except _H5_ERRORS as err:
        raise FormatError(f"{path}: corrupt HDF5 file ({type(err).__name__}: {err})") from None


def _h5py() -> Any:
    import h5py

    return h5py


def child(group: Any, name: str, path: str) -> Any:
    """group[name], followed only when it is a hard link inside this file."""
    h5py = _h5py()
    where = f"{path}: {group.name.rstrip('/')}/{name}"
    try:
        link = group.get(name, getlink=True)
    except _H5_ERRORS as err:  # a damaged link table; KeyError below means "absent"
        raise FormatError(f"{where}: cannot read the link ({err})") from None
    if link is None:
        raise KeyError(name)
    if not isinstance(link, h5py.HardLink):
        raise FormatError(f"{where} is a {type(link).__name__}; only objects stored in the "
                          "file itself are read")
    try:
        return group[name]
    except _H5_ERRORS as err:  # a damaged object header
        raise FormatError(f"{where}: cannot open ({err})") from None


def subgroup(group: Any, name: str, path: str) -> Any:
    """A hard-linked group."""
    obj = child(group, name, path)
    if not isinstance(obj, _h5py().Group):
        raise FormatError(f"{path}: {obj.name} is not a group")
    return obj


def dataset(group: Any, name: str, path: str) -> Any:
    """A hard-linked dataset whose bytes live in this file."""
    obj = child(group, name, path)
    if not isinstance(obj, _h5py().Dataset):
        raise FormatError(f"{path}: {obj.name} is not a dataset")
    if obj.external:
        raise FormatError(f"{path}: {obj.name} keeps its data in external files; refused")
    if obj.is_virtual:
        raise FormatError(f"{path}: {obj.name} is a virtual dataset; refused")
    if obj.shape is None:
        raise FormatError(f"{path}: {obj.name} has no dataspace")
    return obj


def declared_count(data: Any) -> int:
    """The number of values the dataset declares (Python ints: no overflow)."""
    count = 1
    for dim in data.shape:
        count *= int(dim)
    return count


def read_floats(data: Any, path: str) -> np.ndarray:
    """A float dataset as float32, refused when it declares more than MAX_DATASET_VALUES.

    Callers that know the shape they want check data.shape before calling this."""
    if data.dtype.kind != "f":
        raise FormatError(f"{path}: {data.name} holds {data.dtype}, not floating point values")
    count = declared_count(data)
    if count > MAX_DATASET_VALUES:
        raise FormatError(
            f"{path}: {data.name} declares shape {data.shape} ({count} values), more than "
            f"{MAX_DATASET_VALUES} (CAFFEONSPARK_MAX_H5_VALUES)"
        )
    return np.asarray(_read(data, path), dtype=np.float32)


def read_int(data: Any, path: str) -> int:
    """A one-integer dataset, whatever its shape: Caffe writes shape (1,) (docs/CAFFE.md
    §5.1), older project files a scalar."""
    if data.dtype.kind not in "iu" or declared_count(data) != 1:
        raise FormatError(f"{path}: {data.name} is not one integer ({data.dtype}, "
                          f"shape {data.shape})")
    return int(np.asarray(_read(data, path)).reshape(()))


def read_string(data: Any, path: str) -> str:
    """A one-string dataset, fixed-length (Caffe's) or variable-length."""
    if data.dtype.kind not in "SO" or declared_count(data) != 1:
        raise FormatError(f"{path}: {data.name} is not one string ({data.dtype}, "
                          f"shape {data.shape})")
    if data.dtype.kind == "S" and data.dtype.itemsize > _MAX_STRING_BYTES:
        raise FormatError(f"{path}: {data.name} declares a {data.dtype.itemsize}-byte string")
    value = np.asarray(_read(data, path)).reshape(()).item()
    try:
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)
    except UnicodeDecodeError:
        raise FormatError(f"{path}: {data.name} is not UTF-8") from None


def sorted_indices(group: Any, path: str) -> list[str]:
    """The member names of a blob group (`0`, `1`, ...) in numeric order."""
    names = list(group.keys())
    if not all(name.isdigit() for name in names):
        raise FormatError(f"{path}: {group.name} has members that are not blob indices: "
                          f"{names[:5]}")
    return sorted(names, key=int)


def _read(data: Any, path: str) -> Any:
    try:
        return data[()]
    except (OSError, ValueError, TypeError) as err:
        raise FormatError(f"{path}: cannot read {data.name} ({err})") from None
