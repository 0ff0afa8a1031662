"""Layer sizes from hostile prototxts and Datum headers (cpp/core/checked_size.h): a kernel,
stride, pad, dilation or num_output whose sizes overflow or pass the int32 limits is a
ConfigError/ShapeError naming the layer, raised at set-up; a Datum whose channels·height·width
wraps is a FormatError naming the record. Each case runs in a memory-limited child
(hostile_child.py) with more than one OpenMP thread, so an allocation failing inside a
parallel region (std::terminate) would show as a signal. A few valid edge cases confirm the
results are unchanged."""

from __future__ import annotations

import pytest
from hostile_child import run_case

THREADS = {"OMP_NUM_THREADS": "4"}

# Builds the net from a prototxt file (so messages carry file:line), fills the input with a
# ramp and runs forward and backward.
_NET = """
import os, tempfile
import numpy as np
from caffeonspark import engine
text = '''name: "n"
force_backward: true
layer {{ name: "x" type: "Input" top: "x" input_param {{ shape {{ dim: {dims} }} }} }}
{layers}
'''
path = os.path.join(tempfile.mkdtemp(), "net.prototxt")
with open(path, "w") as f:
    f.write(text)
net = engine.Net(path, phase=engine.TRAIN)
x = net.blobs["x"].data
x[...] = np.arange(x.size, dtype=np.float32).reshape(x.shape) % 7
net.forward()
net.backward()
{after}
"""


def net_case(dims: str, layers: str, after: str = ""):
    return run_case(_NET.format(dims=dims, layers=layers, after=after), env=THREADS)


def pool(params: str, pool_type: str = "MAX") -> str:
    return (f'layer {{ name: "pool" type: "Pooling" bottom: "x" top: "y" '
            f"pooling_param {{ pool: {pool_type} {params} }} }}")


def conv(params: str, kind: str = "Convolution", name: str = "conv") -> str:
    return (f'layer {{ name: "{name}" type: "{kind}" bottom: "x" top: "y" '
            f"convolution_param {{ num_output: 1 {params} }} }}")


# --- Pooling ----------------------------------------------------------------------------


@pytest.mark.parametrize("pool_type", ["MAX", "AVE"])
def test_pooling_stride_1e8_on_4x4_pools_one_window(pool_type):
    # A valid Caffe layer (one window per axis): before, the vector path's padded copy asked
    # for 1.7e9 floats inside the parallel loop. Now the wide stride takes the per-window loop.
    after = ("y = net.blobs['y'].data\n"
             "assert y.shape == (2, 3, 2, 2), y.shape\n"
             "w = x[:, :, :2, :2]\n"
             f"want = w.max(axis=(2, 3)) if '{pool_type}' == 'MAX' else w.mean(axis=(2, 3))\n"
             "assert np.allclose(y[:, :, 0, 0], want)")
    outcome = net_case("2 dim: 3 dim: 4 dim: 4", pool("kernel_size: 2 stride: 100000000", pool_type),
                       after)
    assert outcome.error is None, outcome.message


def test_pooling_huge_kernel_does_not_fit():
    net_case("1 dim: 1 dim: 4 dim: 4", pool("kernel_size: 1073741824")).expect_error(
        "ShapeError", r"layer 'pool'.*does not fit")


def test_pooling_huge_pad_and_kernel_is_a_config_error():
    # H + 2·pad overflowed int; in 64-bit the pooled top has ~2^60 elements.
    net_case("1 dim: 1 dim: 4 dim: 4", pool("kernel_size: 1073741825 pad: 1073741824")).expect_error(
        "ConfigError", r"layer 'pool' \(Pooling\) at .*net.prototxt:\d+.*pooled top size")


def test_pooling_window_coordinates_beyond_int():
    # CEIL mode gives a second window starting at 2^31 - 1: beyond int window coordinates.
    net_case("1 dim: 1 dim: 4 dim: 4", pool("kernel_size: 1 stride: 2147483647")).expect_error(
        "ConfigError", r"layer 'pool'.*window")


@pytest.mark.parametrize("params, message", [
    ("kernel_size: 2 stride: 0", "stride must be positive"),
    ("kernel_size: 2 pad: 2", "pad .* must be smaller than the kernel"),
    ("kernel_size: 0", "give kernel_size"),
])
def test_pooling_parameters_checked_as_caffe_does(params, message):
    net_case("1 dim: 1 dim: 4 dim: 4", pool(params)).expect_error("ConfigError", rf"layer 'pool'.*{message}")


@pytest.mark.parametrize("pool_type", ["MAX", "AVE"])
def test_pooling_valid_edges_unchanged(pool_type):
    # pad = kernel - 1 and a stride just past the vector limit, against the per-window NumPy.
    after = f"""
import itertools
def ref(x, k, s, p, kind):
    n, c, h, w = x.shape
    oh = int(np.ceil((h + 2 * p - k) / s)) + 1
    ow = int(np.ceil((w + 2 * p - k) / s)) + 1
    if p and (oh - 1) * s >= h + p: oh -= 1
    if p and (ow - 1) * s >= w + p: ow -= 1
    y = np.zeros((n, c, oh, ow))
    for i, j in itertools.product(range(oh), range(ow)):
        h0, w0 = i * s - p, j * s - p
        h1, w1 = min(h0 + k, h + p), min(w0 + k, w + p)
        win = x[:, :, max(h0, 0):min(h1, h), max(w0, 0):min(w1, w)]
        y[:, :, i, j] = win.max(axis=(2, 3)) if kind == 'MAX' else win.sum(axis=(2, 3)) / ((h1 - h0) * (w1 - w0))
    return y
got = net.blobs['y'].data
want = ref(x.astype(np.float64), 3, 2, 2, '{pool_type}')
assert got.shape == want.shape, (got.shape, want.shape)
assert np.allclose(got, want, rtol=1e-5, atol=1e-5)
"""
    outcome = net_case("2 dim: 3 dim: 9 dim: 40", pool("kernel_size: 3 stride: 2 pad: 2", pool_type), after)
    assert outcome.error is None, outcome.message


# --- Convolution, Deconvolution ------------------------------------------------------------


@pytest.mark.parametrize("dims, params, kind, message", [
    ("2 dim: 1 dim: 4 dim: 4", "kernel_size: 3 pad: 20000", "Convolution", "top count|im2col"),
    ("1 dim: 1 dim: 4 dim: 4", "kernel_size: 3 pad: 1073741824", "Convolution", "padded input"),
    ("1 dim: 1 dim: 4 dim: 4", "kernel_size: 1048576", "Convolution", "weight count"),
    ("1 dim: 1 dim: 4 dim: 4", "kernel_size: 3 dilation: 1073741824", "Convolution",
     "dilated kernel extent"),
    ("1 dim: 1 dim: 4 dim: 4", "kernel_size: 2 stride: 1073741824", "Deconvolution",
     "output extent|top count"),
    # 3-D: the N-D im2col path; the column buffer K · ∏out passes the limit.
    ("1 dim: 1 dim: 4 dim: 4 dim: 4", "kernel_size: 3 pad: 1000", "Convolution",
     "top count|im2col"),
    ("1 dim: 1 dim: 4 dim: 4", "kernel_size: 3 pad: 20000 force_nd_im2col: true", "Convolution",
     "top count|im2col"),
])
def test_convolution_impossible_sizes_are_config_errors(dims, params, kind, message):
    net_case(dims, conv(params, kind)).expect_error("ConfigError", rf"layer 'conv' \({kind}\).*({message})")


@pytest.mark.parametrize("params", ["kernel_size: 3 stride: 0", "kernel_size: 3 dilation: 0"])
def test_convolution_zero_stride_or_dilation(params):
    net_case("1 dim: 1 dim: 4 dim: 4", conv(params)).expect_error("ConfigError", r"layer 'conv'.*must be positive")


def test_convolution_valid_padded_edge_unchanged():
    # pad = kernel - 1 with two images over several threads: each output is a full
    # correlation of the constant kernel, i.e. a window sum.
    after = """
y = net.blobs['y'].data
xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (2, 2), (2, 2)))
want = np.zeros(y.shape)
for i in range(y.shape[2]):
    for j in range(y.shape[3]):
        want[:, 0, i, j] = xp[:, :, i:i + 3, j:j + 3].sum(axis=(1, 2, 3))
assert np.allclose(y, want, rtol=1e-5, atol=1e-4)
"""
    layer = conv('kernel_size: 3 pad: 2 weight_filler { type: "constant" value: 1 }')
    outcome = net_case("2 dim: 2 dim: 6 dim: 7", layer, after)
    assert outcome.error is None, outcome.message


# --- InnerProduct, LRN ------------------------------------------------------------------


def test_inner_product_num_output_int_max():
    layer = ('layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" '
             "inner_product_param { num_output: 2147483647 } }")
    net_case("2 dim: 1000", layer).expect_error("ConfigError", r"layer 'ip' \(InnerProduct\).*weight count")


def test_lrn_huge_local_size_runs():
    # LRN clamps its window to the channels and no buffer grows with local_size: a huge
    # (valid, odd) size runs, each window summing every channel (alpha / size scaling).
    layer = ('layer { name: "lrn" type: "LRN" bottom: "x" top: "y" '
             "lrn_param { local_size: 2147483647 } }")
    after = "assert np.isfinite(net.blobs['y'].data).all()"
    outcome = net_case("2 dim: 3 dim: 4 dim: 4", layer, after)
    assert outcome.error is None, outcome.message


# --- Raw Datums ---------------------------------------------------------------------------


def test_parse_raw_datums_wrapping_channels_height_width():
    # 65536 · 12648641 · 22253377 = 65536 (mod 2^64): before, it matched the 64 KiB payload.
    code = """
from caffeonspark import _engine
from caffeonspark.proto import caffe_pb2
good = caffe_pb2.Datum(channels=1, height=2, width=2, data=bytes(4), label=1).SerializeToString()
bad = caffe_pb2.Datum(channels=65536, height=12648641, width=22253377, data=bytes(65536),
                      label=0).SerializeToString()
_engine.parse_raw_datums([good, bad])
"""
    run_case(code, env=THREADS).expect_error("FormatError", r"record 1 of the batch.*channels")


def test_parse_raw_datums_valid_batch_unchanged():
    code = """
from caffeonspark import _engine
from caffeonspark.proto import caffe_pb2
d = caffe_pb2.Datum(channels=1, height=2, width=2, data=bytes([1, 2, 3, 4]), label=5)
data, labels = _engine.parse_raw_datums([d.SerializeToString()] * 3)
assert data.shape == (3, 1, 2, 2) and list(data[2].ravel()) == [1, 2, 3, 4]
assert list(labels) == [5, 5, 5]
"""
    outcome = run_case(code, env=THREADS)
    assert outcome.error is None, outcome.message
