"""Splitting a DataFrame into n partitions by the shard rule (data/shard_rule.py): partition r
holds the rows [N*r//n, N*(r+1)//n) of the DataFrame's storage order, in that order — the
rows the launcher's rank r reads as partition r of n of the same source.

    split_contiguously(df, n)                  # storage order = the DataFrame's own order
    split_contiguously(df, n, index, total)    # storage order given: a 0..total-1 column

The DataFrame's own order is partition by partition, rows in order: each row is numbered
from monotonically_increasing_id (partition id << 33 | row in partition) and the per-partition
row counts (one small aggregation). Rows move with one hash shuffle whose keys are chosen so
that Spark's own partitioner (pmod(murmur3 hash, n), the `hash` SQL function) sends key r to
partition r, then each partition is sorted back into storage order. The input must give the
same rows in the same order when recomputed (files, tables, this package's sources do).
Tests: tests/spark/test_parity.py.
"""

from __future__ import annotations

from typing import Any

__all__ = ["split_contiguously", "partition_keys"]

_INDEX, _KEY, _MID = "__cos_index", "__cos_key", "__cos_mid"
_ROW_BITS = 33  # monotonically_increasing_id: the row within its partition, low 33 bits


_keys_cache: dict[tuple[str, int], list[int]] = {}


def partition_keys(spark: Any, n: int) -> list[int]:
    """keys[r]: a long that Spark's hash partitioning into n partitions sends to partition r
    (asked of Spark itself once per application and n)."""
    from pyspark.sql import functions as F

    cache_key = (spark.sparkContext.applicationId, n)
    if cache_key in _keys_cache:
        return _keys_cache[cache_key]
    keys: dict[int, int] = {}
    span = 64 * n
    start = 0
    while len(keys) < n:
        rows = (
            spark.range(start, start + span)
            .select("id", F.pmod(F.hash("id"), F.lit(n)).alias("p"))
            .collect()
        )
        for row in rows:
            keys.setdefault(int(row.p), int(row.id))
        start += span
    _keys_cache[cache_key] = [keys[r] for r in range(n)]
    return _keys_cache[cache_key]


def _storage_index(df: Any) -> tuple[Any, int]:
    """(df with the storage-order row number as _INDEX, row count)."""
    from pyspark.sql import functions as F

    tagged = df.withColumn(_MID, F.monotonically_increasing_id())
    counts = {
        int(r.p): int(r["count"])
        for r in tagged.select(F.shiftright(_MID, _ROW_BITS).alias("p"))
        .groupBy("p")
        .count()
        .collect()
    }
    total = sum(counts.values())
    offsets, running = [], 0
    for p in range(max(counts, default=-1) + 1):
        offsets.append(running)
        running += counts.get(p, 0)
    if not offsets:
        return tagged.withColumn(_INDEX, F.col(_MID)).drop(_MID), 0
    offset = F.element_at(
        F.array(*[F.lit(o).cast("long") for o in offsets]),
        (F.shiftright(_MID, _ROW_BITS) + 1).cast("int"),
    )
    index = offset + F.col(_MID).bitwiseAND((1 << _ROW_BITS) - 1)
    return tagged.withColumn(_INDEX, index).drop(_MID), total


def split_contiguously(df: Any, n: int, index: Any = None, total: int | None = None) -> Any:
    """df as n partitions by the shard rule (module doc); `index` (a Column numbering the rows
    0..total-1 in storage order) replaces the DataFrame's own order."""
    from pyspark.sql import functions as F

    columns = df.columns
    if index is None:
        df, total = _storage_index(df)
    else:
        df = df.withColumn(_INDEX, index.cast("long"))
    total = max(int(total or 0), 1)
    # rank r holds [total*r//n, total*(r+1)//n): r = (n*(i+1) - 1) div total (integer math)
    rank = F.least(F.expr(f"(({_INDEX} + 1) * {int(n)} - 1) div {total}"), F.lit(n - 1))
    keys = F.array(*[F.lit(k).cast("long") for k in partition_keys(df.sparkSession, n)])
    return (
        df.withColumn(_KEY, F.element_at(keys, (rank + 1).cast("int")))
        .repartition(n, F.col(_KEY))
        .sortWithinPartitions(_INDEX)
        .select(*columns)
    )
