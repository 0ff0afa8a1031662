"""Loads the native engine, making sure scipy-openblas32's library is found first.

The extension carries an rpath to ``../scipy_openblas32/lib``; loading the library
RTLD_GLOBAL here also covers installs where site-packages directories differ.
"""

import ctypes
import os

import scipy_openblas32

ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(), "libscipy_openblas.so"), mode=ctypes.RTLD_GLOBAL)

from caffeonspark import _engine  # noqa: E402

__all__ = ["_engine"]
