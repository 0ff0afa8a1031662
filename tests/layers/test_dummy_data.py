"""DummyData (cpp/layers/dummy_data.h): shapes from `shape` or the legacy 4-D fields, one
filler for all tops or one per top, constant tops filled once and random ones refilled in
every Forward, and the count rules as ConfigErrors."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from caffeonspark import engine, errors
from caffeonspark.proto import caffe_pb2


def dummy_net(body: str, tops=("a", "b")) -> engine.Net:
    top_text = " ".join(f'top: "{t}"' for t in tops)
    text = f'layer {{ name: "d" type: "DummyData" {top_text} dummy_data_param {{ {body} }} }}'
    return engine.Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase=engine.TRAIN)


def test_default_filler_is_constant_zero_and_shape_once_for_all_tops():
    net = dummy_net("shape { dim: 2 dim: 3 }")
    net.forward()
    for name in ("a", "b"):
        assert net.blobs[name].shape == (2, 3)
        np.testing.assert_array_equal(net.blobs[name].data, np.zeros((2, 3)))


def test_shape_per_top_and_filler_per_top():
    net = dummy_net(
        "shape { dim: 4 } shape { dim: 1 dim: 2 dim: 3 } "
        'data_filler { type: "constant" value: 7 } data_filler { type: "constant" value: -2 }'
    )
    net.forward()
    np.testing.assert_array_equal(net.blobs["a"].data, np.full(4, 7.0))
    np.testing.assert_array_equal(net.blobs["b"].data, np.full((1, 2, 3), -2.0))


def test_legacy_dims_once_or_per_top():
    net = dummy_net("num: 5 num: 6 channels: 2 height: 3 width: 1")
    assert net.blobs["a"].shape == (5, 2, 3, 1)
    assert net.blobs["b"].shape == (6, 2, 3, 1)


def test_random_tops_refill_each_forward_constant_ones_do_not():
    net = dummy_net(
        "shape { dim: 3 dim: 4 } "
        'data_filler { type: "uniform" min: 2 max: 3 } data_filler { type: "constant" value: 1 }'
    )
    net.forward()
    first = net.blobs["a"].data.copy()
    assert ((first >= 2) & (first <= 3)).all() and np.unique(first).size > 1
    net.blobs["b"].data[...] = 9  # a constant top is never refilled
    net.forward()
    second = net.blobs["a"].data.copy()
    assert ((second >= 2) & (second <= 3)).all()
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(net.blobs["b"].data, np.full((3, 4), 9.0))


def test_one_gaussian_filler_for_all_tops_refills_all():
    net = dummy_net('shape { dim: 2000 } data_filler { type: "gaussian" mean: 3 std: 0.5 }')
    net.forward()
    for name in ("a", "b"):
        data = net.blobs[name].data
        assert abs(data.mean() - 3) < 0.05 and abs(data.std() - 0.5) < 0.05


def test_shape_survives_a_net_reshape():
    net = dummy_net("shape { dim: 2 dim: 5 }")
    net.reshape()
    assert net.blobs["a"].shape == (2, 5)


@pytest.mark.parametrize(
    "body, message",
    [
        ("shape { dim: 2 } num: 1 channels: 1 height: 1 width: 1", "both"),
        ("shape { dim: 1 } shape { dim: 2 } shape { dim: 3 }", "shape must be given once"),
        ("", "shape must be given once"),
        ("num: 1 num: 2 num: 3 channels: 1 height: 1 width: 1", "num must be given once"),
        ("num: 1", "channels must be given once"),
        (
            "shape { dim: 1 } " + 'data_filler { type: "constant" } ' * 3,
            "data_filler must be given 0 times",
        ),
        ('shape { dim: 1 } data_filler { type: "nope" }', "unknown filler type"),
    ],
)
def test_count_rules_are_config_errors(body, message):
    with pytest.raises(errors.ConfigError, match=message) as info:
        dummy_net(body).forward()
    assert "layer 'd' (DummyData)" in str(info.value)
