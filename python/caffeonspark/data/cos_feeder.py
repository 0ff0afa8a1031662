"""The feeding of a CoSData layer: its source, opened from cos_data_param, and the thread that
pushes its typed batches (feeders.NetFeeds starts one per CoSData layer of a built net).

`open_cos_source(layer, owner, ...)` picks the source class: `source_class`
com.yahoo.ml.caffe.DataFrameSource (or DataFrameSource, or none) reads
`cos_data_param.source` in its `dataframe_format` — "parquet" (ParquetSource: a file or a
folder of part files) or "arrow" (ArrowSource: an Arrow IPC file, what a Spark task spools;
`shuffle_shard` shuffles such a pre-cut share as its rank's shard, data/shard_rule.py);
`Parquet` / com.yahoo.ml.caffe.ImageDataFrame and `Arrow` name those directly. Each top
reads the column named like it (data/cos_tops.py). Datum sources (LMDB, SequenceFile) and
NumPy archives hold no typed columns and raise NotImplementedError; other dataframe formats
too. Partitioning, the per-epoch shuffle and the epoch-remainder rule are the sources' own
(data/sources/base.py).

`CosFeeder` iterates `source.batches(batch_size, remainder=...)` and pushes each batch as one
array per top (uint8 images, float32 numbers) into the layer's feed queue; the layer's
prefetch thread applies each top's transform_param and transpose natively. A failure (bad
row, missing file) closes the queue with the error, which Forward raises on the solver's
thread, naming the layer, the file, the row and the top.
Tests: tests/layers/test_cos_data.py.
"""

from __future__ import annotations

from typing import Any

from caffeonspark.data.cos_tops import top_specs
from caffeonspark.data.feeder_thread import FeederThread
from caffeonspark.data.native_queue import close_with_error
from caffeonspark.data.sources import ArrowSource, ParquetSource, Source, source_class
from caffeonspark.errors import ConfigError
from caffeonspark.proto import caffe_pb2

__all__ = ["DATAFRAME_SOURCE_CLASSES", "open_cos_source", "CosFeeder"]

DATAFRAME_SOURCE_CLASSES = ("", "DataFrameSource", "com.yahoo.ml.caffe.DataFrameSource")
_FORMATS: dict[str, type[Source]] = {"parquet": ParquetSource, "arrow": ArrowSource}


def _cos_class(layer: caffe_pb2.LayerParameter, owner: str) -> type[Source]:
    name = layer.source_class.strip()
    if name in DATAFRAME_SOURCE_CLASSES:
        fmt = layer.cos_data_param.dataframe_format.strip().lower()
        cls = _FORMATS.get(fmt)
        if cls is None:
            raise NotImplementedError(
                f"{owner}cos_data_param.dataframe_format '{fmt}' is not supported (only "
                f"{', '.join(_FORMATS)}); convert the DataFrame to Parquet"
            )
        return cls
    cls = source_class(name, owner)
    if cls not in (ParquetSource, ArrowSource):
        raise NotImplementedError(
            f"{owner}CoSData reads typed columns of a DataFrame (Parquet or Arrow); "
            f"source_class '{name}' ({cls.kind}) holds no such columns; convert it to Parquet "
            "(lmdb-to-parquet) or use a Data / MemoryData layer"
        )
    return cls


def open_cos_source(
    layer: caffe_pb2.LayerParameter,
    owner: str,
    *,
    partition: int = 0,
    num_partitions: int = 1,
    shuffle: bool = False,
    seed: int = 0,
    shuffle_shard: tuple[int, int] | None = None,
    resize: bool = False,
    decode_threads: int = 1,
) -> Source:
    """The source a CoSData layer reads (see the module doc)."""
    cls = _cos_class(layer, owner)
    p = layer.cos_data_param
    if not p.source:
        raise ConfigError(f"{owner}cos_data_param.source is missing")
    tops = top_specs(layer, owner)
    if not tops:
        raise ConfigError(f"{owner}cos_data_param describes no tops")
    return cls(
        p.source,
        partition=partition,
        num_partitions=num_partitions,
        shuffle=shuffle,
        seed=seed,
        shuffle_shard=shuffle_shard,
        decode_threads=decode_threads,
        owner=owner,
        tops=tops,
        resize_tops=resize,
    )


class CosFeeder(FeederThread):
    """Pushes a source's multi-top batches into one CoSData layer's feed queue."""

    def __init__(
        self, source: Source, feed: Any, batch_size: int, owner: str, remainder: str = "drop"
    ) -> None:
        self.source = source
        self.feed = feed
        self.batch_size = int(batch_size)
        self.owner = owner
        self.remainder = remainder

    def run(self) -> None:
        try:
            for batch in self.source.batches(self.batch_size, remainder=self.remainder):
                if not self.feed.push_tops(list(batch.data)):
                    return
        except BaseException as err:  # surfaces in Forward, on the solver's thread
            close_with_error(self.feed, err, self.owner)
        finally:
            self.source.close()

    def thread_name(self) -> str:
        return f"cos-feeder {self.source.path}"

    def end_stream(self) -> None:
        self.feed.close()
