"""The NetSpec model-zoo nets (caffeonspark.zoo): the same layout as the published deploy
files, and a forward pass equal to a float64 NumPy re-statement (tests/numpy_net.py) at
batch 1, and at batch 8 equal row by row to batch 1."""

from __future__ import annotations

import numpy as np
import pytest
from numpy_net import numpy_forward

from caffeonspark import engine, model_io, zoo
from caffeonspark.proto import caffe_pb2

FORWARD_RTOL = 1e-4  # relative to max |reference| of each compared blob

# zoo builder -> the published deploy file it mirrors (shared/anchors/caffe)
PUBLISHED = {
    "resnet50": "kaiminghe_resnet_50_deploy.prototxt",
    "vgg16": "vgg_ilsvrc_16_layers_deploy.prototxt",
    "caffenet": "bvlc_reference_caffenet_deploy.prototxt",
}


def _layout(net: caffe_pb2.NetParameter) -> list[tuple]:
    return [(layer.name, layer.type, tuple(layer.bottom), tuple(layer.top))
            for layer in net.layer if layer.type != "Input"]


def _param_shapes(net: engine.Net) -> dict[str, list[tuple]]:
    return {name: [tuple(blob.shape) for blob in blobs] for name, blobs in net.params.items()}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_zoo_net_has_the_published_layout_and_parameter_shapes(anchors, name):
    ours = getattr(zoo, name)(batch=1)
    published = model_io.read_net_prototxt(anchors / "caffe" / PUBLISHED[name])
    assert _layout(ours) == _layout(published)
    a, b = engine.Net(ours, phase=engine.TEST), engine.Net(published, phase=engine.TEST)
    try:
        assert _param_shapes(a) == _param_shapes(b)
    finally:
        a.close()
        b.close()


def randomise_statistics(net: engine.Net, proto: caffe_pb2.NetParameter, seed: int) -> None:
    """Give BatchNorm stored statistics and Scale operands non-trivial values (fillers leave
    them 0 and 1), with a BatchNorm scale factor other than 1 so its division is checked."""
    rng = np.random.default_rng(seed)
    for layer in proto.layer:
        blobs = net.params.get(layer.name, [])
        if layer.type == "BatchNorm":
            factor = 2.0
            blobs[0].data[...] = rng.normal(0, 0.2, blobs[0].shape) * factor
            blobs[1].data[...] = rng.uniform(0.5, 1.5, blobs[1].shape) * factor
            blobs[2].data[...] = factor
        elif layer.type == "Scale":
            blobs[0].data[...] = rng.uniform(0.5, 1.5, blobs[0].shape)
            blobs[1].data[...] = rng.normal(0, 0.1, blobs[1].shape)


def _forward(net: engine.Net, images: np.ndarray) -> None:
    net.blobs["data"].reshape(*images.shape)
    net.reshape()
    net.blobs["data"].data[...] = images
    net.forward()


def _assert_close(label: str, got: np.ndarray, want: np.ndarray) -> None:
    scale = max(float(np.max(np.abs(want))), 1e-20)
    err = float(np.max(np.abs(np.asarray(got, np.float64) - want))) / scale
    assert err <= FORWARD_RTOL, f"{label}: max error {err:.3g} relative to {scale:.3g}"


@pytest.mark.parametrize("name", ["resnet50", "vgg16"])
def test_zoo_forward_matches_numpy_at_batch_1_and_8(name):
    proto = getattr(zoo, name)(batch=1)
    engine.set_random_seed(3)
    net = engine.Net(proto, phase=engine.TEST)
    try:
        randomise_statistics(net, proto, seed=4)
        images = np.random.default_rng(5).normal(0, 1, (8, 3, 224, 224)).astype(np.float32)
        _forward(net, images[:1])
        params = {layer: [blob.data.copy() for blob in blobs]
                  for layer, blobs in net.params.items()}
        want = numpy_forward(proto, {"data": images[:1]}, params)
        final = {"resnet50": "fc1000", "vgg16": "fc8"}[name]
        for blob in (final, "prob", "pool5"):
            _assert_close(blob, net.blobs[blob].data, want[blob])
        single = [net.blobs[final].data.copy()]
        for i in range(1, 8):
            _forward(net, images[i:i + 1])
            single.append(net.blobs[final].data.copy())
        _forward(net, images)
        for i in range(8):
            _assert_close(f"batch 8 row {i}", net.blobs[final].data[i], single[i][0])
        probabilities = net.blobs["prob"].data
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    finally:
        net.close()
