"""Training curves read back from a training log or from TensorBoard event files.

    curves = read_curves("train.log")         # a log of `caffeonspark train` (any prefix)
    curves = read_curves("runs/lenet")        # an event folder or file (-tensorboard DIR)
    curves.series["train/loss"]               # [Point(iter, seconds, value), ...]

Series are named as the TensorBoard tags are (tensorboard.py): `train/loss` (smoothed, as
displayed), `test/<output>` for test net #0 and `test<i>/<output>` for test net #i.
Seconds: in a log, the display lines' "(.. iter/s, Ts/N iters)" summed (wall time between
displays, tests included; the final line, which has none, at the last display's pace),
tests placed by iteration between them; in event files, each
value's wall time less the first one's.
Tests: tests/viz/test_plot.py.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Point", "Curves", "read_curves", "read_log", "read_events"]

_NUM = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))"
_DISPLAY = re.compile(
    rf"Iteration (\d+) \({_NUM} iter/s, {_NUM}s/\d+ iters\), loss = {_NUM}"
)
_FINAL = re.compile(rf"Iteration (\d+), loss = {_NUM}")
_TESTING = re.compile(r"Iteration (\d+), Testing net \(#(\d+)\)")
_TEST_OUTPUT = re.compile(rf"Test net output #\d+: (\S+) = {_NUM}")


@dataclass(frozen=True)
class Point:
    iteration: int
    seconds: float
    value: float


@dataclass
class Curves:
    series: dict[str, list[Point]] = field(default_factory=dict)

    def add(self, name: str, point: Point) -> None:
        self.series.setdefault(name, []).append(point)


def test_prefix(test_net: int) -> str:
    return "test/" if test_net == 0 else f"test{test_net}/"


def read_curves(path: str) -> Curves:
    """A log file, or an event folder / events.out.tfevents.* file."""
    if os.path.isdir(path) or os.path.basename(path).startswith("events.out.tfevents"):
        return read_events(path)
    return read_log(path)


def read_log(path: str) -> Curves:
    """The display and test lines of a training log (solver.py's format)."""
    train: list[tuple[int, float]] = []  # (iteration, loss), seconds filled below
    elapsed: list[float] = []
    tests: list[tuple[str, int, float]] = []
    seconds, rate, last_iter = 0.0, 0.0, 0
    testing: tuple[int, int] | None = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if match := _DISPLAY.search(line):
                seconds += float(match.group(3))
                rate, last_iter = float(match.group(2)), int(match.group(1))
                train.append((last_iter, float(match.group(4))))
                elapsed.append(seconds)
                testing = None
            elif match := _FINAL.search(line):  # no timing of its own: the last pace
                iteration = int(match.group(1))
                if rate > 0:
                    seconds += (iteration - last_iter) / rate
                train.append((iteration, float(match.group(2))))
                elapsed.append(seconds)
                testing = None
            elif match := _TESTING.search(line):
                testing = (int(match.group(1)), int(match.group(2)))
            elif testing is not None and (match := _TEST_OUTPUT.search(line)):
                name = test_prefix(testing[1]) + match.group(1)
                tests.append((name, testing[0], float(match.group(2))))
    curves = Curves()
    iters = np.array([i for i, _ in train], dtype=float)
    times = np.array(elapsed)
    for (iteration, loss), at in zip(train, elapsed, strict=True):
        curves.add("train/loss", Point(iteration, at, loss))
    for name, iteration, value in tests:
        at = float(np.interp(iteration, iters, times)) if len(iters) else 0.0
        curves.add(name, Point(iteration, at, value))
    return curves


def read_events(path: str) -> Curves:
    """Every scalar of an event folder or file, read with TensorBoard's EventAccumulator."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(path, size_guidance={"scalars": 0})
    accumulator.Reload()
    events = {tag: accumulator.Scalars(tag) for tag in accumulator.Tags()["scalars"]}
    start = min((e.wall_time for series in events.values() for e in series), default=0.0)
    curves = Curves()
    for tag, series in events.items():
        for event in sorted(series, key=lambda e: e.step):
            curves.add(tag, Point(int(event.step), event.wall_time - start, float(event.value)))
    return curves
