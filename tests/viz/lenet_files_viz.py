"""The small LeNet of the viz tests: examples/mnist's net and solver over a generated digit
set (a module of its own, not conftest.py: `from conftest import` finds whichever conftest
another test folder imported first)."""

from __future__ import annotations

from pathlib import Path

from caffeonspark import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mnist"


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
