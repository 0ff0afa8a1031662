"""Fixtures of tests/viz: a small LeNet (examples/mnist, generated digits, 20 iterations,
display 5, test_interval 10) trained once through `caffeonspark train -tensorboard`, with
its log captured as the CLI writes it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pytest
from lenet_files_viz import write_small_lenet

from caffeonspark import cli


@dataclass(frozen=True)
class LenetRun:
    root: Path
    solver: Path
    net: Path
    log: Path
    events: Path


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
