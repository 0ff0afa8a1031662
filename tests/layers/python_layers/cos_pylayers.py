"""Python layers used by tests/layers/test_python_layer.py (our own code, pycaffe's
interface): each is found through sys.path, as `python_param { module: "cos_pylayers" }`."""

from __future__ import annotations

import json

import numpy as np

from caffeonspark.caffe import Layer


class EuclideanLoss(Layer):
    """loss = sum((a - b)^2) / (2 N); d loss / d a = (a - b) / N (times the top's loss weight)."""

    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise ValueError("EuclideanLoss takes two bottoms")

    def reshape(self, bottom, top):
        if bottom[0].count != bottom[1].count:
            raise ValueError(f"bottoms differ: {bottom[0].shape} vs {bottom[1].shape}")
        self.delta = np.zeros_like(bottom[0].data, dtype=np.float32)
        top[0].reshape()  # a scalar, as the native losses' tops

    def forward(self, bottom, top):
        self.delta[...] = bottom[0].data - bottom[1].data
        top[0].data[...] = np.sum(self.delta.astype(np.float64) ** 2) / bottom[0].num / 2.0

    def backward(self, top, propagate_down, bottom):
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                bottom[i].diff[...] = sign * top[0].diff.flat[0] * self.delta / bottom[i].num


class SoftmaxLoss(Layer):
    """Mean cross-entropy of softmax(bottom[0]) against integer labels bottom[1]."""

    def reshape(self, bottom, top):
        top[0].reshape()

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(bottom[0].num, -1).astype(np.float64)
        x -= x.max(axis=1, keepdims=True)
        self.prob = np.exp(x)
        self.prob /= self.prob.sum(axis=1, keepdims=True)
        self.label = bottom[1].data.reshape(-1).astype(int)
        picked = self.prob[np.arange(len(self.label)), self.label]
        top[0].data[...] = -np.mean(np.log(np.maximum(picked, 1e-30)))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            grad = self.prob.copy()
            grad[np.arange(len(self.label)), self.label] -= 1
            scale = top[0].diff.flat[0] / len(self.label)
            bottom[0].diff[...] = (grad * scale).reshape(bottom[0].shape)


class LearnedScale(Layer):
    """y = w * x with one learned scalar w (param_str: {"init": w0}), as a parameter blob."""

    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[...] = json.loads(self.param_str or "{}").get("init", 1.0)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data[0] * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] += np.sum(top[0].diff.astype(np.float64) * bottom[0].data)
        if propagate_down[0]:
            bottom[0].diff[...] = self.blobs[0].data[0] * top[0].diff


class Probe(Layer):
    """Writes [phase, len(param_str), calls to setup] into its top and keeps what it saw."""

    def setup(self, bottom, top):
        self.setups = getattr(self, "setups", 0) + 1
        self.layer_name = self.layer_param.name

    def reshape(self, bottom, top):
        top[0].reshape(3)

    def forward(self, bottom, top):
        top[0].data[...] = [self.phase, len(self.param_str), self.setups]

    def backward(self, top, propagate_down, bottom):
        pass


class InPlaceAddOne(Layer):
    """Adds 1 to its bottom through the top view (runs in place: top is bottom)."""

    def forward(self, bottom, top):
        top[0].data[...] += 1

    def backward(self, top, propagate_down, bottom):
        pass


class Fail(Layer):
    """Raises ZeroDivisionError in the method param_str names (KeyboardInterrupt for
    "interrupt <method>"); otherwise copies its bottom."""

    def _maybe_fail(self, method):
        if self.param_str == "interrupt " + method:
            raise KeyboardInterrupt
        if self.param_str == method:
            return 1 / 0
        return None

    def setup(self, bottom, top):
        self._maybe_fail("setup")

    def reshape(self, bottom, top):
        self._maybe_fail("reshape")
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        self._maybe_fail("forward")
        top[0].data[...] = bottom[0].data

    def backward(self, top, propagate_down, bottom):
        self._maybe_fail("backward")
        bottom[0].diff[...] = top[0].diff


KEPT: list[tuple] = []


class KeepBlobs(Layer):
    """Keeps its bottom and top Blobs in KEPT beyond the net's life; top = bottom."""

    def setup(self, bottom, top):
        KEPT.append((bottom[0], top[0]))

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = top[0].diff


class AddBlobLate(Layer):
    """Tries to add a parameter blob after setup."""

    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.blobs.add_blob(2)

    def backward(self, top, propagate_down, bottom):
        pass


class NoForward:
    """Not derived from caffe.Layer and missing most methods."""

    def __init__(self, param):
        self.param = param

    def setup(self, bottom, top):
        pass


NOT_A_CLASS = 3
