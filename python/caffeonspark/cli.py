"""The `caffeonspark` command: Caffe's tool verbs without Spark.

    caffeonspark train -solver S [-weights W | -snapshot S.solverstate] [-threads N] [-resize]
                       [-world_size N [-comm_timeout SECONDS] [-check_params] [-encrypt_ring]]
    caffeonspark test  -model NET -weights W [-iterations 50] [-resize]
    caffeonspark time  -model NET [-iterations 50] [-phase TRAIN]
    caffeonspark prepare-mnist OUT_DIR [--idx DIR]
    caffeonspark convert-imageset | convert-cifar10 | compute-image-mean | lmdb-to-parquet |
                 parquet-to-lmdb | lmdb-to-seq | seq-to-lmdb ...   (python/caffeonspark/cli_data.py)
    caffeonspark plot | draw ...  (train -tensorboard DIR too: python/caffeonspark/cli_viz.py)

With -world_size N > 1, train starts N engine processes on this machine that average their
gradients over a TCP ring (python/caffeonspark/distributed/launcher.py): each reads its own
shard of the training data, rank 0 displays, tests and snapshots; -threads is per rank
(default: cores / N); -encrypt_ring seals every frame between the ranks with AES-256-GCM
(needs the system's libcrypto.so.3; see docs/SPARK.md "Security on the wire"). The command exits non-zero with the first rank's error, 143 when
it is sent SIGTERM (its ranks stopped, its job folder removed).
Verbs come first, as in `caffe train`; flags take one or two dashes (`-solver` or
`--solver`), as Caffe's gflags do. A command line that starts with one of CaffeOnSpark's
own flags instead of a verb (`caffeonspark -train -conf S -model file:/tmp/m -clusterSize 1`,
every flag of the original, spark/config.py FLAGS) runs the Spark driver
(caffeonspark/spark/driver.py) on an embedded local[clusterSize] Spark.
On a terminal, train shows a bar over iterations and test one over batches; in logs and
pipes no bar at all (cli_progress.py). Errors are one line (`caffeonspark: error: ...`,
--debug for the traceback, cli_report.py);
`caffeonspark -help` and `--version`: cli_help.py, cli_version.py.
Tests: tests/test_cli.py, tests/cli/, tests/spark/test_spark.py.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Sequence

import numpy as np

from caffeonspark.cli_data import add_data_verbs
from caffeonspark.cli_help import overview_help
from caffeonspark.cli_report import ReportingParser, UsageError, run_reported
from caffeonspark.cli_version import version_text
from caffeonspark.cli_viz import add_viz_verbs, tensorboard_for
from caffeonspark.data.feed_options import FeedOptions

log = logging.getLogger("caffeonspark")
_DATA_VERBS: dict = {}



def is_spark_mode(args: Sequence[str]) -> bool:
    """True when the command line starts with a CaffeOnSpark flag (-train, -conf, ...)."""
    from caffeonspark.spark.config import FLAGS

    if not args or not args[0].startswith("-"):
        return False
    name = args[0].lstrip("-").split("=", 1)[0]
    return name in FLAGS


def _flag(parser: argparse.ArgumentParser, name: str, **kwargs) -> None:
    parser.add_argument(f"-{name}", f"--{name}", dest=name.replace("-", "_"), **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = ReportingParser(
        prog="caffeonspark", description="Caffe nets on a native engine, locally or on Spark."
    )
    verbs = parser.add_subparsers(dest="verb", required=True)

    train = verbs.add_parser("train", help="train with a solver prototxt")
    _flag(train, "solver", required=True, help="solver prototxt")
    _flag(train, "weights", help="caffemodel to start from (fine-tuning)")
    _flag(train, "snapshot", help="solverstate to resume from")
    _flag(train, "threads", type=int, help="engine threads (default: all cores)")
    _flag(
        train,
        "resize",
        action="store_true",
        help="resize source images to the MemoryData layers' size (CaffeOnSpark's -resize)",
    )
    _flag(train, "world_size", type=int, default=1,
          help="engine processes on this machine, data-parallel (default 1)")
    _flag(train, "comm_timeout", type=float, default=60.0,
          help="seconds a silent or unreachable rank is waited for (default 60)")
    _flag(train, "check_params", action="store_true",
          help="debug: compare a checksum of the parameters across ranks every iteration")
    _flag(train, "encrypt_ring", action="store_true",
          help="authenticate and encrypt the ranks' frames (AES-256-GCM; needs libcrypto.so.3)")
    _flag(train, "tensorboard", help="write TensorBoard event files here (rank 0; viz extra)")

    test = verbs.add_parser("test", help="score a model: average each output over iterations")
    _flag(test, "model", required=True, help="net prototxt")
    _flag(test, "weights", required=True, help="caffemodel")
    _flag(test, "iterations", type=int, default=50, help="batches to run (50)")
    _flag(test, "threads", type=int)
    _flag(test, "resize", action="store_true", help="as train -resize")

    timing = verbs.add_parser("time", help="per-layer forward/backward milliseconds")
    _flag(timing, "model", required=True, help="net prototxt")
    _flag(timing, "iterations", type=int, default=50, help="timed iterations (50)")
    _flag(timing, "phase", default="TRAIN", choices=["TRAIN", "TEST"])
    _flag(timing, "threads", type=int)

    mnist = verbs.add_parser("prepare-mnist", help="MNIST (or a generated look-alike) as LMDBs")
    mnist.add_argument("out_dir", help="folder for mnist_train_lmdb and mnist_test_lmdb")
    _flag(mnist, "idx", help="folder with real MNIST IDX files (default: generate digits)")
    _flag(mnist, "train-count", type=int, default=60000)
    _flag(mnist, "test-count", type=int, default=10000)
    _DATA_VERBS.update(add_data_verbs(verbs))
    _DATA_VERBS.update(add_viz_verbs(verbs))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: errors reported on one line, --debug for tracebacks
    (cli_report.py); -h/-help/--help and --version answered here."""
    return run_reported("caffeonspark", _run, argv)


def _run(args_list: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args_list[:1] in (["-h"], ["-help"], ["--help"]):
        print(overview_help(build_parser()))
        return 0
    if args_list[:1] in (["--version"], ["-version"]):
        print(version_text())
        return 0
    if args_list[:1] and args_list[0].startswith("-"):  # Config names a flag it does not know
        from caffeonspark.spark.driver import command as spark_command

        return spark_command(args_list)
    args = build_parser().parse_args(args_list)
    if getattr(args, "threads", None) and getattr(args, "world_size", 1) <= 1:
        from caffeonspark import engine

        engine.set_num_threads(args.threads)
    handler = {"train": train, "test": test, "time": time_layers, "prepare-mnist": prepare_mnist}
    handler.update(_DATA_VERBS)
    return handler[args.verb](args)


def _feed(args: argparse.Namespace) -> FeedOptions:
    """The feed options of the verb's nets: -resize."""
    return FeedOptions(resize=bool(getattr(args, "resize", False)))


def train(args: argparse.Namespace) -> int:
    from caffeonspark.cli_progress import training_bar
    from caffeonspark.solver import Solver

    if args.weights and args.snapshot:
        raise UsageError("train: give -weights or -snapshot, not both")
    if args.world_size > 1:
        from caffeonspark.distributed.launcher import LaunchTerminated, launch

        try:
            result = launch(args.solver, args.world_size, weights=args.weights,
                            snapshot=args.snapshot, threads=args.threads,
                            comm_timeout=args.comm_timeout, check_params=args.check_params,
                            resize=args.resize, encrypt=args.encrypt_ring,
                            tensorboard=args.tensorboard)
        except KeyboardInterrupt:
            log.error("interrupted: the ranks were terminated")
            return 130
        except LaunchTerminated as err:
            log.error("%s", err)
            return 128 + signal.SIGTERM  # 143, as a shell reports a process SIGTERM ended
        return result.returncode
    solver = Solver(args.solver, feed=_feed(args))
    if args.weights:
        for path in args.weights.split(","):
            solver.net.copy_from(path)
    with tensorboard_for(solver, args.tensorboard), training_bar(solver):
        solver.solve(args.snapshot)
    return 0


def test(args: argparse.Namespace) -> int:
    from caffeonspark import engine
    from caffeonspark.cli_progress import batch_bar

    net = engine.Net(args.model, weights=args.weights, phase=engine.TEST, feed=_feed(args))
    totals: dict[str, np.ndarray] = {}
    with batch_bar(args.iterations) as bar:
        for i in range(args.iterations):
            outputs = net.forward()
            for name, value in outputs.items():
                totals[name] = totals.get(name, 0) + value.astype(np.float64).ravel()
            log.info(
                "Batch %d, %s",
                i,
                ", ".join(f"{k} = {float(v.ravel()[0]):.6g}" for k, v in outputs.items()),
            )
            bar.update()
    for name, total in totals.items():
        mean = total / args.iterations
        for j, value in enumerate(mean):
            suffix = f"[{j}]" if mean.size > 1 else ""
            log.info("%s%s = %.6g", name, suffix, value)
    return 0


def time_layers(args: argparse.Namespace) -> int:
    from caffeonspark import engine

    net = engine.Net(args.model, phase=args.phase)
    native = net.native
    layers = net.layer_names
    types = net.layer_types
    forward_ms = np.zeros(len(layers))
    backward_ms = np.zeros(len(layers))
    native.forward()  # warm-up, as `caffe time` does
    native.backward()
    start_all = time.perf_counter()
    for _ in range(args.iterations):
        for i in range(len(layers)):
            t0 = time.perf_counter()
            native.forward_from_to(i, i)
            forward_ms[i] += (time.perf_counter() - t0) * 1e3
        for i in reversed(range(len(layers))):
            t0 = time.perf_counter()
            native.backward_from_to(i, i)
            backward_ms[i] += (time.perf_counter() - t0) * 1e3
    total_ms = (time.perf_counter() - start_all) * 1e3
    n = args.iterations
    log.info("Average time per layer (%d iterations):", n)
    for i, name in enumerate(layers):
        log.info(
            "%16s %-16s forward: %9.4f ms  backward: %9.4f ms",
            name,
            types[i],
            forward_ms[i] / n,
            backward_ms[i] / n,
        )
    log.info("Average Forward pass: %.4f ms.", forward_ms.sum() / n)
    log.info("Average Backward pass: %.4f ms.", backward_ms.sum() / n)
    log.info("Average Forward-Backward: %.4f ms.", total_ms / n)
    return 0


def prepare_mnist(args: argparse.Namespace) -> int:
    from caffeonspark.data.convert_mnist import prepare_mnist_lmdb

    prepare_mnist_lmdb(
        args.out_dir, n_train=args.train_count, n_test=args.test_count, idx_dir=args.idx
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
