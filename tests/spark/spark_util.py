"""Helpers of the Spark tests (and of tests/examples): the local[2] session they share, and
CaffeOnSpark's LeNet nets (shared/anchors/caffeonspark) written next to small generated digit
sets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import caffeonspark

# Where the caffeonspark under test lives (the checkout's python/ in development, the
# environment's site-packages after `pip install`): Spark's Python workers import it too.
PYTHON_DIR = Path(caffeonspark.__file__).resolve().parents[1]
REPO_DIR = Path(__file__).resolve().parents[2]
TESTS_DIR = Path(__file__).resolve().parent


def skip_without_spark() -> None:
    """Skip the calling test without pyspark, pandas (mapInArrow) or a Java runtime."""
    pytest.importorskip("pyspark", reason="pyspark (the `spark` extra) is not installed")
    pytest.importorskip("pandas", reason="pyspark's mapInArrow needs pandas")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime for Spark")


def local_session(app_name: str, *worker_paths: Path) -> Any:
    """A local[2] SparkSession whose Python workers import the caffeonspark under test and
    the given folders."""
    from pyspark.sql import SparkSession

    python_path = os.pathsep.join(str(p) for p in (PYTHON_DIR, *worker_paths))
    session = (
        SparkSession.builder.master("local[2]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.executorEnv.PYTHONPATH", python_path)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


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
