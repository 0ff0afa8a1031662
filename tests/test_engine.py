"""The pycaffe-shaped API of python/caffeonspark/engine.py on a tiny hand-written net
(Input -> InnerProduct -> ReLU -> EuclideanLoss): constructor forms, blobs / params /
inputs / outputs, forward(**inputs) and backward(**diffs) against float64 NumPy, weights
saved and copied back, the mode switches, and the errors it documents."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from caffeonspark import engine
from caffeonspark.errors import ConfigError, CudaError

TINY = """name: "tiny"
layer { name: "data" type: "Input" top: "x" top: "t"
        input_param { shape { dim: 2 dim: 4 } shape { dim: 2 dim: 3 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "h"
        inner_product_param { num_output: 3
          weight_filler { type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 } } }
layer { name: "relu" type: "ReLU" bottom: "h" top: "h" }
layer { name: "loss" type: "EuclideanLoss" bottom: "h" bottom: "t" top: "loss" }
layer { name: "drop" type: "Dropout" bottom: "x" top: "xd" include { phase: TRAIN } }
"""


@pytest.fixture
def prototxt(tmp_path) -> Path:
    path = tmp_path / "tiny.prototxt"
    path.write_text(TINY)
    return path


def reference(net: engine.Net, x: np.ndarray, t: np.ndarray):
    w, b = (p.data.astype(np.float64) for p in net.params["fc"])
    z = x.astype(np.float64) @ w.T + b
    h = np.maximum(z, 0)
    loss = np.sum((h - t) ** 2) / (2 * x.shape[0])
    dz = (h - t) / x.shape[0] * (z > 0)
    return h, loss, dz, w


def test_views_inputs_outputs_and_phase(prototxt):
    net = engine.Net(str(prototxt), engine.TEST)
    assert net.name == "tiny"
    assert net.inputs == ["x", "t"] and net.outputs == ["loss"]  # Input tops, as in Caffe
    assert list(net.blobs) == ["x", "t", "h", "loss"]  # TRAIN-only Dropout filtered out
    assert net.layer_names == ["data", "fc", "relu", "loss"]
    assert list(net.params) == ["fc"]
    assert [p.shape for p in net.params["fc"]] == [(3, 4), (3,)]
    blob = net.blobs["x"]
    assert (blob.shape, blob.count, blob.num, blob.channels) == ((2, 4), 8, 2, 4)
    # NumPy views: writes are seen by the engine and by later views
    blob.data = 1.5
    assert np.all(net.blobs["x"].data == 1.5)
    # TRAIN by name or by value keeps the Dropout layer
    for phase in ("TRAIN", engine.TRAIN):
        assert "xd" in engine.Net(str(prototxt), phase=phase).blobs


def test_forward_with_inputs_returns_outputs_and_reshapes(prototxt):
    net = engine.Net(str(prototxt), phase=engine.TEST)
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(2, 4)), rng.normal(size=(2, 3))
    out = net.forward(x=x, t=t)
    h, loss, _, _ = reference(net, x, t)
    assert set(out) == {"loss"}
    np.testing.assert_allclose(out["loss"], loss, rtol=1e-5)
    np.testing.assert_allclose(net.blobs["h"].data, h, rtol=1e-5, atol=1e-6)
    out["loss"][...] = -1  # outputs are copies
    assert net.blobs["loss"].data != -1
    # extra blobs on request, and a partial pass up to a layer
    out = net.forward(blobs=["h"])
    np.testing.assert_allclose(out["h"], h, rtol=1e-5, atol=1e-6)
    net.blobs["h"].data[...] = 0
    partial = net.forward(end="fc")
    assert set(partial) == {"h"}
    np.testing.assert_allclose(partial["h"], x @ net.params["fc"][0].data.T.astype(np.float64)
                               + net.params["fc"][1].data, rtol=1e-5, atol=1e-6)


def test_forward_with_a_new_batch_size_for_every_input(prototxt):
    net = engine.Net(str(prototxt), phase=engine.TEST)
    rng = np.random.default_rng(2)
    x, t = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    out = net.forward(x=x, t=t)
    assert net.blobs["h"].shape == (5, 3)
    np.testing.assert_allclose(out["loss"], reference(net, x, t)[1], rtol=1e-5)


def test_forward_reshapes_for_a_new_input_shape(prototxt):
    # one input changing shape alone: "x" feeds only fc, whose top is resized with it
    net = engine.Net(str(prototxt), phase=engine.TEST)
    x = np.random.default_rng(3).normal(size=(2, 4))
    net.forward(x=x)  # same shape
    w, b = (p.data.astype(np.float64) for p in net.params["fc"])
    net.blobs["t"].reshape(6, 3)
    out = net.forward(x=np.tile(x, (3, 1)), t=np.zeros((6, 3)), blobs=["h"])
    assert out["h"].shape == (6, 3)
    np.testing.assert_allclose(out["h"], np.tile(np.maximum(x @ w.T + b, 0), (3, 1)),
                               rtol=1e-5, atol=1e-6)


def test_backward_returns_requested_diffs(prototxt):
    net = engine.Net(str(prototxt), phase=engine.TEST)
    rng = np.random.default_rng(1)
    x, t = rng.normal(size=(2, 4)), rng.normal(size=(2, 3))
    net.forward(x=x, t=t)
    diffs = net.backward(diffs=["h"])
    _, _, dz, _ = reference(net, x, t)
    assert set(diffs) == {"x", "t", "h"}  # the inputs' diffs and the one asked for
    assert not diffs["x"].any()  # no force_backward: nothing flows into the inputs
    # h is ReLU'd in place, so its diff ends as the gradient below the ReLU
    np.testing.assert_allclose(diffs["h"], dz, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(net.params["fc"][0].diff, dz.T @ x, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(net.params["fc"][1].diff, dz.sum(0), rtol=1e-4, atol=1e-6)
    # a top diff passed by name starts the backward pass (from "relu" down)
    net.native.clear_param_diffs()
    g = rng.normal(size=(2, 3))
    net.backward(start="relu", h=g)
    z = x @ net.params["fc"][0].data.T.astype(np.float64) + net.params["fc"][1].data
    np.testing.assert_allclose(net.params["fc"][0].diff, (g * (z > 0)).T @ x, rtol=1e-4,
                               atol=1e-6)


def test_save_and_copy_from_round_trip(prototxt, tmp_path):
    engine.set_random_seed(3)
    net = engine.Net(str(prototxt), phase=engine.TEST)
    net.params["fc"][1].data[...] = [0.25, -1.0, 3.0]
    model = tmp_path / "tiny.caffemodel"
    net.save(model)
    engine.set_random_seed(4)
    other = engine.Net(str(prototxt), phase=engine.TEST)
    assert not np.array_equal(other.params["fc"][0].data, net.params["fc"][0].data)
    other.copy_from(model)
    for mine, theirs in zip(net.params["fc"], other.params["fc"], strict=True):
        np.testing.assert_array_equal(mine.data, theirs.data)
    # the pycaffe positional form Net(prototxt, weights, phase) loads them too
    third = engine.Net(str(prototxt), str(model), engine.TEST)
    np.testing.assert_array_equal(third.params["fc"][0].data, net.params["fc"][0].data)
    x = np.ones((2, 4))
    assert third.forward(x=x, t=np.zeros((2, 3)))["loss"] == pytest.approx(
        float(net.forward(x=x, t=np.zeros((2, 3)))["loss"]), rel=1e-6)
    # to_proto writes the loss layer's implicit loss weight, as Caffe's ToProto does
    assert list(net.to_proto().layer[3].loss_weight) == [1.0]


def test_mode_switches():
    engine.set_mode_cpu()  # the default; a no-op
    with pytest.raises(CudaError, match="without CUDA"):
        engine.set_mode_gpu()
    with pytest.raises(CudaError):
        engine.set_device(0)


def test_documented_errors(prototxt):
    net = engine.Net(str(prototxt), phase=engine.TEST)
    with pytest.raises(ConfigError, match="no blob 'nope'"):
        net.forward(nope=np.zeros(3))
    with pytest.raises(TypeError, match="at most two positional"):
        engine.Net(str(prototxt), None, engine.TEST, "extra")
