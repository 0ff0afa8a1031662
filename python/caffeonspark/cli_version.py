"""`caffeonspark --version`: the version and what this build includes.

    caffeonspark 0.1.0
    BLAS: scipy-openblas32 0.3.34.481.3 (OpenBLAS 0.3.34 DYNAMIC_ARCH ... MAX_THREADS=64)
    CUDA: no
    cuDNN: no (not built in this version)
    NCCL: no (not built in this version)
    UCX: no (not built in this version)
    encrypted ring (libcrypto.so.3): yes

The version comes from the installed distribution's metadata, else the package's
__version__, else "unknown" (a checkout run from PYTHONPATH). Each probe that fails says
so on its line instead of failing the command.
Tests: tests/cli/test_version.py.
"""

from __future__ import annotations

import ctypes

__all__ = ["version_text", "package_version", "blas_line", "cuda_line", "libcrypto_line"]

NOT_BUILT = "no (not built in this version)"


def package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("caffeonspark")
    except metadata.PackageNotFoundError:
        import caffeonspark

        return str(getattr(caffeonspark, "__version__", "unknown (not installed)"))


def blas_line() -> str:
    try:
        import scipy_openblas32
    except ImportError:
        return "BLAS: scipy-openblas32 not importable"
    version = getattr(scipy_openblas32, "__version__", "?")
    config = ""
    try:
        config = scipy_openblas32.get_openblas_config()
    except Exception:  # older wheels: ask the library itself
        config = _library_config(scipy_openblas32)
    return f"BLAS: scipy-openblas32 {version}" + (f" ({config})" if config else "")


def _library_config(module: object) -> str:
    try:
        lib = ctypes.CDLL(module.get_library(fullpath=True))  # type: ignore[attr-defined]
        get = lib.scipy_openblas_get_config
        get.restype = ctypes.c_char_p
        return (get() or b"").decode("utf-8", "replace").strip()
    except Exception:
        return ""


def cuda_line() -> str:
    try:
        from caffeonspark._native import _engine
    except ImportError as err:
        return f"CUDA: unknown (the engine does not load: {err})"
    return "CUDA: yes" if getattr(_engine, "has_cuda", False) else "CUDA: no"


def libcrypto_line() -> str:
    try:
        ctypes.CDLL("libcrypto.so.3")
    except OSError:
        return "encrypted ring (libcrypto.so.3): no (install OpenSSL 3's libcrypto for -encrypt_ring)"
    return "encrypted ring (libcrypto.so.3): yes"


def version_text() -> str:
    return "\n".join([
        f"caffeonspark {package_version()}",
        blas_line(),
        cuda_line(),
        f"cuDNN: {NOT_BUILT}",
        f"NCCL: {NOT_BUILT}",
        f"UCX: {NOT_BUILT}",
        libcrypto_line(),
    ])
