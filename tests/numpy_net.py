"""A float64 NumPy re-statement of a deploy net's forward pass, layer by layer from the
NetParameter, for checking whole nets (ResNet-50, VGG-16) against the engine.

    blobs = numpy_forward(net_param, {"data": x}, params)   # params: layer name -> arrays

Covers the types those nets use, in TEST phase: Input, Convolution (pad, stride, group),
Pooling (MAX / AVE with Caffe's ceil rounding and pad rules, docs/CAFFE.md §2.2), ReLU,
Dropout (identity at test), LRN (across channels), BatchNorm (global statistics), Scale,
Eltwise SUM, InnerProduct, Softmax. Written from the formulas, not from the engine's code.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from caffeonspark.proto import caffe_pb2


def _pair(values, single: int, h: int, w: int, default: int) -> tuple[int, int]:
    if h or w:
        return h, w
    if len(values):
        return (values[0], values[-1]) if len(values) > 1 else (values[0], values[0])
    return (single, single) if single else (default, default)


def convolution(x: np.ndarray, layer: caffe_pb2.LayerParameter, params) -> np.ndarray:
    p = layer.convolution_param
    kh, kw = _pair(p.kernel_size, 0, p.kernel_h, p.kernel_w, 0)
    sh, sw = _pair(p.stride, 0, p.stride_h, p.stride_w, 1)
    ph, pw = _pair(p.pad, 0, p.pad_h, p.pad_w, 0)
    weights = params[0]
    groups = p.group
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = sliding_window_view(padded, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    n, channels, oh, ow = windows.shape[:4]
    per_in, per_out = channels // groups, weights.shape[0] // groups
    out = np.empty((n, weights.shape[0], oh, ow))
    for g in range(groups):
        patches = windows[:, g * per_in:(g + 1) * per_in].transpose(0, 2, 3, 1, 4, 5)
        patches = patches.reshape(n * oh * ow, per_in * kh * kw)
        w = weights[g * per_out:(g + 1) * per_out].reshape(per_out, -1)
        out[:, g * per_out:(g + 1) * per_out] = (
            (patches @ w.T).reshape(n, oh, ow, per_out).transpose(0, 3, 1, 2))
    if p.bias_term:
        out += params[1].reshape(1, -1, 1, 1)
    return out


def pooling(x: np.ndarray, layer: caffe_pb2.LayerParameter) -> np.ndarray:
    p = layer.pooling_param
    height, width = x.shape[2:]
    if p.global_pooling:
        kh, kw, sh, sw, ph, pw = height, width, 1, 1, 0, 0
    else:
        kh, kw = _pair([], p.kernel_size, p.kernel_h, p.kernel_w, 0)
        sh, sw = _pair([], p.stride, p.stride_h, p.stride_w, 1)
        ph, pw = _pair([], p.pad, p.pad_h, p.pad_w, 0)

    def pooled(size: int, k: int, s: int, pad: int) -> int:
        count = math.ceil((size + 2 * pad - k) / s) + 1
        if pad and (count - 1) * s >= size + pad:
            count -= 1
        return count

    oh, ow = pooled(height, kh, sh, ph), pooled(width, kw, sw, pw)
    out = np.empty((*x.shape[:2], oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * sh - ph, j * sw - pw
            if p.pool == caffe_pb2.PoolingParameter.MAX:
                h1, w1 = min(h0 + kh, height), min(w0 + kw, width)
                window = x[:, :, max(h0, 0):h1, max(w0, 0):w1]
                out[:, :, i, j] = window.max(axis=(2, 3))
            else:
                h1, w1 = min(h0 + kh, height + ph), min(w0 + kw, width + pw)
                area = (h1 - h0) * (w1 - w0)
                window = x[:, :, max(h0, 0):min(h1, height), max(w0, 0):min(w1, width)]
                out[:, :, i, j] = window.sum(axis=(2, 3)) / area
    return out


def lrn(x: np.ndarray, layer: caffe_pb2.LayerParameter) -> np.ndarray:
    p = layer.lrn_param
    half = (p.local_size - 1) // 2
    squares = np.pad(x * x, ((0, 0), (half, p.local_size - 1 - half), (0, 0), (0, 0)))
    window = sliding_window_view(squares, p.local_size, axis=1).sum(axis=-1)
    return x / (p.k + p.alpha / p.local_size * window) ** p.beta


def batch_norm(x: np.ndarray, layer: caffe_pb2.LayerParameter, params) -> np.ndarray:
    factor = params[2].reshape(-1)[0]
    factor = 0.0 if factor == 0 else 1.0 / factor
    mean, var = params[0] * factor, params[1] * factor
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + layer.batch_norm_param.eps)


def scale(x: np.ndarray, layer: caffe_pb2.LayerParameter, params) -> np.ndarray:
    shape = (1, -1) + (1,) * (x.ndim - 2)
    out = x * params[0].reshape(shape)
    if layer.scale_param.bias_term:
        out += params[1].reshape(shape)
    return out


def softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def numpy_forward(
    net: caffe_pb2.NetParameter, inputs: dict[str, np.ndarray], params: dict[str, list]
) -> dict[str, np.ndarray]:
    """The final value of every blob after a TEST-phase forward pass, in float64."""
    blobs = {name: np.asarray(value, np.float64) for name, value in inputs.items()}
    for layer in net.layer:
        if layer.type == "Input":
            continue
        bottoms = [blobs[name] for name in layer.bottom]
        weights = [np.asarray(w, np.float64) for w in params.get(layer.name, [])]
        x = bottoms[0]
        if layer.type == "Convolution":
            y = convolution(x, layer, weights)
        elif layer.type == "Pooling":
            y = pooling(x, layer)
        elif layer.type == "ReLU":
            y = np.maximum(x, 0) + layer.relu_param.negative_slope * np.minimum(x, 0)
        elif layer.type == "Dropout":
            y = x
        elif layer.type == "LRN":
            y = lrn(x, layer)
        elif layer.type == "BatchNorm":
            y = batch_norm(x, layer, weights)
        elif layer.type == "Scale":
            y = scale(x, layer, weights)
        elif layer.type == "Eltwise":
            y = sum(bottoms)
        elif layer.type == "InnerProduct":
            y = x.reshape(x.shape[0], -1) @ weights[0].T
            if layer.inner_product_param.bias_term:
                y = y + weights[1]
        elif layer.type == "Softmax":
            y = softmax(x)
        else:
            raise NotImplementedError(f"numpy_forward has no {layer.type} (layer {layer.name})")
        blobs[layer.top[0]] = y
    return blobs
