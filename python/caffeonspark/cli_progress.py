"""Progress of `caffeonspark train` and `test` on a terminal (data/progress.py decides).

train: a bar over iterations (total max_iter, unit "it", postfix loss), moved at the
solver's display callbacks, at its tests and at the end: never per iteration, which would
call into Python every step. test: a bar over batches. While a bar is on the terminal, log
lines are written above it (tqdm's logging redirect) so the two do not garble each other.
With stderr not a terminal there is no bar and no redirect: logs stay as they were.
Tests: tests/cli/test_progress.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from caffeonspark.data.progress import progress_bar, shown

if TYPE_CHECKING:
    from caffeonspark.solver import Solver

__all__ = ["batch_bar", "training_bar"]


@contextlib.contextmanager
def _drawn(bar: tqdm) -> Iterator[tqdm]:
    try:
        if bar.disable:
            yield bar
        else:
            with logging_redirect_tqdm():
                yield bar
    finally:
        bar.close()


def _move_to(bar: tqdm, done: int) -> None:
    if done > bar.n:
        bar.update(done - bar.n)


@contextlib.contextmanager
def training_bar(solver: Solver) -> Iterator[tqdm | None]:
    """A bar over solver's iterations for the duration of the block (solve() inside);
    None, and no callbacks added, when stderr is not a terminal."""
    if not shown():
        yield None
        return
    bar = progress_bar(total=int(solver.param.max_iter), desc="train", unit="it")

    def on_display(info: Any) -> None:
        # Called before the engine counts the iteration: iter + 1 are done (the final
        # forward-only pass reports iter itself).
        _move_to(bar, int(info.iter) if info.final else int(info.iter) + 1)
        bar.set_postfix(loss=f"{info.smoothed_loss:.4g}")

    def on_test(result: Any) -> None:  # tests run before iteration `iter` starts
        _move_to(bar, int(result.iter))
        bar.refresh()

    solver.add_display_callback(on_display)
    solver.add_test_callback(on_test)
    with _drawn(bar):
        yield bar
        _move_to(bar, solver.iter)  # display 0 and no tests: the end is the one update
        bar.set_postfix(loss=f"{solver.smoothed_loss:.4g}")


@contextlib.contextmanager
def batch_bar(total: int, desc: str = "test") -> Iterator[tqdm]:
    """A bar over `total` batches; the caller calls update() after each."""
    with _drawn(progress_bar(total=total, desc=desc, unit="batch")) as bar:
        yield bar
