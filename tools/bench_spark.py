"""Training through Spark against the local launcher, same net, data, ranks and seed, in one
run: time to the first iteration and steady-state images/s.

    python tools/bench_spark.py [--ranks 2] [--short 40] [--long 640] [--repeats 5] [--cold 3]

The net is examples/spark's LeNet (MemoryData fed from an LMDB of generated digits, batch 64
per rank, no test, no snapshots), SGD, one engine thread per rank on both sides (local[ranks]
gives each task one core, spark.task.cpus; the launcher is told threads=1).

- **Time to first iteration** (Spark), --cold times: a fresh Python process, timed from its
  start as a `caffeonspark -train` submission would be (the clock starts before pyspark is
  imported): embedded local[ranks] session, Config, the barrier stage, the shards spooled,
  the solver built; the first iteration's end is the earliest `first_iteration_time` the
  ranks report. Whether the driver JVM's class archive (spark/jvm_cds.py) was there is
  printed beside it: it takes several seconds off.
- **Steady-state images/s**, both sides measured the same way: wall time of a --short and a
  --long run of the same job, images/s = (long - short) iterations x batch x ranks /
  (wall(long) - wall(short)); start-up (stage, processes, net construction) cancels out.
  Both run from this process: one Spark session, warmed by a first job, and the launcher
  starting its rank processes for every run. A virtual machine's speed drifts by several
  per cent over tens of seconds, so the two paths alternate job by job in an ABBA order
  (launcher short, Spark short, Spark long, launcher long; the next repeat mirrored), each
  repeat gives its own Spark / launcher ratio, and the table shows medians over --repeats
  with the spread of the ratios. The ranks' own steady-state estimate (`images_per_second`
  of train()'s summaries) is printed beside Spark's.
torch is not involved; the peer here is our own launcher (same engine, no Spark).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "examples" / "spark"))
BATCH = 64


def prepare(work: Path, n_train: int) -> tuple[Path, Path]:
    from example_support import ensure_digits

    return ensure_digits(work / "digits", n_train=n_train, n_test=200)


def solver_for(work: Path, train: Path, test: Path, iterations: int) -> Path:
    from example_support import write_lenet

    folder = work / f"lenet_{iterations}"
    # snapshot_prefix inside the scratch folder: the launcher writes its final snapshot
    # relative to its working directory otherwise.
    return write_lenet(
        folder, train, test, max_iter=iterations, display=0, test_interval=0, snapshot=0,
        random_seed=1, snapshot_prefix=str(folder / "lenet"),
    )


def launcher_wall(solver: Path, ranks: int) -> float:
    from caffeonspark.distributed.launcher import launch

    start = time.perf_counter()
    result = launch(str(solver), ranks, threads=1)  # what a local[n] task gets: 1 core
    if result.returncode:
        raise SystemExit(f"launcher failed: {result.first_error}")
    return time.perf_counter() - start


COLD_CHILD = r"""
import json, sys, time
t0 = time.time()
from caffeonspark.spark import CaffeOnSpark, Config, DataSource
from caffeonspark.spark.driver import spark_session
ranks, model, solver = int(sys.argv[1]), sys.argv[2], sys.argv[3]
spark, _ = spark_session(ranks)
spark.sparkContext.setLogLevel("ERROR")
args = ["-train", "-conf", solver, "-model", f"file:{model}", "-clusterSize", str(ranks),
        "-lmdb_partitions", str(ranks)]
summaries = CaffeOnSpark(spark).train(DataSource.getSource(Config(spark, args), True))
spark.stop()
print("RESULT " + json.dumps(min(s["first_iteration_time"] for s in summaries) - t0))
"""


def child_env() -> dict[str, str]:
    """This checkout's package first, for Spark's workers and the launcher's ranks too."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT / "python"), os.environ.get("PYTHONPATH", "")) if p))


def cold_first_iteration(solver: Path, ranks: int, work: Path) -> float:
    """Seconds from a fresh process's start to the end of its job's first iteration."""
    proc = subprocess.run(
        [sys.executable, "-c", COLD_CHILD, str(ranks), str(work / "cold.caffemodel"), str(solver)],
        env=child_env(), capture_output=True, text=True, check=False,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        raise SystemExit(f"spark run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    for name in os.listdir(work):
        if name.startswith("cold.caffemodel"):
            os.remove(work / name)
    return float(line[len("RESULT "):])


class SparkTrainer:
    """One warm local[ranks] session training a solver file per call."""

    def __init__(self, ranks: int, work: Path) -> None:
        from caffeonspark.spark.driver import spark_session

        self.ranks, self.work = ranks, work
        self.spark, _ = spark_session(ranks)
        self.spark.sparkContext.setLogLevel("ERROR")

    def wall(self, solver: Path) -> tuple[float, float | None]:
        """(seconds, the ranks' own steady-state images/s) of one training job."""
        from caffeonspark.spark import CaffeOnSpark, Config, DataSource

        model = self.work / "spark.caffemodel"
        args = ["-train", "-conf", str(solver), "-model", f"file:{model}",
                "-clusterSize", str(self.ranks), "-lmdb_partitions", str(self.ranks)]
        start = time.perf_counter()
        summaries = CaffeOnSpark(self.spark).train(
            DataSource.getSource(Config(self.spark, args), True))
        seconds = time.perf_counter() - start
        for name in os.listdir(self.work):
            if name.startswith("spark.caffemodel"):
                os.remove(self.work / name)
        rates = [s["images_per_second"] for s in summaries if s["images_per_second"]]
        return seconds, (sum(rates) / len(rates) * self.ranks if rates else None)

    def stop(self) -> None:
        self.spark.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--short", type=int, default=40)
    parser.add_argument("--long", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cold", type=int, default=3, help="fresh-process first-iteration runs")
    args = parser.parse_args()
    os.environ.update(child_env())  # the launcher's ranks and Spark's workers import this tree
    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        work = Path(tmp)
        train, test = prepare(work, n_train=max(6400, args.long * BATCH * args.ranks // 4))
        short = solver_for(work, train, test, args.short)
        long = solver_for(work, train, test, args.long)
        from caffeonspark.spark import jvm_cds

        archive = jvm_cds.archive_path()
        cds = ("off" if archive is None else
               f"{'present' if archive.is_file() else 'absent (recording)'}: {archive}")
        firsts = [cold_first_iteration(short, args.ranks, work) for _ in range(args.cold)]

        spark = SparkTrainer(args.ranks, work)
        spark.wall(short)  # the session's first job pays Spark's first-use costs
        walls = {(path, n): [] for path in ("spark", "launcher") for n in (args.short, args.long)}
        own: list[float] = []
        run = {
            "launcher": lambda solver: (launcher_wall(solver, args.ranks), None),
            "spark": spark.wall,
        }
        for repeat in range(args.repeats):
            order = [("launcher", args.short), ("spark", args.short),
                     ("spark", args.long), ("launcher", args.long)]
            for path, n in order if repeat % 2 == 0 else order[::-1]:
                seconds, estimate = run[path](short if n == args.short else long)
                walls[path, n].append(seconds)
                if estimate and n == args.long:
                    own.append(estimate)
        spark.stop()

    images = (args.long - args.short) * BATCH * args.ranks

    def rate(path: str, i: int | None = None) -> float:
        pick = statistics.median if i is None else (lambda v: v[i])
        return images / (pick(walls[path, args.long]) - pick(walls[path, args.short]))

    ratios = sorted(rate("spark", i) / rate("launcher", i) for i in range(args.repeats))
    print(f"LeNet, {args.ranks} ranks, batch {BATCH} per rank, iterations {args.short} and "
          f"{args.long}, {args.repeats} repeat(s)")
    print("| path | wall short (s) | wall long (s) | images/s | ranks' own estimate |")
    print("|---|---:|---:|---:|---:|")
    for name, path, estimate in ((f"Spark local[{args.ranks}]", "spark", own),
                                 ("local launcher", "launcher", [])):
        print(f"| {name} | {statistics.median(walls[path, args.short]):.2f} | "
              f"{statistics.median(walls[path, args.long]):.2f} | {rate(path):,.0f} | "
              f"{f'{statistics.median(estimate):,.0f}' if estimate else '-'} |")
    print(f"Spark / launcher throughput: {rate('spark') / rate('launcher'):.3f} (medians); "
          f"per repeat: median {statistics.median(ratios):.3f}, "
          f"range {ratios[0]:.3f}-{ratios[-1]:.3f}")
    if firsts:
        print("time to first iteration from process start (Spark, cold): "
              + ", ".join(f"{t:.1f} s" for t in firsts)
              + f"; the driver JVM's class archive (spark/jvm_cds.py) was {cds}")


if __name__ == "__main__":
    main()
