"""Learning-rate policies (docs/CAFFE.md §4.4) against their closed forms, the LeNet log
anchor, multistep's current_step (one advance per iteration at most), step's current_step
and the errors for unknown or incomplete policies."""

from __future__ import annotations

import math

import numpy as np
import pytest
from google.protobuf import text_format

from caffeonspark._native import _engine
from caffeonspark.errors import ConfigError
from caffeonspark.proto import caffe_pb2
from caffeonspark.solver import solver_params


def policy(text: str):
    param = caffe_pb2.SolverParameter()
    text_format.Parse(text, param)
    return _engine.LrPolicy(solver_params(param))


def f32(value: float) -> float:
    """SolverParameter fields are float32: closed forms use the rounded values."""
    return float(np.float32(value))


CLOSED_FORMS = {
    'lr_policy: "fixed" base_lr: 0.05': lambda t: f32(0.05),
    'lr_policy: "step" base_lr: 0.1 gamma: 0.5 stepsize: 3': lambda t: f32(0.1) * 0.5 ** (t // 3),
    'lr_policy: "exp" base_lr: 0.1 gamma: 0.97': lambda t: f32(0.1) * f32(0.97) ** t,
    'lr_policy: "inv" base_lr: 0.01 gamma: 0.0001 power: 0.75': (
        lambda t: f32(0.01) * (1 + f32(0.0001) * t) ** -0.75
    ),
    'lr_policy: "poly" base_lr: 0.2 power: 1.5 max_iter: 40': (
        lambda t: f32(0.2) * (1 - t / 40) ** 1.5
    ),
    'lr_policy: "sigmoid" base_lr: 0.3 gamma: -0.2 stepsize: 10': (
        lambda t: f32(0.3) / (1 + math.exp(-f32(-0.2) * (t - 10)))
    ),
}


@pytest.mark.parametrize("text", list(CLOSED_FORMS))
def test_policy_matches_closed_form(text):
    lr = policy(text)
    for it in range(0, 40):
        rate, _ = lr.rate(it, 0)
        np.testing.assert_allclose(rate, CLOSED_FORMS[text](it), rtol=1e-6, err_msg=f"iter {it}")


def test_inv_matches_lenet_log_anchor():
    # caffe/examples/mnist: base_lr 0.01, inv, gamma 1e-4, power 0.75 logs
    # "Iteration 100, lr = 0.00992565".
    rate, _ = policy('lr_policy: "inv" base_lr: 0.01 gamma: 0.0001 power: 0.75').rate(100)
    assert f"{rate:g}" == "0.00992565"


def test_step_sets_current_step_to_iter_over_stepsize():
    lr = policy('lr_policy: "step" base_lr: 1 gamma: 0.1 stepsize: 4')
    assert lr.rate(9, 0)[1] == 2
    assert lr.rate(3, 7)[1] == 0


def test_multistep_advances_current_step_through_stepvalues():
    lr = policy(
        'lr_policy: "multistep" base_lr: 0.1 gamma: 0.5 stepvalue: 3 stepvalue: 5 stepvalue: 6'
    )
    step, steps, rates = 0, [], []
    for it in range(10):
        rate, step = lr.rate(it, step)
        steps.append(step)
        rates.append(rate)
    assert steps == [0, 0, 0, 1, 1, 2, 3, 3, 3, 3]
    np.testing.assert_allclose(rates, [0.1 * 0.5**s for s in steps], rtol=1e-7)


def test_multistep_advances_at_most_once_per_call():
    # Resumed at iteration 10 with current_step 0, past both stepvalues: one step per call,
    # as Caffe's loop does.
    lr = policy('lr_policy: "multistep" base_lr: 1 gamma: 0.1 stepvalue: 2 stepvalue: 3')
    rate, step = lr.rate(10, 0)
    assert step == 1 and rate == pytest.approx(0.1)
    rate, step = lr.rate(11, step)
    assert step == 2 and rate == pytest.approx(0.01)
    rate, step = lr.rate(12, step)
    assert step == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ('lr_policy: "cosine" base_lr: 0.1', 'unknown lr_policy "cosine"'),
        ("base_lr: 0.1", "lr_policy is not set"),
        ('lr_policy: "step" base_lr: 0.1 gamma: 0.1', "stepsize > 0"),
        ('lr_policy: "poly" base_lr: 0.1 power: 1', "max_iter > 0"),
    ],
)
def test_bad_policies_are_config_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        policy(text)
