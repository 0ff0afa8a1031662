"""Trains a solver with -clusterSize 2 on Spark's local-cluster[2,1,1024] master: a standalone
master and two workers inside the driver's JVM, each executor its own JVM with its own Python
workers (so nothing is shared with the driver but files). Run by
tests/spark/test_local_cluster.py in a subprocess, as the test module's local[2] session
cannot live beside another SparkContext in one process:

    python local_cluster_train.py SOLVER MODEL SPARK_HOME

SPARK_HOME: a scratch Spark home whose bin/, jars/ and python/ link to the installed
pyspark's (the workers put their work/ folder there, not in site-packages). Prints one JSON
line: {"summaries": [...]} after training, or {"unavailable": why} when the executors never
registered (the cluster cannot start here), or {"error": ...} when training failed."""

from __future__ import annotations

import json
import os
import sys
import time

from spark_util import PYTHON_DIR, TESTS_DIR

REGISTER_SECONDS = 150.0
# Three JVMs start on a small machine: the C1 compiler alone and the serial collector bring
# executor start-up from ~85 s to ~28 s on a loaded 2-core box (measured); no JVM here runs
# long enough for C2 to pay off.
FAST_START = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def start_session(spark_home: str):
    from pyspark.sql import SparkSession

    os.environ["SPARK_HOME"] = spark_home
    session = (
        SparkSession.builder.master("local-cluster[2,1,1024]")
        .appName("caffeonspark-local-cluster")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.extraJavaOptions", FAST_START)
        .config("spark.executor.extraJavaOptions", FAST_START)
        .config("spark.executorEnv.PYTHONPATH", f"{PYTHON_DIR}{os.pathsep}{TESTS_DIR}")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def wait_for_executors(sc, count: int) -> int:
    """Executors registered (the driver is one more entry) once `count` are or time is up."""
    end = time.monotonic() + REGISTER_SECONDS
    while True:
        executors = len(sc.statusTracker().getExecutorInfos()) - 1
        if executors >= count or time.monotonic() > end:
            return executors
        time.sleep(0.5)


def main() -> int:
    solver, model, spark_home = sys.argv[1:4]
    started = time.monotonic()
    try:
        session = start_session(spark_home)
    except Exception as error:  # e.g. no usable Spark home: Spark's own message
        print(json.dumps({"unavailable": f"{type(error).__name__}: {error}"}))
        return 0
    try:
        executors = wait_for_executors(session.sparkContext, 2)
        if executors < 2:
            print(json.dumps({"unavailable": f"{executors} of 2 executors registered within "
                              f"{REGISTER_SECONDS:.0f} s (worker logs: {spark_home}/work)"}))
            return 0
        up = time.monotonic() - started
        from caffeonspark.spark import CaffeOnSpark, Config, DataSource

        conf = Config(session, ["-train", "-conf", solver, "-model", model, "-clusterSize", "2"])
        try:
            summaries = CaffeOnSpark(session, timeout=60.0).train(DataSource.getSource(conf, True))
        except Exception as error:
            print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
            return 1
        print(json.dumps({"summaries": summaries, "startup_seconds": up,
                          "seconds": time.monotonic() - started}))
        return 0
    finally:
        session.stop()


if __name__ == "__main__":
    sys.exit(main())
