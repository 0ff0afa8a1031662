"""Embed (cpp/layers/embed.cc): lookup forward against NumPy, weight and bias gradients by
finite differences (repeated indices accumulate), N-D index blobs, bias_term false, the
default constant-0 filler, index errors naming the layer, no gradient to the indices, and
real Caffe's Embed probe."""

from __future__ import annotations

import numpy as np
import pytest
from caffe_ref import check_probe
from layer_check import build_probe, check_layer

from caffeonspark import engine
from caffeonspark.errors import ConfigError, ShapeError
from caffeonspark.proto import caffe_pb2

FILLERS = 'weight_filler { type: "gaussian" std: 1 } bias_filler { type: "uniform" min: -1 max: 1 }'


def test_embed_forward_and_parameter_gradients():
    x = np.array([3, 0, 6, 3, 3, 1], np.float32)  # repeated 3s accumulate in dW
    net = check_layer(
        f'type: "Embed" embed_param {{ num_output: 4 input_dim: 7 {FILLERS} }}',
        {"x": x},
        lambda inp, p: [p[0][inp["x"].astype(int)] + p[1]],
        check_bottoms=[],
    )
    assert [p.shape for p in net.params["probe"]] == [(7, 4), (4,)]


def test_embed_nd_indices_without_bias():
    x = np.array([[[1, 2], [4, 0]], [[2, 2], [3, 1]]], np.float32)
    net = check_layer(
        f'type: "Embed" embed_param {{ num_output: 3 input_dim: 5 bias_term: false {FILLERS} }}',
        {"x": x},
        lambda inp, p: [p[0][inp["x"].astype(int)]],
        check_bottoms=[],
    )
    assert net.blobs["top0"].shape == (2, 2, 2, 3)
    assert len(net.params["probe"]) == 1


def test_embed_wide_rows_gradient_against_numpy():
    """num_output above one column block of the backward loop; dW against np.add.at."""
    K, N = 6, 150
    x = np.array([5, 1, 5, 0, 5, 2, 1], np.float32)
    net = build_probe(f'type: "Embed" embed_param {{ num_output: {N} input_dim: {K} {FILLERS} }}',
                      {"x": x})
    net.forward()
    w, b = (p.data.copy() for p in net.params["probe"])
    np.testing.assert_array_equal(net.blobs["top0"].data, w[x.astype(int)] + b)
    dy = np.random.default_rng(3).normal(size=(len(x), N)).astype(np.float32)
    for p in net.params["probe"]:
        p.diff[...] = 0
    net.blobs["top0"].diff[...] = dy
    net.backward()
    want = np.zeros((K, N))
    np.add.at(want, x.astype(int), dy)
    np.testing.assert_allclose(net.params["probe"][0].diff, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(net.params["probe"][1].diff, dy.sum(0), rtol=1e-5, atol=1e-5)


def test_embed_default_weight_filler_is_zero():
    net = build_probe('type: "Embed" embed_param { num_output: 2 input_dim: 3 }',
                      {"x": np.array([0, 2], np.float32)})
    for blob in net.params["probe"]:
        np.testing.assert_array_equal(blob.data, 0)


@pytest.mark.parametrize("bad", [7.0, -1.0, 2.5, np.nan])
def test_embed_bad_index_names_the_layer(bad):
    net = build_probe(f'type: "Embed" embed_param {{ num_output: 2 input_dim: 7 {FILLERS} }}',
                      {"x": np.array([1, 2, 3], np.float32)})
    with pytest.raises(ShapeError, match=r"layer 'probe' \(Embed\).*index .* position 1 .*input_dim = 7"):
        net.forward(x=np.array([1, bad, 3], np.float32))


def test_embed_refuses_a_gradient_for_its_indices():
    net = caffe_pb2.NetParameter(name="embed")
    feeder = net.layer.add(name="input", type="Input", top=["x"])
    feeder.input_param.shape.add().dim.extend([2])
    layer = net.layer.add(name="e", type="Embed", bottom=["x"], top=["y"], loss_weight=[1])
    layer.embed_param.num_output = 2
    layer.embed_param.input_dim = 3
    layer.propagate_down.append(True)
    built = engine.Net(net, phase=engine.TRAIN)
    built.forward()
    with pytest.raises(ConfigError, match="index input"):
        built.backward()


@pytest.mark.parametrize("field", ["num_output", "input_dim"])
def test_embed_sizes_must_be_positive(field):
    params = {"num_output": 2, "input_dim": 3, field: 0}
    with pytest.raises(ConfigError, match=f"embed_param.{field}"):
        build_probe(f'type: "Embed" embed_param {{ num_output: {params["num_output"]} '
                    f'input_dim: {params["input_dim"]} }}', {"x": np.zeros(2, np.float32)})


def test_embed_matches_caffe_probe():
    check_probe("embed")
