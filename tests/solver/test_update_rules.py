"""Every update rule (docs/CAFFE.md §4.2) recomputed by hand in float64 NumPy for four
iterations of a softmax-regression net: weights AND history after each iteration, with L2
and L1 weight decay 0.5, lr_mult 2 / decay_mult 0.5 on the bias, momentum 0.5 / 0.9,
clip_gradients on and off, iter_size 2 (clipping sees the raw accumulated diff); plus
iter_size == bigger batch, weight sharing (one history entry, summed gradients) and the
configuration errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from google.protobuf import text_format
from solver_util import Feeder, batch, params_of, softmax_loss_grads, solver_param

from caffeonspark import engine
from caffeonspark.errors import ConfigError
from caffeonspark.proto import caffe_pb2
from caffeonspark.solver import Solver

ITERS = 4
LR_MULT = (1.0, 2.0)  # weight, bias (tiny_net's ParamSpecs)
DECAY_MULT = (1.0, 0.5)
TOL = dict(rtol=1e-6, atol=1e-6)


def f32(value: float) -> float:
    return float(np.float32(value))


RULES = {
    # name: (solver fields, momentum values to try)
    "SGD": ("base_lr: 0.1", (0.5, 0.9)),
    "Nesterov": ("base_lr: 0.1", (0.5, 0.9)),
    "AdaGrad": ("base_lr: 0.1 delta: 1e-8", (0.0,)),
    "RMSProp": ("base_lr: 0.05 rms_decay: 0.95 delta: 1e-8", (0.0,)),
    "AdaDelta": ("base_lr: 1.0 delta: 1e-6", (0.95,)),
    "Adam": ("base_lr: 0.05 momentum2: 0.999 delta: 1e-8", (0.9,)),
}
CASES = [
    (rule, momentum, reg, clip, 1)
    for rule, (_, momenta) in RULES.items()
    for momentum in momenta
    for reg in ("L2", "L1")
    for clip in (-1.0, 0.1)
] + [("SGD", 0.5, "L2", 0.1, 2), ("Adam", 0.9, "L1", 0.1, 2)]


def solver_text(rule: str, momentum: float, reg: str, clip: float, iter_size: int) -> str:
    fields, _ = RULES[rule]
    return (
        f'type: "{rule}" {fields} momentum: {momentum} lr_policy: "inv" gamma: 0.1 '
        f'power: 0.75 weight_decay: 0.5 regularization_type: "{reg}" clip_gradients: {clip} '
        f"iter_size: {iter_size} max_iter: 100 snapshot_after_train: false"
    )


def reference(rule, momentum, reg, clip, iter_size, params, batches, param):
    """Caffe's ApplyUpdate in float64; yields (params, history) after each iteration."""
    params = [p.copy() for p in params]
    sets = 2 if rule in ("AdaDelta", "Adam") else 1
    history = [np.zeros_like(p) for _ in range(sets) for p in params]
    n = len(params)
    base_lr, gamma, power = f32(param.base_lr), f32(param.gamma), f32(param.power)
    m, m2, delta, rms = (f32(v) for v in (momentum, param.momentum2, param.delta, param.rms_decay))
    for it in range(ITERS):
        grads = [np.zeros_like(p) for p in params]
        for k in range(iter_size):
            x, label = batches[it * iter_size + k]
            _, gw, gb = softmax_loss_grads(x, label, *params)
            grads[0] += gw
            grads[1] += gb
        rate = base_lr * (1 + gamma * it) ** -power
        if clip >= 0:
            norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
            if norm > clip:
                grads = [g * (clip / norm) for g in grads]
        for i in range(n):
            g = grads[i] / iter_size
            decay = 0.5 * DECAY_MULT[i]
            g = g + decay * (params[i] if reg == "L2" else np.sign(params[i]))
            lr = rate * LR_MULT[i]
            h = history[i]
            if rule == "SGD":
                h[...] = m * h + lr * g
                update = h.copy()
            elif rule == "Nesterov":
                old = h.copy()
                h[...] = m * h + lr * g
                update = (1 + m) * h - m * old
            elif rule == "AdaGrad":
                h += g * g
                update = lr * g / (np.sqrt(h) + delta)
            elif rule == "RMSProp":
                h[...] = rms * h + (1 - rms) * g * g
                update = lr * g / (np.sqrt(h) + delta)
            elif rule == "AdaDelta":
                h2 = history[n + i]
                h[...] = m * h + (1 - m) * g * g
                u = g * np.sqrt((h2 + delta) / (h + delta))
                h2[...] = m * h2 + (1 - m) * u * u
                update = lr * u
            else:  # Adam
                v = history[n + i]
                h[...] = m * h + (1 - m) * g
                v[...] = m2 * v + (1 - m2) * g * g
                t = it + 1
                update = lr * math.sqrt(1 - m2**t) / (1 - m**t) * h / (np.sqrt(v) + delta)
            params[i] = params[i] - update
        yield [p.copy() for p in params], [h.copy() for h in history]


@pytest.mark.parametrize("rule, momentum, reg, clip, iter_size", CASES)
def test_update_rule_matches_float64_reference(rule, momentum, reg, clip, iter_size):
    param = solver_param(solver_text(rule, momentum, reg, clip, iter_size))
    solver = Solver(param)
    feeder = Feeder(solver, iter_size=iter_size)
    start = params_of(solver)
    batches = [batch(key) for key in range(ITERS * iter_size)]
    expected = reference(rule, momentum, reg, clip, iter_size, start, batches, solver.param)
    assert solver.native.history_sets == (2 if rule in ("AdaDelta", "Adam") else 1)
    for it, (want_params, want_history) in enumerate(expected):
        solver.step(1)
        assert solver.iter == it + 1
        for got, want in zip(params_of(solver), want_params, strict=True):
            np.testing.assert_allclose(got, want, **TOL, err_msg=f"{rule} weights, iter {it}")
        history = solver.history
        assert len(history) == len(want_history)
        for got, want in zip(history, want_history, strict=True):
            np.testing.assert_allclose(got, want, **TOL, err_msg=f"{rule} history, iter {it}")
    assert len(feeder.fed) == ITERS * iter_size


def test_clipping_really_clips():
    # The clip threshold of the grid (0.1) must be below the gradient norm, or the clip
    # cases would test nothing.
    x, label = batch(0)
    solver = Solver(solver_param('base_lr: 0.1 lr_policy: "fixed" snapshot_after_train: false'))
    _, gw, gb = softmax_loss_grads(x, label, *params_of(solver))
    assert math.sqrt((gw**2).sum() + (gb**2).sum()) > 0.3


def test_iter_size_two_equals_double_batch():
    text = (
        'type: "SGD" base_lr: 0.1 momentum: 0.9 lr_policy: "fixed" weight_decay: 0.01 '
        "clip_gradients: 10 snapshot_after_train: false"
    )
    big = Solver(solver_param(text + " iter_size: 1", _net_with_batch(8)))
    small = Solver(solver_param(text + " iter_size: 2", _net_with_batch(4)))
    for a, b in zip(params_of(big), params_of(small), strict=True):
        np.testing.assert_array_equal(a, b)  # same random_seed, same fillers

    def feed_big(net, index):
        halves = [batch(2 * big.iter + k) for k in range(2)]
        net.blobs["x"].data[...] = np.concatenate([h[0] for h in halves])
        net.blobs["label"].data[...] = np.concatenate([h[1] for h in halves])

    big.set_forward_hook(feed_big)
    Feeder(small, iter_size=2)
    for _ in range(3):
        big.step(1)
        small.step(1)
        for a, b in zip(params_of(big), params_of(small), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        for a, b in zip(big.history, small.history, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert big.native.last_loss == pytest.approx(small.native.last_loss, rel=1e-6)


def _net_with_batch(n: int) -> caffe_pb2.NetParameter:
    from solver_util import tiny_net

    return tiny_net(n)


SHARED_NET = """
name: "shared"
layer { name: "in" type: "Input" top: "x1" top: "x2" top: "l1" top: "l2"
  input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 3 } shape { dim: 4 }
                shape { dim: 4 } } }
layer { name: "ipa" type: "InnerProduct" bottom: "x1" top: "a"
  param { name: "w" } param { name: "ba" lr_mult: 2 decay_mult: 0 }
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 }
    bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "ipb" type: "InnerProduct" bottom: "x2" top: "b"
  param { name: "w" } param { lr_mult: 2 decay_mult: 0 }
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 }
    bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "lossa" type: "SoftmaxWithLoss" bottom: "a" bottom: "l1" top: "lossa"
  loss_param { ignore_label: -1 } }
layer { name: "lossb" type: "SoftmaxWithLoss" bottom: "b" bottom: "l2" top: "lossb"
  loss_param { ignore_label: -1 } }
"""


def test_weight_sharing_one_history_entry_summed_gradients():
    net = caffe_pb2.NetParameter()
    text_format.Parse(SHARED_NET, net)
    solver = Solver(
        solver_param(
            'type: "SGD" base_lr: 0.1 momentum: 0.5 lr_policy: "fixed" weight_decay: 0.5 '
            "snapshot_after_train: false",
            net,
        )
    )
    assert len(solver.history) == 3  # w (shared), ba, bb
    w = solver.net.params["ipa"][0].data.astype(np.float64)
    ba = solver.net.params["ipa"][1].data.astype(np.float64)
    bb = solver.net.params["ipb"][1].data.astype(np.float64)
    np.testing.assert_array_equal(solver.net.params["ipb"][0].data, w)
    h = [np.zeros_like(w), np.zeros_like(ba), np.zeros_like(bb)]

    def feed(net_, index):
        for k, names in enumerate((("x1", "l1"), ("x2", "l2"))):
            x, label = batch(10 * solver.iter + k)
            net_.blobs[names[0]].data[...] = x
            net_.blobs[names[1]].data[...] = label

    solver.set_forward_hook(feed)
    lr, m = f32(0.1), f32(0.5)
    for it in range(3):
        (x1, l1), (x2, l2) = batch(10 * it), batch(10 * it + 1)
        _, gwa, gba = softmax_loss_grads(x1, l1, w, ba)
        _, gwb, gbb = softmax_loss_grads(x2, l2, w, bb)
        grads = [gwa + gwb + 0.5 * w, gba, gbb]
        for i, (g, mult) in enumerate(zip(grads, (1, 2, 2), strict=True)):
            h[i] = m * h[i] + lr * mult * g
        w, ba, bb = w - h[0], ba - h[1], bb - h[2]
        solver.step(1)
        np.testing.assert_allclose(solver.net.params["ipa"][0].data, w, **TOL)
        np.testing.assert_allclose(solver.net.params["ipb"][0].data, w, **TOL)
        np.testing.assert_allclose(solver.net.params["ipa"][1].data, ba, **TOL)
        np.testing.assert_allclose(solver.net.params["ipb"][1].data, bb, **TOL)
        for got, want in zip(solver.history, h, strict=True):
            np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize(
    "text, message",
    [
        ('type: "AdaGrad" momentum: 0.9', "AdaGrad cannot use momentum"),
        ('type: "RMSProp" momentum: 0.9', "RMSProp cannot use momentum"),
        ('type: "RMSProp" rms_decay: 1.0', r"rms_decay must lie in \[0, 1\)"),
        ('type: "Adamax"', 'unknown solver type "Adamax"'),
        ('regularization_type: "L3" weight_decay: 0.1', 'unknown regularization_type "L3"'),
        ("iter_size: 0", "iter_size must be >= 1"),
        ("average_loss: 0", "average_loss must be >= 1"),
    ],
)
def test_bad_solver_settings_are_config_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        Solver(solver_param(f'base_lr: 0.1 lr_policy: "fixed" {text}'))


def test_engine_lists_the_six_rules():
    from caffeonspark._native import _engine

    assert sorted(_engine.update_rule_types()) == sorted(RULES)
    assert engine.TRAIN == caffe_pb2.TRAIN
