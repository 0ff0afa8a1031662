"""What the Spark examples share: generated digits, the example LeNet written next to them,
and saving a result without losing what was there.

- `ensure_digits(data_dir, n_train, n_test)`: data_dir/mnist_train_lmdb and mnist_test_lmdb,
  generated (caffeonspark.data.convert_mnist) unless both already exist; existing databases
  are used as they are, whatever their size, and never rebuilt.
- `write_lenet(work_dir, train_lmdb, test_lmdb, **solver_fields)`: copies of
  lenet_memory_solver.prototxt and lenet_memory_train_test.prototxt (this folder) in
  work_dir, the data layers reading the given LMDBs, the solver's fields replaced
  (max_iter=..., display=...); returns the solver's path.
- `example_parser(...)`: the command-line options the examples share.
- `save_replacing(target, write, overwrite)`: `write(tmp)` writes a fresh sibling path, which
  is then renamed onto `target`; an existing target is refused unless `overwrite`, and is
  only removed once the new one is in place.
- `run_main(main, args, name)`: an example's command line: main(spark, args) on the running
  Spark (spark-submit) or an embedded local[--cluster-size], errors printed as one line.

Tests: tests/examples/.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from caffeonspark import model_io
from caffeonspark.data.convert_mnist import TEST_DB, TRAIN_DB, prepare_mnist_lmdb
from caffeonspark.errors import CaffeOnSparkError
from caffeonspark.proto import caffe_pb2

HERE = Path(__file__).resolve().parent
SOLVER = HERE / "lenet_memory_solver.prototxt"
NET = HERE / "lenet_memory_train_test.prototxt"


def example_parser(description: str, work: str, work_help: str, iterations: int,
                   iterations_help: str, overwrite_help: str) -> argparse.ArgumentParser:
    """The options every example takes: where the digits and its files go, how many digits
    to generate, LeNet's max_iter, the cluster size and --overwrite."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", default="data/examples/digits",
                        help="folder of mnist_train_lmdb / mnist_test_lmdb (made if absent)")
    parser.add_argument("--work", default=work, help=work_help)
    parser.add_argument("--train-count", type=int, default=30000,
                        help="digits to generate for training (when --data has none)")
    parser.add_argument("--test-count", type=int, default=2000,
                        help="held-out digits to generate (when --data has none)")
    parser.add_argument("--iterations", type=int, default=iterations, help=iterations_help)
    parser.add_argument("--cluster-size", type=int, default=1, help="CaffeOnSpark ranks")
    parser.add_argument("--overwrite", action="store_true", help=overwrite_help)
    return parser


def ensure_digits(data_dir: str | os.PathLike[str], n_train: int, n_test: int) -> tuple[Path, Path]:
    """(train LMDB, test LMDB) in data_dir, generating MNIST-like digits if either is absent."""
    data = Path(data_dir).resolve()
    train, test = data / TRAIN_DB, data / TEST_DB
    if not (train / "data.mdb").is_file() or not (test / "data.mdb").is_file():
        made = prepare_mnist_lmdb(data, n_train=n_train, n_test=n_test)
        train, test = made.train, made.test
    return train, test


def write_lenet(
    work_dir: str | os.PathLike[str], train_lmdb: Path, test_lmdb: Path, **solver_fields: object
) -> Path:
    """The example solver and net in work_dir, reading train_lmdb / test_lmdb."""
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    net = model_io.read_net_prototxt(NET)
    sources = {caffe_pb2.TRAIN: train_lmdb, caffe_pb2.TEST: test_lmdb}
    for layer in net.layer:
        if layer.type == "MemoryData":
            (rule,) = layer.include
            layer.memory_data_param.source = f"file:{sources[rule.phase]}"
    net_path = work / NET.name
    model_io.write_prototxt(net_path, net)
    solver = model_io.read_solver_prototxt(SOLVER)
    solver.net = str(net_path)  # absolute: a net of the same name in the cwd must not win
    for name, value in solver_fields.items():
        setattr(solver, name, value)
    solver_path = work / SOLVER.name
    model_io.write_prototxt(solver_path, solver)
    return solver_path


def save_replacing(target: str | os.PathLike[str], write: Callable[[str], None],
                   overwrite: bool = False) -> Path:
    """Run write(fresh sibling path), then rename it to target (see the module docstring)."""
    target = Path(target).resolve()
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
    token = secrets.token_hex(4)
    fresh = target.with_name(f".{target.name}.new-{token}")
    old = target.with_name(f".{target.name}.old-{token}")
    try:
        write(str(fresh))
        if target.exists():
            target.rename(old)
        try:
            fresh.rename(target)
        except OSError:
            if old.exists():
                old.rename(target)  # put the previous result back
            raise
    finally:
        _remove(fresh)
    _remove(old)
    return target


def check_writable(target: str | os.PathLike[str], overwrite: bool) -> None:
    """Fail before any work when target exists and may not be replaced."""
    if Path(target).exists() and not overwrite:
        raise FileExistsError(f"{Path(target).resolve()} exists; pass --overwrite to replace it")


def run_main(main: Callable[[Any, argparse.Namespace], Any], args: argparse.Namespace,
             name: str) -> int:
    """Exit status of main(spark, args) run on the session of job_session(--cluster-size)."""
    from caffeonspark.spark.driver import job_session

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        with job_session(args.cluster_size) as spark:
            main(spark, args)
    except (FileExistsError, CaffeOnSparkError) as err:
        print(f"{name}: {err}", file=sys.stderr)
        return 1
    return 0


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
