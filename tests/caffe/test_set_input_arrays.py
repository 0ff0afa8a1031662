"""Net.set_input_arrays: each forward takes the next batch of the arrays, cycling; a new
call starts again at the first batch; the layers after MemoryData see exactly those values."""

import numpy as np
import pytest

import caffeonspark.caffe as caffe
from caffeonspark.errors import ConfigError, ShapeError

NET = """
name: "arrays"
layer { name: "feed" type: "MemoryData" top: "data" top: "label"
  memory_data_param { batch_size: 2 channels: 3 height: 2 width: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.5 }
                        bias_filler { type: "constant" value: 0.2 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


@pytest.fixture
def net(tmp_path):
    path = tmp_path / "arrays.prototxt"
    path.write_text(NET)
    return caffe.Net(str(path), caffe.TEST)


def reference_loss(net, x, y):
    w, b = (p.data for p in net.params["ip"])
    z = x.reshape(len(x), -1) @ w.T + b
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(y)), y.astype(int)].mean(), z


def test_forward_cycles_over_the_batches(net):
    rng = np.random.default_rng(3)
    data = rng.normal(size=(6, 3, 2, 2)).astype(np.float32)
    labels = np.array([0, 3, 1, 2, 2, 0], np.float32)
    net.set_input_arrays(data, labels)
    for k in [0, 1, 2, 0, 1]:  # three batches, then round again
        out = net.forward()
        part = slice(2 * k, 2 * k + 2)
        np.testing.assert_array_equal(net.blobs["data"].data, data[part])
        np.testing.assert_array_equal(net.blobs["label"].data, labels[part])
        loss, _ = reference_loss(net, data[part], labels[part])
        assert out["loss"] == pytest.approx(loss, rel=1e-5)


def test_a_new_call_starts_at_its_first_batch(net):
    first = np.ones((4, 3, 2, 2), np.float32)
    net.set_input_arrays(first, np.zeros(4, np.float32))
    net.forward()
    second = np.arange(48, dtype=np.float32).reshape(4, 3, 2, 2) / 48
    net.set_input_arrays(second, np.array([1, 2, 3, 0], np.float32))
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, second[:2])
    loss, _ = reference_loss(net, second[:2], np.array([1, 2]))
    assert net.blobs["loss"].data == pytest.approx(loss, rel=1e-5)


def test_float64_arrays_and_forward_with_end(net):
    data = np.linspace(-1, 1, 24).reshape(2, 3, 2, 2)  # float64, as scripts often pass
    net.set_input_arrays(data, np.array([3.0, 1.0]))
    out = net.forward(end="ip")
    w, b = (p.data for p in net.params["ip"])
    np.testing.assert_allclose(out["ip"], data.reshape(2, -1) @ w.T + b, rtol=1e-5, atol=1e-6)


def test_bad_arrays_are_refused(net, tmp_path):
    with pytest.raises(ShapeError, match="positive multiple of batch_size 2"):
        net.set_input_arrays(np.zeros((3, 3, 2, 2)), np.zeros(3))
    with pytest.raises(ShapeError, match="wants N x 3 x 2 x 2"):
        net.set_input_arrays(np.zeros((2, 3, 2, 3)), np.zeros(2))
    with pytest.raises(ShapeError, match="2 data items but 4 labels"):
        net.set_input_arrays(np.zeros((2, 3, 2, 2)), np.zeros(4))
    path = tmp_path / "input.prototxt"
    path.write_text('layer { name: "d" type: "Input" top: "d" '
                    'input_param { shape { dim: 1 dim: 1 } } }')
    with pytest.raises(ConfigError, match="first layer is a MemoryData layer"):
        caffe.Net(str(path), caffe.TEST).set_input_arrays(np.zeros((1, 1, 1, 1)), np.zeros(1))
