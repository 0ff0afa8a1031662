"""Compare one layer against real BVLC Caffe outputs (shared/anchors/caffe-ref/probe_*).

Each probe is a prototxt (Input -> one layer named "l", force_backward) and an npz with the
inputs (blob/<input>), Caffe's parameters (param/l/<i>), its tops (blob/<top>) and, after one
backward, diffs (diff/<blob>) and parameter diffs (pdiff/l/<i>). Non-loss probes start the
backward from the stored top diff; loss probes from loss weight 1. Tests skip with a reason
when the shared folder (beside the repository root) is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from caffeonspark import engine

CAFFE_REF = Path(__file__).resolve().parents[2] / ".." / "shared" / "anchors" / "caffe-ref"
RTOL = 1e-5


def probe_files(name: str) -> tuple[Path, Path]:
    prototxt = CAFFE_REF / f"probe_{name}.prototxt"
    arrays = CAFFE_REF / f"probe_{name}.npz"
    if not (prototxt.exists() and arrays.exists()):
        pytest.skip(f"Caffe reference probe_{name} not found under {CAFFE_REF}")
    return prototxt, arrays


def _close(got: np.ndarray, want: np.ndarray, what: str, atol: float) -> None:
    assert got.shape == want.shape, f"{what}: shape {got.shape} != Caffe's {want.shape}"
    scale = np.maximum(np.abs(want), atol / RTOL)
    err = float(np.max(np.abs(got.astype(np.float64) - want) / scale)) if want.size else 0.0
    assert err <= RTOL, f"{what}: relative error {err:.3g} vs Caffe"


def check_probe(
    name: str, *, loss: bool = False, backward: bool = True, atol: float = 1e-6
) -> engine.Net:
    """Forward (and backward) the probe net and compare every stored array.

    Differences are relative to max(|Caffe's value|, atol / RTOL), so values near zero are
    compared with an absolute tolerance of `atol`.
    """
    prototxt, arrays_path = probe_files(name)
    arrays = np.load(arrays_path)
    net = engine.Net(str(prototxt), phase=engine.TEST)
    for blob in net.inputs:
        net.blobs[blob].data[...] = arrays[f"blob/{blob}"]
    for i, param in enumerate(net.params.get("l", [])):
        param.data[...] = arrays[f"param/l/{i}"]
    net.forward()
    tops = [b for b in net.blobs if b not in net.inputs]
    for blob in tops:
        _close(net.blobs[blob].data, arrays[f"blob/{blob}"], f"top {blob}", atol)
    if not backward:
        return net
    net.native.clear_param_diffs()
    if not loss:
        for blob in tops:
            net.blobs[blob].diff[...] = arrays[f"diff/{blob}"]
    net.native.backward_from_to(len(net.layer_names) - 1, 1)
    for blob in net.inputs:
        if blob != "label":
            _close(net.blobs[blob].diff, arrays[f"diff/{blob}"], f"diff of {blob}", atol)
    for i, param in enumerate(net.params.get("l", [])):
        _close(param.diff, arrays[f"pdiff/l/{i}"], f"param {i} diff", atol)
    return net
