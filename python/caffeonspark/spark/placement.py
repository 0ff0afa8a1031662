"""Placing one engine per barrier task (driver side), TorchDistributor-style: how many ranks,
whether the cluster can run them all at once, and partitions = ranks.

- `cluster_size(conf, spark)`: -clusterSize; on YARN without -clusterSize,
  spark.executor.instances (with dynamic allocation, minExecutors must equal maxExecutors).
- `barrier_slots(spark)`: tasks the application can run at once now (Spark's own count for
  barrier stages; total cores / spark.task.cpus where that is unavailable).
- `check_slots(spark, n)`: ConfigError before any stage when n barrier tasks cannot run
  together (Spark would otherwise retry the stage for minutes), saying what to change.
- `with_partitions(df, n, keep, order)`: the DataFrame as n partitions, partition r holding
  rank r's shard by the shard rule (data/shard_rule.py): kept when it has n partitions whose
  split the source defines (`keep`), else split into contiguous ranges of its storage order
  (contiguous.py: a shuffle; barrier stages refuse coalesce), and logged.
Tests: tests/spark/test_spark.py.
"""

from __future__ import annotations

import logging
from typing import Any

from caffeonspark.errors import ConfigError
from caffeonspark.spark.config import Config

__all__ = ["cluster_size", "barrier_slots", "check_slots", "with_partitions"]

log = logging.getLogger("caffeonspark")


def cluster_size(conf: Config, spark: Any) -> int:
    if "clusterSize" in conf.given:
        return int(conf.clusterSize)
    sc = spark.sparkContext
    if not sc.master.startswith("yarn"):
        return int(conf.clusterSize)
    settings = sc.getConf()
    if settings.get("spark.dynamicAllocation.enabled", "false").lower() == "true":
        low = settings.get("spark.dynamicAllocation.minExecutors", "0")
        high = settings.get("spark.dynamicAllocation.maxExecutors", "")
        if low != high:
            raise ConfigError(
                "-clusterSize: with dynamic allocation, spark.dynamicAllocation.minExecutors "
                f"({low}) must equal maxExecutors ({high or 'unset'}); or give -clusterSize"
            )
        return int(low)
    return int(settings.get("spark.executor.instances", str(conf.clusterSize)))


def barrier_slots(spark: Any) -> int:
    sc = spark.sparkContext
    try:
        jsc = sc._jsc.sc()
        profile = jsc.resourceProfileManager().defaultResourceProfile()
        return int(jsc.maxNumConcurrentTasks(profile))
    except Exception:  # an API Spark keeps internal; fall back on the core count
        cpus = int(sc.getConf().get("spark.task.cpus", "1"))
        return int(sc.defaultParallelism) // max(1, cpus)


def check_slots(spark: Any, n: int) -> None:
    slots = barrier_slots(spark)
    if slots >= n:
        return
    sc = spark.sparkContext
    cpus = int(sc.getConf().get("spark.task.cpus", "1"))
    if sc.master.startswith("local"):
        hint = f"start Spark with master local[{n * cpus}] (or more)"
    else:
        hint = (
            "add executors or cores (spark.executor.instances, spark.executor.cores), or let "
            "them register first (spark.scheduler.minRegisteredResourcesRatio=1.0, "
            "spark.scheduler.maxRegisteredResourcesWaitingTime)"
        )
    raise ConfigError(
        f"-clusterSize {n} needs {n} barrier tasks running at once, but this Spark application "
        f"can run {slots} (master {sc.master}, spark.task.cpus {cpus}): {hint}, or lower "
        "-clusterSize"
    )


def with_partitions(df: Any, n: int, keep: bool = True, order: Any = None) -> Any:
    """The DataFrame as n partitions, partition r = rank r's shard (data/shard_rule.py): as
    it is when it has n partitions and `keep`, else split contiguously (contiguous.py) in
    its own order, or in `order` = (index column, row count) when given."""
    from caffeonspark.spark.contiguous import split_contiguously

    have = df.rdd.getNumPartitions()
    if have == n and keep:
        return df
    log.info(
        "splitting the training data (%d partitions) into %d contiguous shards, one per rank",
        have, n,
    )
    index, total = order if order is not None else (None, None)
    return split_contiguously(df, n, index, total)
