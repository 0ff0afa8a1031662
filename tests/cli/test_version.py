"""`caffeonspark --version`: the version, then what this build includes
(python/caffeonspark/cli_version.py)."""

from __future__ import annotations

import ctypes

import scipy_openblas32

from caffeonspark._native import _engine


def test_version_lists_the_build(console):
    result = console("--version")
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith("caffeonspark ")
    assert lines[1].startswith(f"BLAS: scipy-openblas32 {scipy_openblas32.__version__} (")
    assert lines[2] == ("CUDA: yes" if _engine.has_cuda else "CUDA: no")
    assert lines[3:6] == [f"{name}: no (not built in this version)"
                          for name in ("cuDNN", "NCCL", "UCX")]
    try:
        ctypes.CDLL("libcrypto.so.3")
        crypto = "yes"
    except OSError:
        crypto = "no (install OpenSSL 3's libcrypto for -encrypt_ring)"
    assert lines[6:] == [f"encrypted ring (libcrypto.so.3): {crypto}"]
