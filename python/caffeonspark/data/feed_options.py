"""FeedOptions: how the queue-fed data layers of one net read their data.

A net (engine.Net, or every net of a solver.Solver) takes one FeedOptions value as its
`feed=` keyword; nothing process-wide changes what a net reads. The defaults are a single
process reading everything: shard 0 of 1, TRAIN sources shuffled per epoch with seed 0, an
epoch's last partial batch dropped, images not resized, decoded on 2 threads.

    net = engine.Net(path, phase=engine.TRAIN, feed=FeedOptions(rank=1, world_size=4))
    solver = Solver(path, feed=FeedOptions(resize=True))    # CaffeOnSpark's -resize

data/shard_rule.py builds the FeedOptions a rank of a data-parallel job uses.
Tests: tests/data/test_feed_options.py, tests/layers/test_memory_data_source.py,
tests/layers/test_cos_data.py, tests/layers/test_data.py.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FeedOptions"]


@dataclass(frozen=True)
class FeedOptions:
    """The feed settings of one net; invalid values raise ValueError at construction.

    rank, world_size: the shard TRAIN layers read (Data layers keep the records whose
        running index % world_size == rank, as Caffe's DataLayer does with several solvers;
        source-fed MemoryData and CoSData layers read partition rank of world_size). TEST
        layers always read everything.
    shuffle: shuffle source-fed TRAIN layers each epoch (CoSData only with
        cos_data_param.shuffle; TEST never shuffles).
    seed: the shuffle seed.
    remainder: what happens to an epoch's last partial batch: "drop", "wrap" or "partial"
        (data/sources/base.py).
    shuffle_shard: (rank, world_size) whose shuffle a TRAIN source draws when it already
        holds just that rank's share (a Spark task's spool file); None: the shard read.
    resize: CaffeOnSpark's -resize: source images are resized (bilinear) to the layer's
        height x width (CoSData: each top's) before the transform.
    decode_threads: threads each feeder decodes encoded images with.
    """

    rank: int = 0
    world_size: int = 1
    shuffle: bool = True
    seed: int = 0
    remainder: str = "drop"
    shuffle_shard: tuple[int, int] | None = None
    resize: bool = False
    decode_threads: int = 2

    def __post_init__(self) -> None:
        # Imported here: data.sources loads pyarrow, which light importers (the CLI) avoid.
        from caffeonspark.data.sources.base import REMAINDER_POLICIES

        _check_shard("rank", self.rank, self.world_size)
        if self.remainder not in REMAINDER_POLICIES:
            raise ValueError(
                f"remainder must be one of {REMAINDER_POLICIES}, got {self.remainder!r}"
            )
        if self.decode_threads < 1:
            raise ValueError(f"decode threads must be >= 1, got {self.decode_threads}")
        shuffle_shard = self.shuffle_shard
        if shuffle_shard is not None:
            rank, world_size = (int(v) for v in shuffle_shard)
            _check_shard("shuffle_shard rank", rank, world_size)
            shuffle_shard = (rank, world_size)
        # frozen: normalise the types through object.__setattr__ (numpy ints, lists in)
        for name, value in (
            ("rank", int(self.rank)),
            ("world_size", int(self.world_size)),
            ("shuffle", bool(self.shuffle)),
            ("seed", int(self.seed)),
            ("shuffle_shard", shuffle_shard),
            ("resize", bool(self.resize)),
            ("decode_threads", int(self.decode_threads)),
        ):
            object.__setattr__(self, name, value)


def _check_shard(what: str, rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"{what} {rank} is not in [0, world_size={world_size})")
