"""The data rule every rank of a data-parallel job follows, so that the local launcher
(distributed/worker.py) and Spark's barrier tasks (spark/train_task.py) train the same model
from the same data and solver (docs/SPARK.md, "Same result as the launcher").

For rank r of n, a source-fed TRAIN layer (MemoryData naming `source_class` +
`memory_data_param.source`, or Spark's spooled partition):
- shard: partition r of n of the source, the contiguous record range [N*r//n, N*(r+1)//n)
  in storage order (data/sources/base.py partition_range). The launcher reads it from the
  whole source; a Spark task receives exactly those rows as its partition (the driver
  splits the DataFrame contiguously, spark/placement.py) and reads its spool file whole
  (`presharded`);
- order: each epoch e a permutation of the shard drawn from
  numpy.random.default_rng([seed, e, r, n]), seed = the solver's random_seed (0 when unset);
- remainder: an epoch's last items fewer than a batch are dropped.
The solver's own random_seed is offset by the rank (rank_solver_edit) on both paths.
Caffe's Data layers keep Caffe's rule instead (lmdb_feeder.py: strided, in key order).
Tests: tests/spark/test_parity.py, tests/data/test_feed_options.py,
tests/layers/test_memory_data_source.py.
"""

from __future__ import annotations

from caffeonspark.data.feed_options import FeedOptions

__all__ = ["shard_seed", "rank_feed_options"]


def shard_seed(random_seed: int) -> int:
    """The shuffle seed of a solver's random_seed (Caffe's -1, unset, gives 0)."""
    return int(random_seed) if random_seed >= 0 else 0


def rank_feed_options(
    random_seed: int, rank: int, world_size: int, *, presharded: bool, resize: bool = False
) -> FeedOptions:
    """The FeedOptions rank `rank` of `world_size` builds its nets with, to feed by the rule
    above. `presharded`: the sources hold this rank's shard already (read whole, shuffled as
    shard `rank`); else each source's partition `rank` of `world_size` is read. `resize`:
    -resize."""
    if presharded:
        return FeedOptions(
            seed=shard_seed(random_seed), shuffle_shard=(rank, world_size), resize=resize
        )
    return FeedOptions(
        rank=rank, world_size=world_size, seed=shard_seed(random_seed), resize=resize
    )
