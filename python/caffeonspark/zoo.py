"""Model-zoo nets written with NetSpec: CaffeNet, VGG-16 and ResNet-50 in the layouts their
published deploy files use (layer names, blob names, parameter shapes), so weights trained
elsewhere load into them by name.

    from caffeonspark import zoo
    net_param = zoo.resnet50(batch=8)              # deploy: data -> prob
    net_param = zoo.resnet50(batch=16, train=True)  # data + label -> loss (benchmarks)

Deploy nets take `data` (batch, 3, 224, 224) (CaffeNet: 227) from an Input layer and end in a
Softmax `prob`; `train=True` adds a `label` input and a SoftmaxWithLoss instead. ResNet-50 is
the layout everyone uses: every convolution is followed by BatchNorm (use_global_stats in the
deploy net) and Scale (bias_term), the convolutions after conv1 have no bias, and the stride
of a stage's first block sits on its 1x1 branch2a and branch1 convolutions.

Tests: tests/test_zoo.py.
"""

from __future__ import annotations

from caffeonspark.caffe.net_spec import NetSpec, Top
from caffeonspark.caffe.net_spec import layers as L
from caffeonspark.caffe.net_spec import params as P
from caffeonspark.proto import caffe_pb2

__all__ = ["caffenet", "vgg16", "resnet50"]

_GAUSSIAN = {"type": "gaussian", "std": 0.01}
_MSRA = {"type": "msra"}


def _inputs(n: NetSpec, batch: int, size: int, train: bool) -> Top:
    shapes = [{"dim": [batch, 3, size, size]}]
    if train:
        shapes.append({"dim": [batch]})
        n.data, n.label = L.Input(shape=shapes, ntop=2)
    else:
        n.data = L.Input(shape=shapes)
    return n.data


def _head(n: NetSpec, scores: Top, train: bool) -> caffe_pb2.NetParameter:
    if train:
        n.loss = L.SoftmaxWithLoss(scores, n.label)
    else:
        n.prob = L.Softmax(scores)
    return n.to_proto()


def _named(net: caffe_pb2.NetParameter, name: str) -> caffe_pb2.NetParameter:
    net.name = name
    return net


def caffenet(batch: int = 10, train: bool = False) -> caffe_pb2.NetParameter:
    """BVLC's reference CaffeNet (AlexNet with pooling before LRN), 227x227 input."""
    n = NetSpec()
    x = _inputs(n, batch, 227, train)

    def conv(bottom: Top, out: int, kernel: int, stride: int = 1, pad: int = 0,
             group: int = 1) -> Top:
        return L.Convolution(bottom, num_output=out, kernel_size=kernel, stride=stride, pad=pad,
                             group=group, weight_filler=_GAUSSIAN,
                             bias_filler={"type": "constant", "value": 0.1})

    n.conv1 = conv(x, 96, 11, stride=4)
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    n.norm1 = L.LRN(n.pool1, local_size=5, alpha=1e-4, beta=0.75)
    n.conv2 = conv(n.norm1, 256, 5, pad=2, group=2)
    n.relu2 = L.ReLU(n.conv2, in_place=True)
    n.pool2 = L.Pooling(n.relu2, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    n.norm2 = L.LRN(n.pool2, local_size=5, alpha=1e-4, beta=0.75)
    n.conv3 = conv(n.norm2, 384, 3, pad=1)
    n.relu3 = L.ReLU(n.conv3, in_place=True)
    n.conv4 = conv(n.relu3, 384, 3, pad=1, group=2)
    n.relu4 = L.ReLU(n.conv4, in_place=True)
    n.conv5 = conv(n.relu4, 256, 3, pad=1, group=2)
    n.relu5 = L.ReLU(n.conv5, in_place=True)
    n.pool5 = L.Pooling(n.relu5, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    top = n.pool5
    for index in (6, 7):
        n[f"fc{index}"] = L.InnerProduct(top, num_output=4096,
                                         weight_filler={"type": "gaussian", "std": 0.005},
                                         bias_filler={"type": "constant", "value": 0.1})
        n[f"relu{index}"] = L.ReLU(n[f"fc{index}"], in_place=True)
        n[f"drop{index}"] = L.Dropout(n[f"relu{index}"], dropout_ratio=0.5, in_place=True)
        top = n[f"drop{index}"]
    n.fc8 = L.InnerProduct(top, num_output=1000, weight_filler=_GAUSSIAN)
    return _named(_head(n, n.fc8, train), "CaffeNet")


def vgg16(batch: int = 10, train: bool = False) -> caffe_pb2.NetParameter:
    """VGG ILSVRC 16-layer net (configuration D), 224x224 input."""
    n = NetSpec()
    top = _inputs(n, batch, 224, train)
    stages = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
    for stage, (channels, depth) in enumerate(stages, start=1):
        for index in range(1, depth + 1):
            name = f"conv{stage}_{index}"
            n[name] = L.Convolution(top, num_output=channels, kernel_size=3, pad=1,
                                    weight_filler=_MSRA)
            n[f"relu{stage}_{index}"] = L.ReLU(n[name], in_place=True)
            top = n[f"relu{stage}_{index}"]
        n[f"pool{stage}"] = L.Pooling(top, pool=P.Pooling.MAX, kernel_size=2, stride=2)
        top = n[f"pool{stage}"]
    for index in (6, 7):
        n[f"fc{index}"] = L.InnerProduct(top, num_output=4096, weight_filler=_GAUSSIAN)
        n[f"relu{index}"] = L.ReLU(n[f"fc{index}"], in_place=True)
        n[f"drop{index}"] = L.Dropout(n[f"relu{index}"], dropout_ratio=0.5, in_place=True)
        top = n[f"drop{index}"]
    n.fc8 = L.InnerProduct(top, num_output=1000, weight_filler=_GAUSSIAN)
    return _named(_head(n, n.fc8, train), "VGG_ILSVRC_16_layers")


def _conv_bn_scale(n: NetSpec, bottom: Top, conv: str, suffix: str, out: int, kernel: int,
                   stride: int, relu: bool, train: bool, bias: bool = False) -> Top:
    """Convolution `conv`, then BatchNorm bn<suffix> and Scale scale<suffix> in place, then
    an optional in-place ReLU `<conv>_relu`."""
    n[conv] = L.Convolution(bottom, num_output=out, kernel_size=kernel, pad=(kernel - 1) // 2,
                            stride=stride, bias_term=bias, weight_filler=_MSRA)
    n[f"bn{suffix}"] = L.BatchNorm(n[conv], use_global_stats=not train, in_place=True)
    n[f"scale{suffix}"] = L.Scale(n[f"bn{suffix}"], bias_term=True, in_place=True)
    top = n[f"scale{suffix}"]
    if relu:
        n[f"{conv}_relu"] = L.ReLU(top, in_place=True)
        top = n[f"{conv}_relu"]
    return top


def resnet50(batch: int = 1, train: bool = False) -> caffe_pb2.NetParameter:
    """ResNet-50 (He et al. 2015) in the published Caffe deploy layout, 224x224 input."""
    n = NetSpec()
    x = _inputs(n, batch, 224, train)
    top = _conv_bn_scale(n, x, "conv1", "_conv1", 64, 7, 2, relu=True, train=train, bias=True)
    n.pool1 = L.Pooling(top, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    top = n.pool1
    stages = [(2, 64, 3, 1), (3, 128, 4, 2), (4, 256, 6, 2), (5, 512, 3, 2)]
    for stage, width, blocks, first_stride in stages:
        for block in range(blocks):
            tag = f"{stage}{chr(ord('a') + block)}"
            stride = first_stride if block == 0 else 1
            if block == 0:
                shortcut = _conv_bn_scale(n, top, f"res{tag}_branch1", f"{tag}_branch1",
                                          4 * width, 1, stride, relu=False, train=train)
            else:
                shortcut = top
            branch = _conv_bn_scale(n, top, f"res{tag}_branch2a", f"{tag}_branch2a", width, 1,
                                    stride, relu=True, train=train)
            branch = _conv_bn_scale(n, branch, f"res{tag}_branch2b", f"{tag}_branch2b", width,
                                    3, 1, relu=True, train=train)
            branch = _conv_bn_scale(n, branch, f"res{tag}_branch2c", f"{tag}_branch2c",
                                    4 * width, 1, 1, relu=False, train=train)
            n[f"res{tag}"] = L.Eltwise(shortcut, branch)
            n[f"res{tag}_relu"] = L.ReLU(n[f"res{tag}"], in_place=True)
            top = n[f"res{tag}_relu"]
    n.pool5 = L.Pooling(top, pool=P.Pooling.AVE, kernel_size=7, stride=1)
    n.fc1000 = L.InnerProduct(n.pool5, num_output=1000, weight_filler=_MSRA)
    return _named(_head(n, n.fc1000, train), "ResNet-50")
