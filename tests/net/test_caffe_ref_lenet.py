"""Golden tests of the engine: LeNet and CIFAR-10 quick against real BVLC Caffe.

shared/anchors/caffe-ref holds each net (Input layers, force_backward), the weights Caffe
filled and saved (.caffemodel) and Caffe's forward/backward on one batch
(<net>_fwd_bwd.npz: blob/<name>, diff/<name>, param/<layer>/<i>, pdiff/<layer>/<i>). We load
the same prototxt and weights in the TRAIN phase, feed the same data and labels, run one
forward and one backward, and compare every recorded array within 1e-5 of its max |x|.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from caffeonspark import engine

CAFFE_REF = Path(__file__).resolve().parents[2] / ".." / "shared" / "anchors" / "caffe-ref"
RTOL = 1e-5  # float32 sums in another order: about 1e-6 relative per op


def _relative_error(got: np.ndarray, want: np.ndarray) -> float:
    got = np.asarray(got, dtype=np.float64).reshape(want.shape)
    want = np.asarray(want, dtype=np.float64)
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-20)
    return float(np.max(np.abs(got - want))) / scale if want.size else 0.0


@pytest.mark.parametrize("name", ["lenet", "cifar10_quick"])
def test_forward_backward_matches_caffe(name):
    if not CAFFE_REF.is_dir():
        pytest.skip(f"Caffe reference outputs not found at {CAFFE_REF.resolve()}")
    ref = np.load(CAFFE_REF / f"{name}_fwd_bwd.npz")
    net = engine.Net(
        str(CAFFE_REF / f"{name}.prototxt"),
        weights=str(CAFFE_REF / f"{name}.caffemodel"),
        phase=engine.TRAIN,
    )
    for layer, params in net.params.items():
        for i, param in enumerate(params):
            assert _relative_error(param.data, ref[f"param/{layer}/{i}"]) == 0.0, (
                f"weights of {layer}/{i} differ from Caffe's after loading the .caffemodel"
            )
            param.diff[...] = 0
    net.blobs["data"].data[...] = ref["blob/data"]
    net.blobs["label"].data[...] = ref["blob/label"]
    net.forward()
    net.backward()

    errors = {}
    for key in ref.files:
        kind, _, rest = key.partition("/")
        if kind == "blob":
            got = net.blobs[rest].data
        elif kind == "diff":
            got = net.blobs[rest].diff
        elif kind == "pdiff":
            layer, index = rest.rsplit("/", 1)
            got = net.params[layer][int(index)].diff
        else:
            continue
        errors[key] = _relative_error(got, ref[key])
    compared = {k.partition("/")[0] for k in errors}
    assert compared == {"blob", "diff", "pdiff"}
    bad = {k: f"{e:.3g}" for k, e in errors.items() if not e <= RTOL}
    assert not bad, (
        f"{name}: arrays differing from Caffe by more than {RTOL} of their max |x|: {bad}"
    )
