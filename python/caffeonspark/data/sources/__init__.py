"""Data sources read by partition, with epochs and a seeded per-epoch shuffle (base.py has
the contract and the batching rule), and the registry that MemoryData layers name with
`source_class`:

    LMDB          LmdbSource      alias com.yahoo.ml.caffe.LMDB
    SequenceFile  SeqFileSource   alias com.yahoo.ml.caffe.SeqImageDataSource
    Parquet       ParquetSource   alias com.yahoo.ml.caffe.ImageDataFrame
    NumPy         NumpySource     (.npz with `data` and `label`)
    Arrow         ArrowSource     (an Arrow IPC file, or a table in memory: Spark partitions)

`source_class(name, owner)` resolves a name (ConfigError naming the owner and the known
classes otherwise). Tests: tests/data/test_sources.py, tests/layers/test_memory_data_source.py.
"""

from __future__ import annotations

from caffeonspark.data.sources.arrow_items import ArrowItems
from caffeonspark.data.sources.arrow_source import ArrowSource
from caffeonspark.data.sources.base import REMAINDER_POLICIES, Batch, Chunk, Source
from caffeonspark.data.sources.lmdb_source import LmdbSource
from caffeonspark.data.sources.numpy_source import NumpySource
from caffeonspark.data.sources.parquet_source import ParquetSource
from caffeonspark.data.sources.seqfile_source import SeqFileSource
from caffeonspark.errors import ConfigError

__all__ = [
    "SOURCE_CLASSES",
    "REMAINDER_POLICIES",
    "Batch",
    "Chunk",
    "Source",
    "ArrowItems",
    "ArrowSource",
    "LmdbSource",
    "NumpySource",
    "ParquetSource",
    "SeqFileSource",
    "source_class",
]

SOURCE_CLASSES: dict[str, type[Source]] = {
    "LMDB": LmdbSource,
    "SequenceFile": SeqFileSource,
    "Parquet": ParquetSource,
    "NumPy": NumpySource,
    "Arrow": ArrowSource,
    "com.yahoo.ml.caffe.LMDB": LmdbSource,
    "com.yahoo.ml.caffe.SeqImageDataSource": SeqFileSource,
    "com.yahoo.ml.caffe.ImageDataFrame": ParquetSource,
}


def source_class(name: str, owner: str = "") -> type[Source]:
    cls = SOURCE_CLASSES.get(name.strip())
    if cls is None:
        raise ConfigError(
            f"{owner}unknown source_class '{name}'; known classes: {', '.join(SOURCE_CLASSES)}"
        )
    return cls
