"""Training throughput: caffeonspark's engine against PyTorch on the CPU, in one run.

Same nets (Caffe's LeNet, batch 64; CIFAR-10 quick, batch 100; with --big also CaffeNet,
batch 64, and ResNet-50, batch 16, from caffeonspark.zoo), same solver (SGD, lr 0.01,
momentum 0.9, weight decay 5e-4), same thread count; data held in memory on both sides so
only forward + backward + update is timed. LeNet and CIFAR-10 quick start from the same
weights; the big nets from each side's own fillers (their speed does not depend on the
values). Prints images/s and the ratio ours / PyTorch. With --big it also times ResNet-50
inference (TEST phase, global BatchNorm statistics; PyTorch eval mode, no_grad) at batch 1
(latency, ms) and batch 16 (images/s). With --repeats R the two are timed alternately R times
and the medians are printed (images/s of each, and the median of the R ratios): on a shared
machine the ratio of back-to-back runs is what stays meaningful.

    python tools/bench_train.py [--threads 1 2] [--iterations 30] [--repeats 1] [--big]

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


def our_solver(net):
    """A Solver for `net`, prototxt text or a NetParameter."""
    from caffeonspark.proto import caffe_pb2
    from caffeonspark.solver import Solver

    param = text_format.Parse(SOLVER, caffe_pb2.SolverParameter())
    if isinstance(net, str):
        text_format.Parse(net, param.net_param)
    else:
        param.net_param.CopyFrom(net)
    return Solver(param)


def torch_caffenet():
    """CaffeNet in PyTorch: grouped convolutions, LRN after pooling (Caffe's LRN and
    PyTorch's LocalResponseNorm share the alpha / size convention), ceil-free 227 input."""
    from torch import nn

    def lrn() -> nn.Module:
        return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)

    return nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True), lrn(),
        nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
        lrn(), nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Flatten(), nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, 4096),
        nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, 1000))


def torch_resnet50():
    """ResNet-50 in Caffe's layout: stride on the first 1x1 of a stage, BatchNorm with affine
    (our BatchNorm + Scale), convolutions without bias after conv1, ceil pooling."""
    import torch
    from torch import nn

    def conv_bn(cin: int, cout: int, kernel: int, stride: int, relu: bool,
                bias: bool = False) -> list:
        layers = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2,
                            bias=bias), nn.BatchNorm2d(cout)]
        return layers + [nn.ReLU()] if relu else layers

    class Bottleneck(nn.Module):
        def __init__(self, cin: int, width: int, stride: int) -> None:
            super().__init__()
            self.branch = nn.Sequential(*conv_bn(cin, width, 1, stride, True),
                                        *conv_bn(width, width, 3, 1, True),
                                        *conv_bn(width, 4 * width, 1, 1, False))
            self.shortcut = (nn.Sequential(*conv_bn(cin, 4 * width, 1, stride, False))
                             if stride != 1 or cin != 4 * width else nn.Identity())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.branch(x) + self.shortcut(x))

    blocks, cin = [], 64
    for width, count, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for index in range(count):
            blocks.append(Bottleneck(cin, width, stride if index == 0 else 1))
            cin = 4 * width
    return nn.Sequential(*conv_bn(3, 64, 7, 2, True, bias=True),
                         nn.MaxPool2d(3, 2, ceil_mode=True), *blocks, nn.AvgPool2d(7, 1),
                         nn.Flatten(), nn.Linear(2048, 1000))


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


def time_inference(forward, iterations: int) -> float:
    for _ in range(2):
        forward()
    start = time.perf_counter()
    for _ in range(iterations):
        forward()
    return (time.perf_counter() - start) / iterations


def resnet50_inference(batch: int, iterations: int, rng: np.random.Generator) -> tuple:
    """Seconds per forward pass of ResNet-50 (ours, PyTorch) at `batch`, in TEST phase."""
    import torch

    from caffeonspark import engine, zoo

    data = rng.random((batch, 3, 224, 224), dtype=np.float32)
    net = engine.Net(zoo.resnet50(batch=batch), phase=engine.TEST)
    for layer, blobs in net.params.items():  # BatchNorm statistics: mean 0, variance 1
        if layer.startswith("bn"):
            blobs[1].data[...] = 1.0
            blobs[2].data[...] = 1.0
    net.blobs["data"].data[...] = data
    model = torch_resnet50()
    model.append(torch.nn.Softmax(dim=1))
    model.eval()
    x = torch.from_numpy(data)

    def torch_forward() -> None:
        with torch.no_grad():
            model(x)

    try:
        return time_inference(net.forward, iterations), time_inference(torch_forward, iterations)
    finally:
        net.close()


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
    parser.add_argument("--big", action="store_true",
                        help="also CaffeNet b64 and ResNet-50 b16 training, ResNet-50 inference")
    parser.add_argument("--big-iterations", type=int, default=3)
    args = parser.parse_args()
    from caffeonspark import zoo

    rng = np.random.default_rng(0)
    nets = [("lenet", LENET, (64, 1, 28, 28), args.iterations, None),
            ("cifar10_quick", CIFAR_QUICK, (100, 3, 32, 32), args.iterations, None)]
    if args.big:
        nets += [("caffenet", zoo.caffenet(batch=64, train=True), (64, 3, 227, 227),
                  args.big_iterations, torch_caffenet),
                 ("resnet50", zoo.resnet50(batch=16, train=True), (16, 3, 224, 224),
                  args.big_iterations, torch_resnet50)]
    print(f"{'net':<14}{'batch':>6}{'threads':>8}{'ours img/s':>12}{'torch img/s':>13}{'ratio':>8}")
    for name, net, shape, iterations, torch_builder in nets:
        data = rng.random(shape, dtype=np.float32)
        labels = rng.integers(0, 10, shape[0]).astype(np.float32)
        for threads in args.threads:
            engine.set_num_threads(threads)
            torch.set_num_threads(threads)
            solver = our_solver(net)
            model = torch_builder() if torch_builder else torch_model(name, solver)
            runs = []
            for _ in range(args.repeats):
                ours = shape[0] * iterations / time_ours(solver, data, labels, iterations)
                peer = shape[0] * iterations / time_torch(model, data, labels, iterations)
                runs.append((ours, peer, ours / peer))
            ours, peer, ratio = (statistics.median(r[i] for r in runs) for i in range(3))
            print(f"{name:<14}{shape[0]:>6}{threads:>8}{ours:>12.1f}{peer:>13.1f}{ratio:>8.2f}")
            del solver, model
    if args.big:
        print(f"{'inference':<14}{'batch':>6}{'threads':>8}{'ours':>12}{'torch':>13}{'ratio':>8}")
        for batch in (1, 16):
            for threads in args.threads:
                engine.set_num_threads(threads)
                torch.set_num_threads(threads)
                runs = [resnet50_inference(batch, args.big_iterations, rng)
                        for _ in range(args.repeats)]
                ours = statistics.median(r[0] for r in runs)
                peer = statistics.median(r[1] for r in runs)
                if batch == 1:  # latency: ms per image; ratio = theirs / ours (higher = faster)
                    print(f"{'resnet50 ms':<14}{batch:>6}{threads:>8}{ours * 1e3:>12.1f}"
                          f"{peer * 1e3:>13.1f}{peer / ours:>8.2f}")
                else:
                    print(f"{'resnet50 img/s':<14}{batch:>6}{threads:>8}{batch / ours:>12.1f}"
                          f"{batch / peer:>13.1f}{peer / ours:>8.2f}")


if __name__ == "__main__":
    main()
