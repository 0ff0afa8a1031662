"""Shared pieces of the solver tests: a tiny softmax-regression net, solvers built around
it, deterministic batches fed through the Input blobs, and a float64 NumPy reference of
the net's gradient (the update rules themselves are recomputed in each test)."""

from __future__ import annotations

import numpy as np
from google.protobuf import text_format

from caffeonspark.proto import caffe_pb2
from caffeonspark.solver import Solver

DIM, CLASSES = 3, 3

# x (N, DIM) -> InnerProduct(CLASSES) -> SoftmaxWithLoss; in TEST the loss layer also
# outputs the probabilities (a second, weight-0 top: an output with N*CLASSES elements).
# ignore_label -1 (never a label) is explicit: an engine that mistakes an unset ignore_label
# for 0 would otherwise drop class 0 from the loss.
TINY_NET = """
name: "tiny"
layer {{ name: "in" type: "Input" top: "x" top: "label"
  input_param {{ shape {{ dim: {n} dim: {dim} }} shape {{ dim: {n} }} }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
  param {{ lr_mult: 1 decay_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0.5 }}
  inner_product_param {{ num_output: {classes}
    weight_filler {{ type: "gaussian" std: 0.5 }} bias_filler {{ type: "gaussian" std: 0.5 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
  loss_param {{ ignore_label: -1 }} exclude {{ phase: TEST }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
  top: "prob" loss_weight: 1 loss_weight: 0 loss_param {{ ignore_label: -1 }}
  include {{ phase: TEST }} }}
"""


def tiny_net(batch: int = 4) -> caffe_pb2.NetParameter:
    net = caffe_pb2.NetParameter()
    text_format.Parse(TINY_NET.format(n=batch, dim=DIM, classes=CLASSES), net)
    return net


def solver_param(text: str, net: caffe_pb2.NetParameter | None = None) -> caffe_pb2.SolverParameter:
    """A SolverParameter from `text` with the net inline (default: tiny_net())."""
    param = caffe_pb2.SolverParameter()
    text_format.Parse(text, param)
    param.net_param.CopyFrom(net if net is not None else tiny_net())
    if not param.HasField("random_seed"):
        param.random_seed = 1701
    return param


def batch(key: int, size: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic batch number `key`: x (size, DIM) float32, labels (size,) as float."""
    rng = np.random.default_rng(1000 + key)
    x = rng.normal(size=(size, DIM)).astype(np.float32)
    label = rng.integers(0, CLASSES, size=size).astype(np.float32)
    return x, label


class Feeder:
    """Forward hook: train forward k of iteration i gets batch(i * iter_size + k); test net
    forwards get batches from a separate counter. Keeps the batches it fed."""

    def __init__(self, solver: Solver, iter_size: int = 1, size: int = 4) -> None:
        self.solver, self.iter_size, self.size = solver, iter_size, size
        self.pass_in_iter, self.last_iter = 0, None
        self.test_count = 0
        self.fed: list[tuple[int, np.ndarray, np.ndarray]] = []
        solver.set_forward_hook(self)

    def __call__(self, net, index: int) -> None:
        if index < 0:
            it = self.solver.iter
            self.pass_in_iter = self.pass_in_iter + 1 if it == self.last_iter else 0
            self.last_iter = it
            key = it * self.iter_size + self.pass_in_iter
        else:
            key = 100000 + self.test_count
            self.test_count += 1
        x, label = batch(key, self.size)
        net.blobs["x"].data[...] = x
        net.blobs["label"].data[...] = label
        self.fed.append((index, x, label))


def softmax_loss_grads(
    x: np.ndarray, label: np.ndarray, w: np.ndarray, b: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """float64 loss, dW, db of mean softmax cross-entropy (VALID normalisation)."""
    x, w, b = (np.asarray(a, np.float64) for a in (x, w, b))
    logits = x @ w.T + b
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    n = x.shape[0]
    idx = label.astype(int)
    loss = -np.log(p[np.arange(n), idx]).mean()
    g = p.copy()
    g[np.arange(n), idx] -= 1
    g /= n
    return float(loss), g.T @ x, g.sum(axis=0)


def params_of(solver: Solver, layer: str = "ip") -> list[np.ndarray]:
    return [blob.data.astype(np.float64) for blob in solver.net.params[layer]]
