"""TensorBoard event files of a training run, written through tensorboardX.

    logger = TensorBoardLogger(solver, "runs/lenet")   # attaches to the solver's callbacks
    solver.solve()
    logger.close()

Scalars, each at the iteration Caffe's log line names (step = solver iteration):
- at display iterations: `train/loss` (smoothed over average_loss iterations, as Caffe
  displays it), `train/loss_raw` (this iteration's loss), `train/output/<name>` (each
  train net output; `<name>/<j>` when it has several values), `lr`, `iters_per_second`,
  `images_per_second` (all ranks together), `time/forward/<layer>` and
  `time/backward/<layer>` (seconds of one pass, measured on the display iteration only:
  layer_timing.py says what is and is not re-run), and with a DataParallel attached
  (`attach_data_parallel`, or run_data_parallel's on_attached): `allreduce/seconds` and
  `allreduce/wait_seconds` (per iteration, averaged since the last display) and
  `allreduce/hidden_fraction` (the part of reducing hidden behind backward, 1 - wait/comm);
- at each test: `test/<name>` for test net #0, `test<i>/<name>` for test net #i.
Only the rank that displays and tests (rank 0) writes; the event file is tensorboardX's
append-only log in `logdir` (written as training goes, so not renamed into place).
Tests: tests/viz/test_tensorboard.py, tests/viz/test_tensorboard_ranks.py.
"""

from __future__ import annotations

import logging
from typing import Any

from caffeonspark.viz.layer_timing import time_layers

__all__ = ["TensorBoardLogger", "images_per_iteration"]

log = logging.getLogger("caffeonspark")


def images_per_iteration(solver: Any) -> int:
    """One rank's images per iteration: the first data layer's batch (its first top's
    leading dimension) times iter_size; 0 when the net has no data layer."""
    net = solver.net
    native = net.native
    names = native.blob_names
    for i in range(len(net.layer_names)):
        if not native.bottom_ids(i) and native.top_ids(i):
            shape = net.blobs[names[native.top_ids(i)[0]]].shape
            return int(shape[0] if shape else 1) * max(1, int(solver.param.iter_size))
    return 0


def _values(prefix: str, output: Any) -> list[tuple[str, float]]:
    values = list(output.values)
    if len(values) == 1:
        return [(f"{prefix}{output.name}", float(values[0]))]
    return [(f"{prefix}{output.name}/{j}", float(v)) for j, v in enumerate(values)]


class TensorBoardLogger:
    """Writes a solver's display and test values to TensorBoard event files in `logdir`.
    `world_size`: ranks training together (images_per_second counts them all);
    `layer_times`: time each layer on display iterations (False: no time/ tags)."""

    def __init__(
        self,
        solver: Any,
        logdir: str,
        *,
        world_size: int = 1,
        layer_times: bool = True,
        flush_secs: int = 10,
    ) -> None:
        from tensorboardX import SummaryWriter

        self.logdir = logdir
        self._solver = solver
        self._world_size = max(1, int(world_size))
        self._layer_times = layer_times
        self._images = images_per_iteration(solver)
        self._sync: Any = None
        self._last_stats: dict[str, float] | None = None
        self._writer = SummaryWriter(logdir=logdir, flush_secs=flush_secs)
        solver.add_display_callback(self.on_display)
        solver.add_test_callback(self.on_test)

    def attach_data_parallel(self, sync: Any) -> None:
        """Read `sync.stats` (DataParallel) at display iterations for the allreduce tags."""
        self._sync = sync
        self._last_stats = dict(sync.stats)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self._writer.add_scalar(tag, float(value), int(step))

    def on_display(self, info: Any) -> None:
        step = int(info.iter)
        self.scalar("train/loss", info.smoothed_loss, step)
        self.scalar("train/loss_raw", info.loss, step)
        for output in info.outputs:
            for tag, value in _values("train/output/", output):
                self.scalar(tag, value, step)
        if info.final:  # Solve's last line: no update, rate or timing belong to it
            return
        self.scalar("lr", info.rate, step)
        self.scalar("iters_per_second", info.iters_per_second, step)
        if self._images:
            images = info.iters_per_second * self._images * self._world_size
            self.scalar("images_per_second", images, step)
        if self._layer_times:
            forward, backward = time_layers(self._solver.net)
            for name, seconds in forward.items():
                self.scalar(f"time/forward/{name}", seconds, step)
            for name, seconds in backward.items():
                self.scalar(f"time/backward/{name}", seconds, step)
        if self._sync is not None:
            self._allreduce(step)

    def _allreduce(self, step: int) -> None:
        stats = dict(self._sync.stats)
        last = self._last_stats or {}
        iterations = stats["iterations"] - last.get("iterations", 0)
        if iterations <= 0:
            return
        comm = stats["comm_seconds"] - last.get("comm_seconds", 0.0)
        wait = stats["wait_seconds"] - last.get("wait_seconds", 0.0)
        self._last_stats = stats
        self.scalar("allreduce/seconds", comm / iterations, step)
        self.scalar("allreduce/wait_seconds", wait / iterations, step)
        hidden = max(0.0, 1.0 - wait / comm) if comm > 0 else 1.0
        self.scalar("allreduce/hidden_fraction", hidden, step)

    def on_test(self, result: Any) -> None:
        index = int(result.test_net)
        prefix = "test/" if index == 0 else f"test{index}/"
        for output in result.outputs:
            for tag, value in _values(prefix, output):
                self.scalar(tag, value, int(result.iter))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
