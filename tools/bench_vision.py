"""Per-layer CPU timings of the vision layers (Convolution, Pooling, LRN) against PyTorch,
in one run, at the shapes of Caffe's LeNet (batch 64) and CIFAR-10 quick (batch 100).

Each row times one layer's forward and its backward (weight + bias gradients, and the
input gradient except for a net's first convolution, as in training) on our engine and on
torch.nn.functional, with the same thread count, and first checks that both give the same
output (the `max err` column: max |ours − torch| / max |torch|).

    python tools/bench_vision.py [--threads 1 2] [--repeats 7] [--only conv]

PyTorch is a benchmark peer only (`pip install torch`), never a dependency.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

# name, batch, channels, height, width, layer text (Caffe), whether the input needs a gradient
LAYERS = [
    (
        "lenet conv1",
        64,
        1,
        28,
        28,
        'type: "Convolution" convolution_param { num_output: 20 kernel_size: 5 }',
        False,
    ),
    (
        "lenet pool1",
        64,
        20,
        24,
        24,
        'type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 }',
        True,
    ),
    (
        "lenet conv2",
        64,
        20,
        12,
        12,
        'type: "Convolution" convolution_param { num_output: 50 kernel_size: 5 }',
        True,
    ),
    (
        "lenet pool2",
        64,
        50,
        8,
        8,
        'type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 }',
        True,
    ),
    (
        "cifar conv1",
        100,
        3,
        32,
        32,
        'type: "Convolution" convolution_param { num_output: 32 pad: 2 kernel_size: 5 }',
        False,
    ),
    (
        "cifar pool1",
        100,
        32,
        32,
        32,
        'type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 }',
        True,
    ),
    (
        "cifar conv2",
        100,
        32,
        16,
        16,
        'type: "Convolution" convolution_param { num_output: 32 pad: 2 kernel_size: 5 }',
        True,
    ),
    (
        "cifar pool2",
        100,
        32,
        16,
        16,
        'type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 2 }',
        True,
    ),
    (
        "cifar conv3",
        100,
        32,
        8,
        8,
        'type: "Convolution" convolution_param { num_output: 64 pad: 2 kernel_size: 5 }',
        True,
    ),
    (
        "cifar pool3",
        100,
        64,
        8,
        8,
        'type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 2 }',
        True,
    ),
    (
        "alexnet norm1",
        32,
        96,
        27,
        27,
        'type: "LRN" lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 }',
        True,
    ),
]


def build_ours(shape, layer_text, input_grad, seed=1):
    from google.protobuf import text_format

    from caffeonspark import engine
    from caffeonspark.proto import caffe_pb2

    net = caffe_pb2.NetParameter(name="bench", force_backward=input_grad)
    feeder = net.layer.add(name="input", type="Input", top=["x"])
    feeder.input_param.shape.add().dim.extend(shape)
    layer = net.layer.add()
    text_format.Parse(layer_text, layer)
    layer.name, layer.bottom[:], layer.top[:] = "l", ["x"], ["y"]
    # A tiny loss behind the timed layer so its backward is not pruned; only layer 1 is timed.
    sink = net.layer.add(name="sink", type="Pooling", bottom=["y"], top=["s"], loss_weight=[1])
    sink.pooling_param.pool = caffe_pb2.PoolingParameter.AVE
    sink.pooling_param.global_pooling = True
    if layer.type == "Convolution":
        layer.convolution_param.weight_filler.type = "gaussian"
        layer.convolution_param.weight_filler.std = 0.05
        layer.convolution_param.bias_filler.type = "gaussian"
        layer.convolution_param.bias_filler.std = 0.05
    engine.set_random_seed(seed)
    built = engine.Net(net, phase=engine.TRAIN)
    built.blobs["x"].data[...] = np.random.default_rng(seed).normal(size=shape)
    return built


def torch_call(layer_text):
    import torch.nn.functional as F
    from google.protobuf import text_format

    from caffeonspark.proto import caffe_pb2

    layer = text_format.Parse(layer_text, caffe_pb2.LayerParameter())
    if layer.type == "Convolution":
        p = layer.convolution_param
        pad = p.pad[0] if p.pad else 0
        return lambda x, w, b: F.conv2d(x, w, b, padding=pad)
    if layer.type == "LRN":
        p = layer.lrn_param
        return lambda x, w, b: F.local_response_norm(x, p.local_size, p.alpha, p.beta, p.k)
    p = layer.pooling_param
    k, s = p.kernel_size, p.stride
    if p.pool == caffe_pb2.PoolingParameter.MAX:
        return lambda x, w, b: F.max_pool2d(x, k, s, ceil_mode=True)
    return lambda x, w, b: F.avg_pool2d(x, k, s, ceil_mode=True)


def timed(fn, repeats, inner):
    fn()  # warm-up: allocations, thread pools
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner)
    return statistics.median(samples) * 1e3


def bench_layer(name, shape, text, input_grad, threads, repeats):
    import torch

    from caffeonspark import engine

    engine.set_num_threads(threads)
    torch.set_num_threads(threads)
    net = build_ours(shape, text, input_grad)
    native = net.native
    native.forward_from_to(1, 1)
    dy = np.random.default_rng(2).normal(size=net.blobs["y"].shape).astype(np.float32)
    params = net.params.get("l", [])

    x = torch.from_numpy(net.blobs["x"].data.copy()).requires_grad_(input_grad)
    w = torch.from_numpy(params[0].data.copy()).requires_grad_() if params else None
    b = torch.from_numpy(params[1].data.copy()).requires_grad_() if params else None
    call = torch_call(text)
    with torch.no_grad():
        want = call(x, w, b).numpy()
    got = net.blobs["y"].data
    err = float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-20))

    def ours_backward():
        net.blobs["y"].diff[...] = dy
        native.backward_from_to(1, 1)

    def torch_forward():
        with torch.no_grad():
            call(x, w, b)

    dy_t = torch.from_numpy(dy)

    def torch_backward():
        for t in (x, w, b):
            if t is not None:
                t.grad = None
        call(x, w, b).backward(dy_t)

    inner = 5
    ours_f = timed(lambda: native.forward_from_to(1, 1), repeats, inner)
    ours_b = timed(ours_backward, repeats, inner)
    torch_f = timed(torch_forward, repeats, inner)
    torch_fb = timed(torch_backward, repeats, inner)  # torch's backward needs its forward
    torch_b = max(torch_fb - torch_f, 0.0)
    return ours_f, ours_b, torch_f, torch_b, err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", default="", help="substring of the layer names to run")
    args = parser.parse_args()
    header = (
        f"{'layer':<14}{'thr':>4}{'ours fwd':>10}{'torch fwd':>10}{'ours bwd':>10}"
        f"{'torch bwd':>10}{'ours f+b':>10}{'torch f+b':>10}{'ratio':>7}{'max err':>9}"
    )
    print("times in ms (median); ratio = ours / torch for forward + backward")
    print(header)
    for threads in args.threads:
        for name, n, c, h, w, text, input_grad in LAYERS:
            if args.only not in name:
                continue
            of, ob, tf, tb, err = bench_layer(
                name, (n, c, h, w), text, input_grad, threads, args.repeats
            )
            print(
                f"{name:<14}{threads:>4}{of:>10.3f}{tf:>10.3f}{ob:>10.3f}{tb:>10.3f}"
                f"{of + ob:>10.3f}{tf + tb:>10.3f}{(of + ob) / (tf + tb):>7.2f}{err:>9.1e}"
            )


if __name__ == "__main__":
    main()
