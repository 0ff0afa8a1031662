"""Run a single-layer probe recorded with real BVLC Caffe (shared/anchors/caffe-ref, see its
README.txt) and compare our tops, bottom diffs and parameter diffs with Caffe's.

    check_probe("pool_max_odd")

A probe is probe_<name>.prototxt (Input -> one layer "l", force_backward, sometimes a
Silence after it) plus an npz with
blob/<name> (inputs and tops), diff/<top> (the top diff backward started from), diff/<bottom>,
param/l/<i> and pdiff/l/<i>. Skips when the shared directory is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from caffeonspark import engine

# The `shared` directory beside the repository root.
CAFFE_REF = Path(__file__).resolve().parents[2] / ".." / "shared" / "anchors" / "caffe-ref"
PROBE_RTOL = 1e-5  # relative to max |expected| of each compared array


def caffe_ref_dir() -> Path:
    if not CAFFE_REF.is_dir():
        pytest.skip(f"Caffe reference outputs not found at {CAFFE_REF.resolve()}")
    return CAFFE_REF


def assert_close(label: str, got: np.ndarray, want: np.ndarray, rtol: float = PROBE_RTOL) -> None:
    """max |got - want| <= rtol * max(|want|) (with a floor for all-zero arrays)."""
    got = np.asarray(got, dtype=np.float64).reshape(np.shape(want))
    want = np.asarray(want, dtype=np.float64)
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-20)
    err = float(np.max(np.abs(got - want))) / scale if want.size else 0.0
    assert err <= rtol, f"{label}: max error {err:.3g} relative to max |x| = {scale:.3g}"


def check_probe(name: str, phase: int = engine.TRAIN, rtol: float = PROBE_RTOL) -> engine.Net:
    """Load probe_<name>, feed Caffe's inputs and params, run forward and backward from
    Caffe's top diff, and compare every recorded blob, diff and parameter diff."""
    root = caffe_ref_dir()
    ref = np.load(root / f"probe_{name}.npz")
    net = engine.Net(str(root / f"probe_{name}.prototxt"), phase=phase)
    # The probed layer is "l"; a probe may add layers after it (Crop's Silence).
    index = net.layer_names.index("l") if "l" in net.layer_names else len(net.layer_names) - 1
    layer = net.layer_names[index]
    tops = net._top_names(index)
    for key in ref.files:
        kind, _, rest = key.partition("/")
        if kind == "blob" and rest in net.inputs:
            net.blobs[rest].data[...] = ref[key]
        elif kind == "param":
            net.params[layer][int(rest.split("/")[1])].data[...] = ref[key]
    for param in net.params.get(layer, []):
        param.diff[...] = 0
    net.forward()
    for top in tops:
        if f"diff/{top}" in ref.files:
            net.blobs[top].diff[...] = ref[f"diff/{top}"]
    net.backward()
    for key in ref.files:
        kind, _, rest = key.partition("/")
        if kind == "blob":
            assert_close(key, net.blobs[rest].data, ref[key], rtol)
        elif kind == "diff" and rest not in tops:
            assert_close(key, net.blobs[rest].diff, ref[key], rtol)
        elif kind == "pdiff":
            assert_close(key, net.params[layer][int(rest.split("/")[1])].diff, ref[key], rtol)
    return net
