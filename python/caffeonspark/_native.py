"""Loads the native engine. Importing it has two process-wide effects, each kept because
it is needed or measured, and neither overrides a value the user set:

1. scipy-openblas32's library is loaded RTLD_GLOBAL before the extension. The extension
   carries an rpath to ``../scipy_openblas32/lib``, which fails when the two packages sit in
   different site-packages folders (a user install beside a system one, some virtualenv
   layouts); loading it first by its absolute path covers those. Every symbol of that
   library carries the ``scipy_`` prefix, so making them global cannot shadow NumPy's own
   OpenBLAS or any other BLAS in the process.
2. ``GOMP_SPINCOUNT=1000`` is put in ``os.environ`` (so child processes, e.g. the local
   launcher's ranks, inherit it) unless the user set ``GOMP_SPINCOUNT`` or
   ``OMP_WAIT_POLICY``. libgomp's default lets idle OpenMP workers spin ~300,000 times
   between parallel regions, and the engine always runs other threads beside its teams (data
   feeders, the prefetch thread, communication), which that spinning starves. Measured on the
   2-core box (docs/BENCH_DATA.md): raw 32x32 data went from 9-72k to 127-330k img/s and
   LeNet's solve was no slower. libgomp reads the variable once, when it loads, so it has no
   effect when another module loaded libgomp first.
"""

import ctypes
import os

import scipy_openblas32

if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "1000"

ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(), "libscipy_openblas.so"), mode=ctypes.RTLD_GLOBAL)

from caffeonspark import _engine  # noqa: E402

__all__ = ["_engine"]
