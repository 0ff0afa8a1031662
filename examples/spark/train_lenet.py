"""CaffeOnSpark's first command in this package's form: train LeNet on Spark, save the model,
then write each held-out digit's ip2 scores and label as JSON.

    python examples/spark/train_lenet.py                         # embedded local[clusterSize]
    python examples/spark/train_lenet.py --iterations 1000 --cluster-size 2

It generates MNIST-like digits in --data unless its two LMDBs exist, writes the example LeNet
(lenet_memory_* beside this file) to --work reading them, prints the command line and runs it:

    caffeonspark -train -features ip2 -label label -conf WORK/lenet_memory_solver.prototxt \
        -clusterSize 1 -devices 1 -connection ethernet \
        -model file:WORK/mnist_lenet.model -output file:WORK/lenet_features_result

(the original asked for `-features accuracy,loss`: those are one value per batch, which this
package reports with -test rather than per row). From the repository root the command also
runs on the checked-in net as it is, after `caffeonspark prepare-mnist data/mnist`.
The output is written to a fresh path and renamed (an existing one is kept unless
--overwrite). `main(spark, args)` runs it on a given session and returns the paths.
Tests: tests/examples/test_train_lenet.py.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from example_support import (
    check_writable,
    ensure_digits,
    example_parser,
    run_main,
    save_replacing,
    write_lenet,
)

from caffeonspark import cli as caffeonspark_cli


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = example_parser(
        __doc__.split("\n\n")[0], "data/examples/lenet",
        "folder for the nets, the model and the features", 500, "LeNet's max_iter",
        "replace an existing output")
    parser.add_argument("--output", default=None,
                        help="features (JSON) path (default work/lenet_features_result)")
    args = parser.parse_args(argv)
    if args.output is None:
        args.output = str(Path(args.work) / "lenet_features_result")
    return args


def main(spark: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Prepare, print and run the command line (on the active session when there is one)."""
    del spark  # the command line below runs on the active session (run_main started it)
    check_writable(args.output, args.overwrite)
    train_lmdb, test_lmdb = ensure_digits(args.data, args.train_count, args.test_count)
    work = Path(args.work).resolve()
    solver = write_lenet(work, train_lmdb, test_lmdb, max_iter=args.iterations,
                         display=max(args.iterations // 5, 1))
    model = work / "mnist_lenet.model"

    def train_and_extract(output: str) -> None:
        flags = [
            "-train", "-features", "ip2", "-label", "label", "-conf", str(solver),
            "-clusterSize", str(args.cluster_size), "-devices", "1", "-connection", "ethernet",
            "-model", f"file:{model}", "-output", f"file:{output}",
        ]
        print("caffeonspark " + shlex.join(flags), flush=True)
        status = caffeonspark_cli.main(flags)
        if status != 0:
            raise SystemExit(status)

    output = save_replacing(args.output, train_and_extract, args.overwrite)
    print(f"model: {model}\nfeatures: {output}")
    return {"model": model, "output": output, "solver": solver}


def cli(argv: Sequence[str] | None = None) -> int:
    return run_main(main, parse_args(argv), Path(__file__).name)


if __name__ == "__main__":
    raise SystemExit(cli())
