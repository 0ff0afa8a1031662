"""caffe.NetSpec, caffe.layers and caffe.params against hand-written prototxt; caffe.proto
and caffe.draw."""

import importlib.util

import numpy as np
import pytest
from google.protobuf import text_format

import caffeonspark.caffe as caffe
from caffeonspark.caffe import layers as L
from caffeonspark.caffe import params as P
from caffeonspark.proto import caffe_pb2

EXPECTED = """
layer { name: "data" type: "Data" top: "data" top: "label"
  transform_param { scale: 0.00390625 }
  data_param { source: "db" batch_size: 64 backend: LMDB } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 20 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "pool1" top: "pool1" }
layer { name: "InnerProduct1" type: "InnerProduct" bottom: "pool1" top: "InnerProduct1"
  inner_product_param { num_output: 10 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "InnerProduct1" bottom: "label"
  top: "loss" loss_weight: 1 include { phase: TRAIN } }
"""


def lenet_like():
    n = caffe.NetSpec()
    n.data, n.label = L.Data(source="db", backend=P.Data.LMDB, batch_size=64, ntop=2,
                             transform_param=dict(scale=1.0 / 256))
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20,
                            weight_filler=dict(type="xavier"),
                            param=[dict(lr_mult=1), dict(lr_mult=2)])
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.relu1 = L.ReLU(n.pool1, in_place=True)
    n.loss = L.SoftmaxWithLoss(L.InnerProduct(n.relu1, num_output=10), n.label,
                               loss_weight=1, include=dict(phase=caffe.TRAIN))
    return n


def test_netspec_matches_prototxt():
    proto = lenet_like().to_proto()
    assert isinstance(proto, caffe_pb2.NetParameter)
    expected = text_format.Parse(EXPECTED, caffe_pb2.NetParameter())
    assert proto == expected, str(proto)
    again = text_format.Parse(str(proto), caffe_pb2.NetParameter())
    assert again == expected


def test_enum_values_and_tops():
    assert P.Pooling.MAX == caffe_pb2.PoolingParameter.MAX == 0
    assert P.Pooling.AVE == 1 and P.Data.LMDB == 1 and P.Eltwise.SUM == 1
    n = caffe.NetSpec()
    n["x"] = L.Input(shape=[dict(dim=[2, 3])])
    n.a, n.b = L.Slice(n.x, slice_param=dict(axis=1, slice_point=[1]), ntop=2)
    silence = L.Silence(n.a, n.b, ntop=0)
    assert isinstance(silence, caffe.net_spec.Function)
    proto = caffe.net_spec.to_proto(silence)
    assert [lay.type for lay in proto.layer] == ["Input", "Slice", "Silence"]
    assert list(proto.layer[0].input_param.shape[0].dim) == [2, 3]
    assert list(proto.layer[1].slice_param.slice_point) == [1]
    # to_proto knows no NetSpec names: unassigned tops are named after their layer type
    assert list(proto.layer[2].bottom) == ["Slice1", "Slice2"]
    assert proto.layer[2].name == "Silence1" and list(proto.layer[2].top) == []
    n.silence = silence
    named = n.to_proto()
    assert list(named.layer[2].bottom) == ["a", "b"] and named.layer[2].name == "silence"
    assert n.keys() == ["x", "a", "b", "silence"] and n["a"] is n.a
    with pytest.raises(TypeError):
        L.ReLU(3)


def test_netspec_net_runs(tmp_path):
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 4]))
    n.ip = L.InnerProduct(n.data, num_output=3, weight_filler=dict(type="constant", value=0.5),
                          bias_filler=dict(type="constant", value=1))
    n.out = L.Power(n.ip, scale=2, name="doubler")
    path = tmp_path / "n.prototxt"
    path.write_text(str(n.to_proto()))
    net = caffe.Net(str(path), caffe.TEST)
    assert "doubler" in net.layer_dict
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    out = net.forward(data=x)["out"]
    np.testing.assert_allclose(out, 2 * (x.sum(axis=1, keepdims=True) * 0.5 + 1) * np.ones(3))


def test_proto_import_paths():
    from caffeonspark.caffe.proto import caffe_pb2 as pb2

    assert pb2 is caffe_pb2 and caffe.proto.caffe_pb2 is caffe_pb2


def test_draw(tmp_path):
    proto = lenet_like().to_proto()
    if importlib.util.find_spec("pydot") is None:
        with pytest.raises(NotImplementedError, match="pydot"):
            caffe.draw.get_pydot_graph(proto, "LR")
        return
    graph = caffe.draw.get_pydot_graph(proto, "TB", phase=caffe.TEST)
    labels = [node.get_label() for node in graph.get_nodes()]
    assert '"conv1\\n(Convolution)"' in labels and not any("SoftmaxWithLoss" in str(x)
                                                          for x in labels)
    assert len(graph.get_edges()) == 2 + 2 + 2 + 2 + 2  # data, conv1, pool1, relu1, ip
