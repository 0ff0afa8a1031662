"""The parallel loops of cpp/core/parallel.h above their threshold: every layer that uses
them, and the update rules, give bitwise the same forward, backward and update with one
thread as with two (each index is computed by one thread, so the split must not show).
The other layer and solver tests use small blobs, which stay on one thread."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format
from layer_check import build_probe, probe_tops

from caffeonspark import engine
from caffeonspark._native import _engine
from caffeonspark.proto import caffe_pb2
from caffeonspark.solver import Solver

# Each case: layer text, input shapes; every input is above the threshold (65536 elements,
# or 32768 for the windowed Pooling and LRN loops).
LAYER_CASES = {
    "relu": ('type: "ReLU" relu_param { negative_slope: 0.1 }', [(2, 40000)]),
    "sigmoid": ('type: "Sigmoid"', [(80000,)]),
    "power": ('type: "Power" power_param { power: 2 scale: 0.5 shift: 1 }', [(80000,)]),
    "prelu": ('type: "PReLU"', [(2, 4, 100, 100)]),
    "eltwise_prod": ('type: "Eltwise" eltwise_param { operation: PROD }', [(80000,)] * 2),
    "eltwise_max": ('type: "Eltwise" eltwise_param { operation: MAX }', [(80000,)] * 2),
    "concat": ('type: "Concat" concat_param { axis: 1 }', [(200, 400), (200, 300)]),
    "softmax": ('type: "Softmax"', [(40, 10, 200)]),
    "max_pool": (
        'type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 }',
        [(2, 4, 70, 70)],
    ),
    "ave_pool": (
        'type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }',
        [(2, 4, 70, 70)],
    ),
    "lrn_across": ('type: "LRN" lrn_param { local_size: 3 }', [(2, 4, 70, 70)]),
    "lrn_within": (
        'type: "LRN" lrn_param { local_size: 3 norm_region: WITHIN_CHANNEL }',
        [(2, 4, 70, 70)],
    ),
    # Per-channel reductions (cpp/core/lane_sums.h): summed in an order fixed by the shape.
    "batch_norm": ('type: "BatchNorm"', [(4, 8, 50, 50)]),
    "batch_norm_global": (
        'type: "BatchNorm" batch_norm_param { use_global_stats: true }',
        [(4, 8, 50, 50)],
    ),
    "scale": ('type: "Scale" scale_param { bias_term: true }', [(4, 8, 50, 50)]),
    "scale_two_bottoms": ('type: "Scale"', [(4, 8, 50, 50), (8,)]),
    "bias": ('type: "Bias"', [(4, 8, 50, 50)]),
    "eltwise_sum": (
        'type: "Eltwise" eltwise_param { operation: SUM coeff: 0.5 coeff: -2 coeff: 1 }',
        [(80000,)] * 3,
    ),
}
# In place: the layer's top is its bottom x0.
PROBE_TOPS = {
    "batch_norm_in_place": ('type: "BatchNorm"', [(4, 8, 50, 50)], ["x0"]),
    "scale_in_place": ('type: "Scale" scale_param { bias_term: true }', [(4, 8, 50, 50)], ["x0"]),
    "relu_in_place": ('type: "ReLU"', [(2, 40000)], ["x0"]),
}


@pytest.fixture
def restore_threads():
    threads = _engine.num_threads()
    yield
    engine.set_num_threads(threads)


def _run_layer(
    text: str, shapes: list[tuple[int, ...]], threads: int, tops: list[str] | None = None
) -> list[np.ndarray]:
    engine.set_num_threads(threads)
    rng = np.random.default_rng(7)
    inputs = {f"x{i}": rng.normal(size=s).astype(np.float32) for i, s in enumerate(shapes)}
    engine.set_random_seed(1701)
    net = build_probe(text, inputs, tops=tops)
    last = len(net.layer_names) - 1
    net.native.forward_from_to(1, last)
    tops = probe_tops(net)
    for t in tops:
        net.blobs[t].diff[...] = rng.normal(size=net.blobs[t].shape).astype(np.float32)
    net.native.backward_from_to(last, 1)
    params = net.params.get(net.layer_names[last], [])
    return (
        [net.blobs[t].data.copy() for t in tops]
        + [net.blobs[b].diff.copy() for b in inputs]
        + [p.diff.copy() for p in params]
    )


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_same_on_one_and_two_threads(case, restore_threads):
    text, shapes = LAYER_CASES[case]
    one = _run_layer(text, shapes, threads=1)
    two = _run_layer(text, shapes, threads=2)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", sorted(PROBE_TOPS))
def test_layer_with_named_tops_same_on_one_and_two_threads(case, restore_threads):
    text, shapes, tops = PROBE_TOPS[case]
    one = _run_layer(text, shapes, threads=1, tops=tops)
    two = _run_layer(text, shapes, threads=2, tops=tops)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


# 300 x 300 weights (90000 > 65536) so the update loops go parallel.
BIG_NET = """
name: "big"
layer { name: "in" type: "Input" top: "x" top: "label"
  input_param { shape { dim: 8 dim: 300 } shape { dim: 8 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
  inner_product_param { num_output: 300 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""
RULES = {
    "SGD": "momentum: 0.9",
    "Nesterov": "momentum: 0.9",
    "AdaGrad": "",
    "RMSProp": "rms_decay: 0.95",
    "AdaDelta": "momentum: 0.95 delta: 1e-6",
    "Adam": "momentum: 0.9 momentum2: 0.999",
}


def _train(rule: str, regularization: str, threads: int) -> np.ndarray:
    engine.set_num_threads(threads)
    param = caffe_pb2.SolverParameter()
    text_format.Parse(
        f'type: "{rule}" {RULES[rule]} base_lr: 0.01 lr_policy: "fixed" weight_decay: 5e-4 '
        f'regularization_type: "{regularization}" random_seed: 1701 max_iter: 10 '
        "snapshot_after_train: false",
        param,
    )
    text_format.Parse(BIG_NET, param.net_param)
    solver = Solver(param)
    rng = np.random.default_rng(3)
    solver.net.blobs["x"].data[...] = rng.normal(size=(8, 300)).astype(np.float32)
    solver.net.blobs["label"].data[...] = rng.integers(0, 300, size=8).astype(np.float32)
    solver.step(3)
    return solver.net.params["ip"][0].data.copy()


@pytest.mark.parametrize("regularization", ["L2", "L1"])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_update_rule_same_on_one_and_two_threads(rule, regularization, restore_threads):
    np.testing.assert_array_equal(_train(rule, regularization, 1), _train(rule, regularization, 2))
