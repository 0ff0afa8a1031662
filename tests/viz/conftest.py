"""Fixtures of tests/viz: a small LeNet (examples/mnist, generated digits, 20 iterations,
display 5, test_interval 10) trained once through `caffeonspark train -tensorboard`, with
its log captured as the CLI writes it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from caffeonspark import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mnist"


@dataclass(frozen=True)
class LenetRun:
    root: Path
    solver: Path
    net: Path
    log: Path
    events: Path


def write_small_lenet(root: Path, max_iter: int = 20) -> tuple[Path, Path]:
    """(solver, net) of the example LeNet over a small generated set in `root`."""
    assert cli.main(["prepare-mnist", str(root / "data" / "mnist"), "--train-count", "640",
                     "--test-count", "200"]) == 0
    net = (EXAMPLES / "lenet_train_test.prototxt").read_text()
    net = net.replace('"data/mnist/', f'"{root}/data/mnist/').replace("batch_size: 100",
                                                                     "batch_size: 50")
    net_path = root / "lenet_train_test.prototxt"
    net_path.write_text(net)
    solver = (EXAMPLES / "lenet_solver.prototxt").read_text()
    for old, new in [('"examples/mnist/lenet_train_test.prototxt"', f'"{net_path}"'),
                     ("test_iter: 100", "test_iter: 4"), ("test_interval: 500", "test_interval: 10"),
                     (f"max_iter: {10000}", f"max_iter: {max_iter}"), ("snapshot: 5000", "snapshot: 0"),
                     ('"data/mnist/lenet"', f'"{root}/data/mnist/lenet"'),
                     ("display: 100", "display: 5")]:
        assert old in solver
        solver = solver.replace(old, new)
    solver_path = root / "solver.prototxt"
    solver_path.write_text(solver)
    return solver_path, net_path


@pytest.fixture(scope="session")
def lenet_run(tmp_path_factory) -> LenetRun:
    root = tmp_path_factory.mktemp("viz_lenet")
    solver, net = write_small_lenet(root)
    log_path, events = root / "train.log", root / "runs"
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("caffeonspark")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        assert cli.main(["train", "-solver", str(solver), "-threads", "1",
                         "-tensorboard", str(events)]) == 0
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()
    return LenetRun(root, solver, net, log_path, events)
