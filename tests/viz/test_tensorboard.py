"""TensorBoard event files from `caffeonspark train -tensorboard` and from
TensorBoardLogger on a Python Solver, read back with TensorBoard's own reader."""

from __future__ import annotations

import re

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from caffeonspark.solver import Solver
from caffeonspark.viz.layer_timing import timed_layers
from caffeonspark.viz.tensorboard import TensorBoardLogger, images_per_iteration

DISPLAYS = [0, 5, 10, 15]  # max_iter 20, display 5 (iteration 20 is Solve's final line)
TESTS = [0, 10, 20]  # test_interval 10, test_initialization, and the final test
LAYERS = ["conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "loss"]


def _scalars(path) -> dict[str, list[tuple[int, float]]]:
    accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()["scalars"]}


def _logged(log: str, pattern: str) -> list[tuple[int, float]]:
    return [(int(m.group(1)), float(m.group(2))) for m in re.finditer(pattern, log)]


def test_cli_events_hold_what_the_log_shows(lenet_run):
    scalars = _scalars(lenet_run.events)
    log = lenet_run.log.read_text()
    loss = _logged(log, r"Iteration (\d+) \(.*\), loss = (\S+)")
    assert [i for i, _ in loss] == DISPLAYS
    final = _logged(log, r"Iteration (\d+), loss = (\S+)")
    assert [i for i, _ in final] == [20]
    written = scalars["train/loss"]
    assert [s for s, _ in written] == DISPLAYS + [20]
    # the log prints 6 significant digits; the events hold float32
    np.testing.assert_allclose([v for _, v in written], [v for _, v in loss + final], rtol=1e-5)

    lr = _logged(log, r"Iteration (\d+), lr = (\S+)")
    assert [s for s, _ in scalars["lr"]] == [s for s, _ in lr] == DISPLAYS
    np.testing.assert_allclose([v for _, v in scalars["lr"]], [v for _, v in lr], rtol=1e-5)
    assert lr[0][1] == pytest.approx(0.01)

    for name in ("accuracy", "loss"):
        tests = [(int(m.group(1)), float(m.group(2))) for m in re.finditer(
            rf"Iteration (\d+), Testing net \(#0\)\n(?:.*\n)*?.*Test net output #\d+: {name} = "
            rf"(\S+)", log)]
        assert [i for i, _ in tests] == TESTS
        np.testing.assert_allclose([v for _, v in scalars[f"test/{name}"]],
                                   [v for _, v in tests], rtol=1e-5)
        assert [s for s, _ in scalars[f"test/{name}"]] == TESTS

    raw = scalars["train/output/loss"]  # Caffe's "Train net output #0: loss" (unsmoothed)
    outputs = _logged(log, r"Iteration (\d+) \(.*\n.*Train net output #0: loss = (\S+)")
    np.testing.assert_allclose([v for _, v in raw[:4]], [v for _, v in outputs], rtol=1e-5)
    np.testing.assert_allclose([v for _, v in scalars["train/loss_raw"][:4]],
                               [v for _, v in outputs], rtol=1e-5)

    speed = _logged(log, r"Iteration (\d+) \((\S+) iter/s")
    np.testing.assert_allclose([v for _, v in scalars["iters_per_second"]],
                               [v for _, v in speed], rtol=1e-5)
    np.testing.assert_allclose([v for _, v in scalars["images_per_second"]],
                               [64 * v for _, v in speed], rtol=1e-5)
    for direction in ("forward", "backward"):
        for layer in LAYERS:
            series = scalars[f"time/{direction}/{layer}"]
            assert [s for s, _ in series] == DISPLAYS
            assert all(0 <= v < 5 for _, v in series)
    assert sum(v for _, v in scalars["time/forward/conv2"]) > 0
    assert not any(tag.startswith(("time/forward/mnist", "allreduce/")) for tag in scalars)


def test_python_logger_writes_the_values_the_solver_reported(tmp_path):
    from lenet_files_viz import write_small_lenet

    solver_path, _ = write_small_lenet(tmp_path, max_iter=10)
    solver = Solver(str(solver_path))
    assert images_per_iteration(solver) == 64
    names = solver.net.layer_names
    assert names[0] == "mnist" and [names[i] for i in timed_layers(solver.net)] == LAYERS
    shown: list[tuple[int, float, float]] = []
    tested: list[tuple[int, float]] = []
    solver.add_display_callback(lambda info: shown.append(
        (info.iter, info.smoothed_loss, info.rate)))
    solver.add_test_callback(lambda r: tested.append(
        (r.iter, dict((o.name, o.values[0]) for o in r.outputs)["accuracy"])))
    with TensorBoardLogger(solver, str(tmp_path / "tb"), layer_times=False) as logger:
        solver.step(10)
        logger.flush()
    scalars = _scalars(tmp_path / "tb")
    assert [i for i, _, _ in shown] == [0, 5]
    assert scalars["train/loss"] == [(i, np.float32(v)) for i, v, _ in shown]
    assert scalars["lr"] == [(i, np.float32(r)) for i, _, r in shown]
    assert scalars["test/accuracy"] == [(i, np.float32(a)) for i, a in tested]
    assert [i for i, _ in tested] == [0]  # step(10) ends before iteration 10's test
    assert not any(tag.startswith("time/") for tag in scalars)
