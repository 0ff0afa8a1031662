"""Parameter (cpp/layers/parameter.cc): the top is the learned blob (shape from
parameter_param.shape, zero at set-up, a scalar without a shape), its gradient is the top's
diff accumulated into the blob's diff, it trains through a solver step, and shape errors."""

import numpy as np
import pytest
from google.protobuf import text_format

from caffeonspark import engine
from caffeonspark.errors import ConfigError
from caffeonspark.proto import caffe_pb2


def _net(layer_text: str, extra: str = "") -> engine.Net:
    net = caffe_pb2.NetParameter()
    text_format.Parse(
        f'name: "p" layer {{ name: "probe" type: "Parameter" top: "w" {layer_text} }} {extra}',
        net,
    )
    return engine.Net(net, phase=engine.TRAIN)


def test_top_is_the_blob_and_gradient_accumulates():
    net = _net("parameter_param { shape { dim: 2 dim: 3 } }", "force_backward: true")
    param = net.params["probe"][0]
    assert param.shape == (2, 3)
    np.testing.assert_array_equal(param.data, np.zeros((2, 3)))
    value = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    param.data[...] = value
    net.forward()
    np.testing.assert_array_equal(net.blobs["w"].data, value)
    dy = np.random.default_rng(1).normal(size=(2, 3)).astype(np.float32)
    param.diff[...] = 0
    net.blobs["w"].diff[...] = dy
    net.native.backward_from_to(0, 0)
    np.testing.assert_array_equal(param.diff, dy)
    net.native.backward_from_to(0, 0)
    np.testing.assert_allclose(param.diff, 2 * dy, rtol=1e-6)


def test_scalar_without_shape():
    net = _net("")
    assert net.params["probe"][0].shape == ()
    net.forward()
    assert net.blobs["w"].data.shape == ()


def test_trains_under_a_euclidean_loss():
    # loss = |w - target|^2 / 2 (N = 1): plain SGD moves w to target at rate lr.
    extra = (
        'layer { name: "t" type: "Input" top: "target" input_param { shape { dim: 1 dim: 3 } } }'
        ' layer { name: "loss" type: "EuclideanLoss" bottom: "w" bottom: "target" top: "l" }'
    )
    net = _net("parameter_param { shape { dim: 1 dim: 3 } }", extra)
    target = np.array([[1.0, -2.0, 0.5]], np.float32)
    net.blobs["target"].data[...] = target
    param = net.params["probe"][0]
    param.diff[...] = 0
    net.forward()
    net.backward()
    np.testing.assert_allclose(param.diff, -target, rtol=1e-6)


def test_negative_dim_is_an_error():
    with pytest.raises(ConfigError, match="probe"):
        _net("parameter_param { shape { dim: 2 dim: -1 } }")
