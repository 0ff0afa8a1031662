"""Progress bars of `caffeonspark train` and `test` (python/caffeonspark/cli_progress.py):
shown when stderr is a terminal (a pseudo-terminal here), absent, not one bar character,
when stderr is a pipe, as in logs and CI. `terminal` and `console`: tests/cli/conftest.py."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., subprocess.CompletedProcess]
OnTerminal = Callable[..., tuple[int, str]]

MAX_ITER = 30
NET = """name: "tiny"
layer { name: "in" type: "Input" top: "x" top: "label"
  input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""
BAR_GLYPHS = "\r█▏▎▍▌▋▊▉|"


def write_tiny(folder: Path, display: int) -> str:
    (folder / "net.prototxt").write_text(NET)
    (folder / "solver.prototxt").write_text(
        f'net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: {MAX_ITER}\n'
        f'display: {display}\nsnapshot_prefix: "tiny"\nrandom_seed: 1\n'
    )
    return "solver.prototxt"


@pytest.mark.parametrize("display", [10, 0])
def test_train_shows_a_bar_on_a_terminal(tmp_path: Path, terminal: OnTerminal, display: int) -> None:
    # display 0: no display callbacks, the bar still ends at max_iter.
    solver = write_tiny(tmp_path, display)
    code, text = terminal("train", "-solver", solver, "-threads", "1")
    assert code == 0, text
    bars = [line for line in text.replace("\r", "\n").splitlines() if line.startswith("train:")]
    assert any(f"{MAX_ITER}/{MAX_ITER}" in line and "it" in line and "loss=" in line
               for line in bars), text
    if display:  # the display after iteration 10 (Caffe's numbering from 0): 11 done
        assert any(f" 11/{MAX_ITER}" in line and "loss=" in line for line in bars), text
    assert "Optimization Done." in text  # log lines still reach the terminal


def test_train_and_test_in_a_pipe_have_no_bar(tmp_path: Path, console: Run) -> None:
    # console runs in tmp_path, as terminal does: the relative paths hold.
    trained = console("train", "-solver", write_tiny(tmp_path, 10), "-threads", "1")
    assert trained.returncode == 0, trained.stderr
    assert "Optimization Done." in trained.stderr
    tested = console("test", "-model", "net.prototxt", "-weights",
                     f"tiny_iter_{MAX_ITER}.caffemodel", "-iterations", "3")
    assert tested.returncode == 0, tested.stderr
    assert "Batch 2, loss = " in tested.stderr
    for result in (trained, tested):
        assert not any(glyph in result.stderr for glyph in BAR_GLYPHS), result.stderr
        assert f"/{MAX_ITER}" not in result.stderr and "/3 " not in result.stderr


def test_test_shows_a_bar_over_batches_on_a_terminal(tmp_path: Path, terminal: OnTerminal) -> None:
    solver = write_tiny(tmp_path, 0)
    assert terminal("train", "-solver", solver, "-threads", "1")[0] == 0
    code, text = terminal("test", "-model", "net.prototxt", "-weights",
                             f"tiny_iter_{MAX_ITER}.caffemodel", "-iterations", "3")
    assert code == 0, text
    bars = [line for line in text.replace("\r", "\n").splitlines() if line.startswith("test:")]
    assert any("3/3" in line and "batch" in line for line in bars), text
    assert "Batch 2, loss = " in text
