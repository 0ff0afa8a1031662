"""Training throughput: caffeonspark's engine against PyTorch on the CPU, in one run.

Same nets (Caffe's LeNet, batch 64; CIFAR-10 quick, batch 100), same initial weights, same
solver (SGD, lr 0.01, momentum 0.9, weight decay 5e-4), same thread count; data held in
memory on both sides so only forward + backward + update is timed. Prints images/s and the
ratio ours / PyTorch. With --repeats R the two are timed alternately R times and the medians
are printed (images/s of each, and the median of the R ratios): on a shared machine the
ratio of back-to-back runs is what stays meaningful.

    python tools/bench_train.py [--threads 1 2] [--iterations 30] [--repeats 1]

PyTorch is a benchmark peer only (`pip install torch`), never a dependency.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from google.protobuf import text_format

LENET = """
name: "LeNet"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 64 dim: 1 dim: 28 dim: 28 } shape { dim: 64 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 20 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 50 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
        inner_product_param { num_output: 500 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

CIFAR_QUICK = """
name: "CIFAR10_quick"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 100 dim: 3 dim: 32 dim: 32 } shape { dim: 100 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 32 pad: 2 kernel_size: 5
                            weight_filler { type: "gaussian" std: 0.0001 } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "pool1" top: "pool1" }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 32 pad: 2 kernel_size: 5
                            weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "conv3" type: "Convolution" bottom: "pool2" top: "conv3"
        convolution_param { num_output: 64 pad: 2 kernel_size: 5
                            weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
layer { name: "pool3" type: "Pooling" bottom: "conv3" top: "pool3"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool3" top: "ip1"
        inner_product_param { num_output: 64 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 10 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

SOLVER = """
type: "SGD" base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005 lr_policy: "fixed"
max_iter: 1000000 display: 0 random_seed: 1 solver_mode: CPU snapshot_after_train: false
"""


def our_solver(net_text: str):
    from caffeonspark.proto import caffe_pb2
    from caffeonspark.solver import Solver

    param = text_format.Parse(SOLVER, caffe_pb2.SolverParameter())
    text_format.Parse(net_text, param.net_param)
    return Solver(param)


def torch_model(name: str, ours):
    """The same net in PyTorch, with our initial weights copied in."""
    import torch
    from torch import nn

    if name == "lenet":
        layers = [nn.Conv2d(1, 20, 5), nn.MaxPool2d(2, 2), nn.Conv2d(20, 50, 5),
                  nn.MaxPool2d(2, 2), nn.Flatten(), nn.Linear(800, 500), nn.ReLU(),
                  nn.Linear(500, 10)]
        learned = ["conv1", "conv2", "ip1", "ip2"]
    else:
        layers = [nn.Conv2d(3, 32, 5, padding=2), nn.MaxPool2d(3, 2, ceil_mode=True), nn.ReLU(),
                  nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
                  nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
                  nn.Flatten(), nn.Linear(1024, 64), nn.Linear(64, 10)]  # 32->16->8->4 (ceil)
        learned = ["conv1", "conv2", "conv3", "ip1", "ip2"]
    model = nn.Sequential(*layers)
    modules = [m for m in model if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for module, layer in zip(modules, learned, strict=True):
            weight, bias = ours.net.params[layer]
            module.weight.copy_(torch.from_numpy(weight.data.copy()))
            module.bias.copy_(torch.from_numpy(bias.data.copy()))
    return model


def time_ours(solver, data, labels, iterations: int) -> float:
    solver.net.blobs["data"].data[...] = data
    solver.net.blobs["label"].data[...] = labels
    solver.step(3)  # warm-up
    start = time.perf_counter()
    solver.step(iterations)
    return time.perf_counter() - start


def time_torch(model, data, labels, iterations: int) -> float:
    import torch

    x = torch.from_numpy(data)
    y = torch.from_numpy(labels.astype(np.int64))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=False)
        loss_fn(model(x), y).backward()
        optimizer.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    return time.perf_counter() - start


def main() -> None:
    import torch

    from caffeonspark import engine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'net':<14}{'batch':>6}{'threads':>8}{'ours img/s':>12}{'torch img/s':>13}{'ratio':>8}")
    for name, text, shape in [("lenet", LENET, (64, 1, 28, 28)),
                              ("cifar10_quick", CIFAR_QUICK, (100, 3, 32, 32))]:
        data = rng.random(shape, dtype=np.float32)
        labels = rng.integers(0, 10, shape[0]).astype(np.float32)
        for threads in args.threads:
            engine.set_num_threads(threads)
            torch.set_num_threads(threads)
            solver = our_solver(text)
            model = torch_model(name, solver)
            runs = []
            for _ in range(args.repeats):
                ours = shape[0] * args.iterations / time_ours(solver, data, labels, args.iterations)
                peer = shape[0] * args.iterations / time_torch(model, data, labels, args.iterations)
                runs.append((ours, peer, ours / peer))
            ours, peer, ratio = (statistics.median(r[i] for r in runs) for i in range(3))
            print(f"{name:<14}{shape[0]:>6}{threads:>8}{ours:>12.0f}{peer:>13.0f}{ratio:>8.2f}")


if __name__ == "__main__":
    main()
