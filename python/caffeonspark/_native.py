"""Loads the native engine, making sure scipy-openblas32's library is found first.

The extension carries an rpath to ``../scipy_openblas32/lib``; loading the library
RTLD_GLOBAL here also covers installs where site-packages directories differ.

Before libgomp loads (with the engine), GOMP_SPINCOUNT defaults to 1000 unless the user set
it or OMP_WAIT_POLICY: libgomp's own default lets idle OpenMP workers spin ~300,000 times
between parallel regions, and the engine always runs other threads beside its teams (data
feeders, the prefetch thread, communication). Measured on the 2-core box
(docs/BENCH_DATA.md): raw 32x32 data went from 9-72k to 127-330k img/s and LeNet's solve
was no slower. libgomp reads the variable once, so it has no effect when another module loaded
libgomp first.
"""

import ctypes
import os

import scipy_openblas32

if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "1000"

ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(), "libscipy_openblas.so"), mode=ctypes.RTLD_GLOBAL)

from caffeonspark import _engine  # noqa: E402

__all__ = ["_engine"]
