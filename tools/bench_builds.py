"""Two builds of the engine, one training step against the other: a refactoring's check that
the hot loop got no slower (BENCHMARKS.md, "Same speed after a refactoring").

Each build's `python/` folder runs in its own processes, alternating A B A B ..., each process
timing tools/bench_train.py's LeNet (b64) and CIFAR-10 quick (b100) solvers: the best of 15
five-step means, after a warm-up. The minimum over rounds is printed per build and net, with
B / A: on a shared machine the fastest run is the one least disturbed by others.

    python tools/bench_builds.py --a ../base/python --b python [--threads 1] [--rounds 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, sys, time
sys.path.insert(0, {tools!r})
import numpy as np
from bench_train import CIFAR_QUICK, LENET, our_solver
from caffeonspark import engine
engine.set_num_threads({threads})
times = {{}}
for name, text, shape in [("lenet", LENET, (64, 1, 28, 28)),
                          ("cifar10_quick", CIFAR_QUICK, (100, 3, 32, 32))]:
    solver = our_solver(text)
    rng = np.random.default_rng(0)
    solver.net.blobs["data"].data[...] = rng.random(shape, dtype=np.float32)
    solver.net.blobs["label"].data[...] = rng.integers(0, 10, shape[0]).astype(np.float32)
    solver.step(3)
    best = float("inf")
    for _ in range(15):
        start = time.perf_counter()
        solver.step(5)
        best = min(best, (time.perf_counter() - start) / 5)
    times[name] = best * 1000
print(json.dumps(times))
"""


def step_times(python_dir: str, threads: int) -> dict[str, float]:
    code = CHILD.format(tools=str(Path(__file__).resolve().parent), threads=threads)
    env = dict(os.environ, PYTHONPATH=os.path.abspath(python_dir), OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="build A's python/ folder (the reference)")
    parser.add_argument("--b", required=True, help="build B's python/ folder")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    for _ in range(args.rounds):
        runs["A"].append(step_times(args.a, args.threads))
        runs["B"].append(step_times(args.b, args.threads))
    print(f"{'net':<14}{'threads':>8}{'A ms/step':>11}{'B ms/step':>11}{'B / A':>8}")
    for net in runs["A"][0]:
        a = min(r[net] for r in runs["A"])
        b = min(r[net] for r in runs["B"])
        print(f"{net:<14}{args.threads:>8}{a:>11.2f}{b:>11.2f}{b / a:>8.3f}")


if __name__ == "__main__":
    main()
