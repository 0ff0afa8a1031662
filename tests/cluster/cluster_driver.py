"""The Spark driver of tests/cluster/test_spark_cluster.py, run inside the head host's
namespace (a SparkContext per process; the cluster's executors must reach this driver at
the head's address):

    python cluster_driver.py SPEC.json

SPEC: {"master": "spark://...", "host": head address, "world": N, "timeout": s,
"solver": path, "runs": [{"name", "model", "features"}, ...]}. The runs named "local..." go
to a local[N] session started after the cluster's is stopped; the others to the standalone
master. Each run is the seed's pipeline: -train (-clusterSize N) then -features ip2 -label
label on the solver's TEST source, the features written as Parquet.

Prints JSON lines, flushed: {"log": message} for every "caffeonspark" log record (the ranks'
lines and rank 0's progress arrive through the driver console), {"run": name} before a run,
{"done": name, "summaries": [...], "seconds": s} after it, {"error": ...} if it failed, and
{"unavailable": why} when the executors never registered."""

from __future__ import annotations

import json
import logging
import os
import sys
import time

REGISTER_SECONDS = 150.0
FAST_START = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def emit(**record) -> None:
    print(json.dumps(record), flush=True)


class Lines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        emit(log=record.getMessage())


def session(master: str, host: str, world: int, python_dir: str):
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(master)
        .appName("caffeonspark-netns-cluster")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", host)
        .config("spark.driver.bindAddress", host)
        .config("spark.driver.memory", "1g")
        .config("spark.executor.memory", "768m")
        .config("spark.executor.cores", "1")
        .config("spark.cores.max", str(world))
        .config("spark.locality.wait", "0")
        .config("spark.sql.shuffle.partitions", str(world))
        .config("spark.pyspark.python", sys.executable)
        .config("spark.driver.extraJavaOptions", FAST_START)
        .config("spark.executor.extraJavaOptions", FAST_START)
        .config("spark.executorEnv.PYTHONPATH", python_dir)
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def executors(sc, count: int) -> int:
    """Executors registered (the driver is one more entry) once `count` are, or time is up."""
    end = time.monotonic() + REGISTER_SECONDS
    while True:
        n = len(sc.statusTracker().getExecutorInfos()) - 1
        if n >= count or time.monotonic() > end:
            return n
        time.sleep(0.5)


def pipeline(spark, spec: dict, run: dict) -> None:
    from caffeonspark.spark import CaffeOnSpark, Config, DataSource

    emit(run=run["name"])
    started = time.monotonic()
    conf = Config(spark, ["-train", "-features", "ip2", "-label", "label", "-conf", spec["solver"],
                          "-model", run["model"], "-clusterSize", str(spec["world"])])
    cos = CaffeOnSpark(spark, timeout=float(spec["timeout"]))
    summaries = cos.train(DataSource.getSource(conf, True))
    cos.features(DataSource.getSource(conf, False)).write.parquet(run["features"])
    emit(done=run["name"], summaries=summaries, seconds=time.monotonic() - started)


def main() -> int:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    logger = logging.getLogger("caffeonspark")
    logger.setLevel(logging.INFO)
    logger.addHandler(Lines())
    python_dir = os.environ["PYTHONPATH"].split(os.pathsep)[0]
    cluster_runs = [r for r in spec["runs"] if not r["name"].startswith("local")]
    local_runs = [r for r in spec["runs"] if r["name"].startswith("local")]
    for master, runs in ((spec["master"], cluster_runs), (f"local[{spec['world']}]", local_runs)):
        if not runs:
            continue
        spark = session(master, spec["host"], spec["world"], python_dir)
        try:
            if not master.startswith("local"):
                n = executors(spark.sparkContext, spec["world"])
                if n < spec["world"]:
                    emit(unavailable=f"{n} of {spec['world']} executors registered with "
                         f"{master} within {REGISTER_SECONDS:.0f} s")
                    return 0
            for run in runs:
                try:
                    pipeline(spark, spec, run)
                except Exception as error:
                    emit(error=f"{run['name']}: {type(error).__name__}: {error}")
                    return 1
        finally:
            spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
