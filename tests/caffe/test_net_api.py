"""caffe.Net and the caffe solvers against NumPy: pycaffe's attributes, forward/backward
with start/end, forward_all batching, weights in and out, sharing, a Python layer."""

import numpy as np
import pytest

import caffeonspark.caffe as caffe

NET = """
name: "tiny"
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 3 dim: 2 dim: 2 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 }
                        bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "prob" type: "Softmax" bottom: "ip2" top: "prob" }
"""


@pytest.fixture
def net_path(tmp_path):
    path = tmp_path / "tiny.prototxt"
    path.write_text(NET)
    return str(path)


def reference(net, x):
    w1, b1 = (b.data for b in net.params["ip1"])
    w2, b2 = (b.data for b in net.params["ip2"])
    h = np.maximum(x.reshape(len(x), -1) @ w1.T + b1, 0)
    z = h @ w2.T + b2
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return h, z, e / e.sum(axis=1, keepdims=True)


def test_views_and_names(net_path):
    net = caffe.Net(net_path, caffe.TEST)
    assert list(net.blobs) == ["data", "ip1", "ip2", "prob"]
    assert list(net.params) == ["ip1", "ip2"]
    assert [b.shape for b in net.params["ip1"]] == [(5, 12), (5,)]
    assert net.blobs["data"].count == 48 and net.blobs["data"].num == 4
    assert (net.blobs["data"].channels, net.blobs["data"].height, net.blobs["data"].width) == (
        3, 2, 2)
    assert [lay.type for lay in net.layers] == ["Input", "InnerProduct", "ReLU", "InnerProduct",
                                                "Softmax"]
    assert list(net.layer_dict) == ["data", "ip1", "relu1", "ip2", "prob"]
    assert net.layer_dict["ip2"].type == "InnerProduct"
    np.testing.assert_array_equal(net.layer_dict["ip1"].blobs[0].data, net.params["ip1"][0].data)
    assert net.inputs == ["data"] and net.outputs == ["prob"]
    assert net.top_names["relu1"] == ["ip1"] and net.bottom_names["ip2"] == ["ip1"]
    assert net.bottom_names["data"] == [] and net.top_names["prob"] == ["prob"]
    assert list(net.blob_loss_weights.values()) == [0.0, 0.0, 0.0, 0.0]
    assert net.params["ip1"][1].data == pytest.approx(np.full(5, 0.1))


def test_forward_start_end(net_path):
    net = caffe.Net(net_path, caffe.TEST)
    x = np.random.default_rng(0).normal(size=(4, 3, 2, 2)).astype(np.float32)
    h, z, p = reference(net, x)
    out = net.forward(data=x)
    assert list(out) == ["prob"]
    np.testing.assert_allclose(out["prob"], p, rtol=1e-5, atol=1e-6)
    out = net.forward(end="ip2", blobs=["ip1"], data=x)
    assert sorted(out) == ["ip1", "ip2"]
    np.testing.assert_allclose(out["ip2"], z, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["ip1"], h, rtol=1e-5, atol=1e-5)
    net.blobs["ip2"].data[...] = 0
    np.testing.assert_allclose(net.forward(start="prob")["prob"], np.full((4, 3), 1 / 3), rtol=1e-6)
    net.blobs["data"].data[...] = x
    assert net._forward(0, len(net.layers) - 1) == 0.0
    np.testing.assert_allclose(net.blobs["prob"].data, p, rtol=1e-5, atol=1e-6)


def test_forward_all_batches_and_pads(net_path):
    net = caffe.Net(net_path, caffe.TEST)
    x = np.random.default_rng(1).normal(size=(10, 3, 2, 2)).astype(np.float32)
    h, _, p = reference(net, x)
    out = net.forward_all(blobs=["ip1"], data=x)
    assert out["prob"].shape == (10, 3) and out["ip1"].shape == (10, 5)
    np.testing.assert_allclose(out["prob"], p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["ip1"], h, rtol=1e-5, atol=1e-5)
    assert net.blobs["data"].shape == (4, 3, 2, 2)  # the batch size stays


def test_backward_matches_numpy(net_path):
    net = caffe.Net(net_path, caffe.TEST)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3, 2, 2)).astype(np.float32)
    g = rng.normal(size=(4, 3)).astype(np.float32)
    h, _, p = reference(net, x)
    net.forward(data=x)
    diffs = net.backward(prob=g)
    dz = p * (g - (g * p).sum(axis=1, keepdims=True))
    dh = (dz @ net.params["ip2"][0].data) * (h > 0)
    dx = (dh @ net.params["ip1"][0].data).reshape(x.shape)
    np.testing.assert_allclose(diffs["data"], dx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(net.params["ip2"][0].diff, dz.T @ h, rtol=1e-4, atol=1e-5)
    out = net.backward(start="ip2", end="ip2", prob=g)
    assert list(out) == ["ip1"]
    with pytest.raises(ValueError):
        net.backward(ip1=np.zeros((4, 5)))
    net.clear_param_diffs()
    assert not net.params["ip2"][0].diff.any()


def test_weights_save_load_share(net_path, tmp_path):
    caffe.set_random_seed(3)
    a = caffe.Net(net_path, caffe.TEST)
    a.save(str(tmp_path / "a.caffemodel"))
    a.save_hdf5(str(tmp_path / "a.h5model"))  # any suffix: load_hdf5 reads HDF5 regardless
    for b in (caffe.Net(net_path, str(tmp_path / "a.caffemodel"), caffe.TEST),
              caffe.Net(net_path, caffe.TEST, weights=str(tmp_path / "a.caffemodel"))):
        np.testing.assert_array_equal(b.params["ip1"][0].data, a.params["ip1"][0].data)
    c = caffe.Net(net_path, caffe.TEST)
    c.load_hdf5(str(tmp_path / "a.h5model"))
    np.testing.assert_array_equal(c.params["ip2"][0].data, a.params["ip2"][0].data)
    d = caffe.Net(net_path, caffe.TEST)
    d.share_with(a)
    a.params["ip1"][0].data[...] = 7
    assert (d.params["ip1"][0].data == 7).all() and (d.layer_dict["ip1"].blobs[0].data == 7).all()


def test_reshape(net_path):
    net = caffe.Net(net_path, caffe.TEST)
    net.blobs["data"].reshape(2, 3, 2, 2)
    net.reshape()
    assert net.blobs["prob"].shape == (2, 3)


def test_python_layer_runs_in_a_pycaffe_net(tmp_path):
    (tmp_path / "py_twice.py").write_text(
        "from caffeonspark.caffe import Layer\n"
        "class Twice(Layer):\n"
        "    def reshape(self, bottom, top):\n"
        "        top[0].reshape(*bottom[0].data.shape)\n"
        "    def forward(self, bottom, top):\n"
        "        top[0].data[...] = 2 * bottom[0].data\n"
        "    def backward(self, top, propagate_down, bottom):\n"
        "        bottom[0].diff[...] = 2 * top[0].diff\n")
    path = tmp_path / "py.prototxt"
    path.write_text(
        'force_backward: true\n'
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 3 } } }\n'
        'layer { name: "mine" type: "Python" bottom: "data" top: "out"\n'
        '  python_param { module: "py_twice" layer: "Twice" } }\n')
    net = caffe.Net(str(path), caffe.TEST)  # the module is found beside the prototxt
    assert net.layer_dict["mine"].type == "Python" and "Python" in caffe.layer_type_list()
    out = net.forward(data=np.array([1, -2, 3], np.float32))["out"]
    np.testing.assert_array_equal(out, [2, -4, 6])
    diff = net.backward(out=np.ones(3, np.float32))["data"]
    np.testing.assert_array_equal(diff, [2, 2, 2])


SOLVER_NET = """
name: "train"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 3 } } }
layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 2 weight_filler { type: "constant" value: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


@pytest.mark.parametrize("cls,kind", [
    ("SGDSolver", "SGD"), ("NesterovSolver", "Nesterov"), ("AdaGradSolver", "AdaGrad"),
    ("RMSPropSolver", "RMSProp"), ("AdaDeltaSolver", "AdaDelta"), ("AdamSolver", "Adam")])
def test_solver_classes_force_their_type(tmp_path, cls, kind):
    (tmp_path / "train.prototxt").write_text(SOLVER_NET)
    solver_path = tmp_path / "solver.prototxt"
    momentum = "momentum: 0.9\n" if kind in ("SGD", "Nesterov", "Adam", "AdaDelta") else ""
    solver_path.write_text(f'net: "{tmp_path}/train.prototxt"\nbase_lr: 0.1\ntype: "Adam"\n'
                           f'lr_policy: "fixed"\ndelta: 1e-6\n{momentum}')
    solver = getattr(caffe, cls)(str(solver_path))
    assert solver.type == kind
    assert isinstance(solver.net, caffe.Net) and solver.net.top_names["loss"] == ["loss"]
    solver.net.blobs["data"].data[...] = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]
    solver.net.blobs["label"].data[...] = [0, 1, 0, 1]
    solver.step(2)
    assert solver.iter == 2
    assert caffe.get_solver(str(solver_path)).type == "Adam"


def test_solver_class_validates_its_parameters(tmp_path):
    (tmp_path / "train.prototxt").write_text(SOLVER_NET)
    solver_path = tmp_path / "solver.prototxt"
    solver_path.write_text(f'net: "{tmp_path}/train.prototxt"\nbase_lr: 0.1\nmomentum: 0.9\n'
                           'lr_policy: "fixed"\n')
    with pytest.raises(ValueError, match="AdaGrad cannot use momentum"):
        caffe.AdaGradSolver(str(solver_path))


def test_sgd_step_and_apply_update(tmp_path):
    (tmp_path / "train.prototxt").write_text(SOLVER_NET)
    solver_path = tmp_path / "solver.prototxt"
    solver_path.write_text(f'net: "{tmp_path}/train.prototxt"\nbase_lr: 0.5\n'
                           'lr_policy: "fixed"\n')
    solver = caffe.get_solver(str(solver_path))
    net = solver.net
    x = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], np.float32)
    net.blobs["data"].data[...] = x
    net.blobs["label"].data[...] = [0, 1, 0, 1]
    w = net.params["ip"][0].data.copy()
    solver.step(1)
    # constant weights: p = 1/2 everywhere; dL/dW = (p - onehot)^T x / N
    onehot = np.eye(2)[[0, 1, 0, 1]]
    grad = (0.5 - onehot).T @ x / 4
    np.testing.assert_allclose(net.params["ip"][0].data, w - 0.5 * grad, rtol=1e-5, atol=1e-6)
    net.params["ip"][0].diff[...] = 1
    net.params["ip"][1].diff[...] = 0
    before = net.params["ip"][0].data.copy()
    solver.apply_update()
    np.testing.assert_allclose(net.params["ip"][0].data, before - 0.5, rtol=1e-5)
    assert solver.iter == 1


def test_layer_type_list_and_modes():
    types = caffe.layer_type_list()
    assert types == sorted(types) and {"Convolution", "InnerProduct", "Data"} <= set(types)
    caffe.set_mode_cpu()
