"""Training through Spark against the local launcher, same net, data, ranks and seed, in one
run: time to the first iteration and steady-state images/s.

    python tools/bench_spark.py [--ranks 2] [--short 40] [--long 240] [--repeats 2]

The net is examples/spark's LeNet (MemoryData fed from an LMDB of generated digits, batch 64
per rank, no test, no snapshots), SGD, one engine thread per rank on both sides (local[ranks]
gives each task one core, spark.task.cpus; the launcher is told threads=1).

- **Time to first iteration** (Spark): a fresh Python process, timed from its start as a
  `caffeonspark -train` submission would be (the clock starts before pyspark is imported):
  embedded local[ranks] session, Config, the barrier stage, the shards spooled, the solver
  built; the first iteration's end is the earliest `first_iteration_time` the ranks report.
- **Steady-state images/s**, both sides measured the same way: wall time of a --short and a
  --long run of the same job, images/s = (long - short) iterations x batch x ranks /
  (wall(long) - wall(short)); start-up (JVM, stage, processes, net construction) cancels
  out. On Spark both runs go through one session, after its cold first job (the one timed
  above) warmed it; the launcher starts its rank
  processes for every run. Each length runs --repeats times, interleaved (launcher, Spark,
  launcher, Spark ...), and the median wall time counts. The ranks' own steady-state
  estimate (`images_per_second` of train()'s summaries) is printed beside it.
torch is not involved; the peer here is our own launcher (same engine, no Spark).
"""

from __future__ import annotations

import argparse
import json
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


SPARK_CHILD = r"""
import json, sys, time
t0 = time.time()
from caffeonspark.spark import CaffeOnSpark, Config, DataSource
from caffeonspark.spark.driver import spark_session
ranks, model, solvers = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
spark, _ = spark_session(ranks)
spark.sparkContext.setLogLevel("ERROR")
out = []
for i, solver in enumerate(solvers):
    args = ["-train", "-conf", solver, "-model", f"file:{model}.{i}", "-clusterSize", str(ranks),
            "-lmdb_partitions", str(ranks)]
    start = time.perf_counter()
    summaries = CaffeOnSpark(spark).train(DataSource.getSource(Config(spark, args), True))
    wall = time.perf_counter() - start
    first = min(s["first_iteration_time"] for s in summaries)
    rates = [s["images_per_second"] for s in summaries if s["images_per_second"]]
    out.append({"solver": solver, "wall": wall, "first_after_start": first - t0,
                "rank_images_per_second": sum(rates) / len(rates) * ranks if rates else None})
spark.stop()
print("RESULT " + json.dumps(out))
"""


def spark_runs(solvers: list[Path], ranks: int, work: Path) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT / "python"), os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.run(
        [sys.executable, "-c", SPARK_CHILD, str(ranks), str(work / "spark.caffemodel"),
         *map(str, solvers)],
        env=env, capture_output=True, text=True, check=False,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        raise SystemExit(f"spark run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--short", type=int, default=40)
    parser.add_argument("--long", type=int, default=240)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        work = Path(tmp)
        train, test = prepare(work, n_train=max(6400, args.long * BATCH * args.ranks // 4))
        short = solver_for(work, train, test, args.short)
        long = solver_for(work, train, test, args.long)
        launcher = {args.short: [], args.long: []}
        spark = {args.short: [], args.long: []}
        firsts, rank_rates = [], []
        for _ in range(args.repeats):
            for iterations, solver in ((args.short, short), (args.long, long)):
                launcher[iterations].append(launcher_wall(solver, args.ranks))
            # The session's first job is the cold start; it also warms the session, so the
            # timed pair that follows measures training, not Spark's first-use costs.
            cold, warm_short, warm_long = spark_runs([short, short, long], args.ranks, work)
            firsts.append(cold["first_after_start"])
            spark[args.short].append(warm_short["wall"])
            spark[args.long].append(warm_long["wall"])
            if warm_long["rank_images_per_second"]:
                rank_rates.append(warm_long["rank_images_per_second"])
            for name in os.listdir(work):
                if name.startswith("spark.caffemodel"):
                    os.remove(work / name)
    images = (args.long - args.short) * BATCH * args.ranks

    def rate(walls: dict[int, list[float]]) -> float:
        return images / (statistics.median(walls[args.long]) - statistics.median(walls[args.short]))

    ours, peer = rate(spark), rate(launcher)
    print(f"LeNet, {args.ranks} ranks, batch {BATCH} per rank, iterations {args.short} and "
          f"{args.long}, {args.repeats} repeat(s)")
    print("| path | wall short (s) | wall long (s) | images/s | ranks' own estimate |")
    print("|---|---:|---:|---:|---:|")
    for name, walls, value, own in ((f"Spark local[{args.ranks}]", spark, ours,
                                     statistics.median(rank_rates) if rank_rates else None),
                                    ("local launcher", launcher, peer, None)):
        print(f"| {name} | {statistics.median(walls[args.short]):.2f} | "
              f"{statistics.median(walls[args.long]):.2f} | {value:,.0f} | "
              f"{'-' if own is None else f'{own:,.0f}'} |")
    print(f"Spark / launcher throughput: {ours / peer:.3f}")
    print("time to first iteration from process start (Spark, cold): "
          + ", ".join(f"{t:.1f} s" for t in firsts))


if __name__ == "__main__":
    main()
