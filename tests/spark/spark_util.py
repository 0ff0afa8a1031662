"""Helpers of the Spark tests: CaffeOnSpark's LeNet nets (shared/anchors/caffeonspark) written
next to small generated digit sets."""

from __future__ import annotations

from pathlib import Path

import caffeonspark

# Where the caffeonspark under test lives (the checkout's python/ in development, the
# environment's site-packages after `pip install`): Spark's Python workers import it too.
PYTHON_DIR = Path(caffeonspark.__file__).resolve().parents[1]
REPO_DIR = Path(__file__).resolve().parents[2]
TESTS_DIR = Path(__file__).resolve().parent


def write_lenet(
    root: Path,
    anchors: Path,
    kind: str,
    train_source: str,
    test_source: str,
    **solver: object,
) -> Path:
    """CaffeOnSpark's lenet_<kind> solver and net in `root`, reading the given sources, on
    the CPU, with solver fields replaced (max_iter=..., display=...); returns the solver."""
    root.mkdir(parents=True, exist_ok=True)
    net = (anchors / "caffeonspark" / f"lenet_{kind}_train_test.prototxt").read_text()
    train_at = net.index('source: "', net.index("phase: TRAIN"))
    test_at = net.index('source: "', net.index("phase: TEST"))
    for at, source in sorted([(test_at, test_source), (train_at, train_source)], reverse=True):
        end = net.index('"', at + len('source: "'))
        net = net[:at] + f'source: "{source}' + net[end:]
    (root / f"lenet_{kind}_train_test.prototxt").write_text(net)
    lines = []
    text = (anchors / "caffeonspark" / f"lenet_{kind}_solver.prototxt").read_text()
    solver = {"solver_mode": "CPU", "random_seed": 7, **solver}
    for line in text.splitlines():
        key = line.split(":", 1)[0].strip()
        if key in solver:
            continue
        lines.append(line)
    for key, value in solver.items():
        lines.append(f"{key}: {value}")
    path = root / "solver.prototxt"
    path.write_text("\n".join(lines) + "\n")
    return path
