"""Spark-side data sources: the net's data layer as a DataFrame whose partitions the engines
read (CaffeOnSpark's DataSource.getSource).

    source = DataSource.getSource(conf, isTrain=True)       # from the net's data layer
    source = DataSource.fromDataFrame(conf, df, isTrain=False)
    df = source.dataframe(spark)                            # one row per sample

Which DataFrame:
- MemoryData `source_class: "com.yahoo.ml.caffe.ImageDataFrame"` (or "Parquet"):
  `spark.read.format(memory_data_param.dataframe_format).load(source)`: any URI Spark reads.
- MemoryData naming another class of caffeonspark.data.sources (LMDB, SequenceFile, NumPy,
  Arrow, with CaffeOnSpark's Java names), and Data layers (backend LMDB): a file source read
  by `-lmdb_partitions` tasks (default -clusterSize), task i reading partition i of n with the
  same Source class the engine uses; rows in the image schema (id = the record's key, label
  double, channels, height, width, encoded = false, data = CHW uint8 pixels, decoded and, with
  -resize, resized), or `data` array<float> for float items. The path must be visible to the
  executors (local mode, or a shared mount).
- CoSData (`source_class: "com.yahoo.ml.caffe.DataFrameSource"`, CaffeOnSpark's
  DataFrameSource): `spark.read.format(cos_data_param.dataframe_format).load(source)`, one
  column per cos_data_param top, named like it and typed as the top says (data/cos_tops.py;
  other columns, e.g. `id`, ride along). The layer stays a CoSData layer on the executors:
  training reads the rank's Arrow spool file (`dataframe_format: "arrow"`), test / features
  push each batch's per-top arrays into it (infer_task.py).
- fromDataFrame: the DataFrame as given (CoSData nets: its columns must name the tops).
The executors receive partitions as Arrow record batches (mapInArrow) and read them with
caffeonspark.data.sources.ArrowSource: `dataframe_column_select` renames ("col AS data"),
sizes default to memory_data_param, `image_encoded` says whether bytes are image files.

`shard_order(df)` says how the training DataFrame becomes one shard per rank
(data/shard_rule.py): kept when it has -clusterSize partitions (file sources, given
DataFrames), always split for ImageDataFrame (Parquet numbered in the launcher's order).
`memory_layer(...)` is the layer the executor's net uses in place of the data layer (a Data
layer becomes MemoryData with its datum shape, or the crop size when cropping; CoSData stays
CoSData, reading the file it is given or, given none, fed by push).
A missing or unreadable source fails here, on the driver, naming the layer and the path.
Tests: tests/spark/test_spark.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from caffeonspark.data.cos_feeder import DATAFRAME_SOURCE_CLASSES
from caffeonspark.data.cos_tops import top_specs
from caffeonspark.data.feeders import layer_decode_mode
from caffeonspark.data.native_queue import layer_owner
from caffeonspark.data.sources import ParquetSource, source_class
from caffeonspark.errors import ConfigError, IoError
from caffeonspark.proto import caffe_pb2
from caffeonspark.spark.config import Config, local_path_of

__all__ = [
    "DataSource",
    "DataFrameSource",
    "ImageDataFrameSource",
    "CosDataSource",
    "FileSource",
    "ReaderOptions",
]

log = logging.getLogger("caffeonspark")

_DATAFRAME_CLASSES = ("com.yahoo.ml.caffe.ImageDataFrame", "Parquet", "ImageDataFrame")


@dataclass(frozen=True)
class ReaderOptions:
    """How an executor turns the partition's Arrow columns into items (ArrowSource options)."""

    select: tuple[str, ...] = ()
    default_shape: tuple[int, int, int] | None = None
    encoded_default: bool = False
    mode: str = "native"
    resize: tuple[int, int] | None = None
    resize_tops: bool = False  # CoSData: decoded images resized to each top's size (-resize)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def resizes(self) -> bool:
        """Whether -resize applies (FeedOptions.resize of the executors' nets)."""
        return self.resize is not None or self.resize_tops

    def source_options(self) -> dict[str, Any]:
        return {
            "select": list(self.select),
            "default_shape": self.default_shape,
            "encoded_default": self.encoded_default,
            "mode": self.mode,
            "resize": self.resize,
        }


class DataSource:
    """One data layer of the net (the TRAIN one with isTrain, else the TEST one), fed from
    a DataFrame. Subclasses make the DataFrame."""

    def __init__(self, conf: Config, is_train: bool, layer: caffe_pb2.LayerParameter) -> None:
        self.conf = conf
        self.is_train = bool(is_train)
        self.phase = caffe_pb2.TRAIN if is_train else caffe_pb2.TEST
        self.layer = layer
        self.owner = layer_owner(layer.name, layer.type, conf.net_path or conf.solver_path or "")
        self.mode = layer_decode_mode(layer, self.owner)
        if layer.type == "MemoryData":
            p = layer.memory_data_param
            self.batch_size = int(p.batch_size)
            self.item_shape: tuple[int, int, int] = (int(p.channels), int(p.height), int(p.width))
        elif layer.type == "CoSData":
            self.batch_size = int(layer.cos_data_param.batch_size)
            self.tops = top_specs(layer, self.owner)
            if not self.tops:
                raise ConfigError(f"{self.owner}cos_data_param describes no tops")
            self.item_shape = self.tops[0].item
        else:
            self.batch_size = int(layer.data_param.batch_size)
            self.item_shape = self._datum_shape()
        if self.batch_size < 1:
            raise ConfigError(f"{self.owner}batch_size must be positive")

    # -- construction ----------------------------------------------------------------------

    @staticmethod
    def getSource(conf: Config, isTrain: bool = True) -> DataSource:
        """The Spark source of the net's TRAIN (isTrain) or TEST data layer."""
        layer = conf.data_layer(caffe_pb2.TRAIN if isTrain else caffe_pb2.TEST)
        if layer.type == "Data":
            if layer.data_param.backend != caffe_pb2.DataParameter.LMDB:
                raise ConfigError(
                    f"layer '{layer.name}' (Data): only backend LMDB can feed Spark "
                    f"(got {caffe_pb2.DataParameter.DB.Name(layer.data_param.backend)})"
                )
            return FileSource(conf, isTrain, layer, "LMDB", layer.data_param.source)
        if layer.type == "CoSData":
            return CosDataSource(conf, isTrain, layer)
        name = layer.source_class.strip()
        path = layer.memory_data_param.source
        if not name or not path:
            raise ConfigError(
                f"layer '{layer.name}' (MemoryData) names no source_class + "
                "memory_data_param.source; give them, or use DataSource.fromDataFrame"
            )
        if name in _DATAFRAME_CLASSES:
            return ImageDataFrameSource(conf, isTrain, layer, path)
        return FileSource(conf, isTrain, layer, name, path)

    @staticmethod
    def fromDataFrame(conf: Config, df: Any, isTrain: bool = True) -> DataSource:
        """A source over a DataFrame you already have (columns as the layer's select says)."""
        layer = conf.data_layer(caffe_pb2.TRAIN if isTrain else caffe_pb2.TEST)
        if layer.type == "CoSData":
            return CosDataSource(conf, isTrain, layer, df)
        return DataFrameSource(conf, isTrain, layer, df)

    get_source = getSource
    from_dataframe = fromDataFrame

    # -- what executors need -----------------------------------------------------------------

    def dataframe(self, spark: Any) -> Any:
        """The DataFrame of samples (one row each)."""
        raise NotImplementedError

    def shard_order(self, df: Any) -> tuple[bool, Any]:
        """(keep, order) for placement.with_partitions: whether partitions of `df` are the
        source's own shards when there are -clusterSize of them, and the storage order as
        (row-number column, row count), None for the DataFrame's own order."""
        return True, None

    @property
    def reader(self) -> ReaderOptions:
        p = self.layer.memory_data_param
        select = tuple(p.dataframe_column_select) if self.layer.type == "MemoryData" else ()
        return ReaderOptions(
            select=select,
            default_shape=self.item_shape,
            encoded_default=bool(p.image_encoded) if self.layer.type == "MemoryData" else False,
            mode=self.mode,
            resize=self._resize(),
        )

    def _resize(self) -> tuple[int, int] | None:
        if not self.conf.resize or self.layer.type != "MemoryData":
            return None
        return self.item_shape[1], self.item_shape[2]

    def memory_layer(
        self, batch_size: int | None = None, source_class: str = "", source: str = ""
    ) -> caffe_pb2.LayerParameter:
        """The MemoryData layer the executor's net uses instead of this data layer."""
        out = caffe_pb2.LayerParameter()
        out.CopyFrom(self.layer)
        if self.layer.type == "Data":
            out.type = "MemoryData"
            out.ClearField("data_param")
            if self.layer.data_param.force_encoded_color:
                out.transform_param.force_color = True
            channels, height, width = self.item_shape
            crop = int(self.layer.transform_param.crop_size)
            p = out.memory_data_param
            p.channels, p.height, p.width = channels, crop or height, crop or width
        p = out.memory_data_param
        p.batch_size = int(batch_size or self.batch_size)
        out.source_class = source_class
        p.source = source
        return out

    def _datum_shape(self) -> tuple[int, int, int]:
        from caffeonspark.data.lmdb_feeder import first_datum

        path = local_path_of(self.layer.data_param.source, "conf")
        shape, _ = first_datum(path, self.owner, layer_decode_mode(self.layer, self.owner))
        return shape

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.owner.rstrip(': ')}, batch {self.batch_size})"


class DataFrameSource(DataSource):
    """A DataFrame given by the caller."""

    def __init__(self, conf: Config, is_train: bool, layer: Any, df: Any) -> None:
        super().__init__(conf, is_train, layer)
        self._df = df

    def dataframe(self, spark: Any) -> Any:
        return self._df


class ImageDataFrameSource(DataSource):
    """CaffeOnSpark's ImageDataFrame: a stored DataFrame (Parquet by default)."""

    def __init__(self, conf: Config, is_train: bool, layer: Any, path: str) -> None:
        super().__init__(conf, is_train, layer)
        self.path = path
        self.format = layer.memory_data_param.dataframe_format or "parquet"
        if "://" not in path or path.startswith("file:"):
            local = local_path_of(path, "conf")
            if not os.path.exists(local):
                raise IoError(f"{self.owner}DataFrame source '{path}' does not exist")
            self.path = local

    def dataframe(self, spark: Any) -> Any:
        return spark.read.format(self.format).load(self.path)

    def shard_order(self, df: Any) -> tuple[bool, Any]:
        """Spark splits files by bytes, so its partitions are never the shards; a local
        Parquet source is numbered as the launcher's ParquetSource reads it (sorted files,
        rows in order: _metadata.file_path / row_index)."""
        if self.format != "parquet" or "://" in self.path:
            return False, None
        return False, parquet_order(df, self.path, self.owner)


class CosDataSource(DataSource):
    """CaffeOnSpark's DataFrameSource for a CoSData layer: a stored DataFrame (or one given)
    with one column per cos_data_param top."""

    _SPARK_FORMATS = {"com.yahoo.ml.caffe.ImageDataFrame": "parquet", "ImageDataFrame": "parquet",
                      "Parquet": "parquet"}

    def __init__(self, conf: Config, is_train: bool, layer: Any, df: Any = None) -> None:
        super().__init__(conf, is_train, layer)
        self._df = df
        self.path = ""
        self.format = ""
        if df is not None:
            return
        p = layer.cos_data_param
        name = layer.source_class.strip()
        if name in DATAFRAME_SOURCE_CLASSES:
            self.format = p.dataframe_format.strip().lower() or "parquet"
        elif name in self._SPARK_FORMATS:
            self.format = self._SPARK_FORMATS[name]
        else:
            raise ConfigError(
                f"{self.owner}source_class '{name}': a CoSData layer on Spark reads a DataFrame "
                "(com.yahoo.ml.caffe.DataFrameSource with cos_data_param.dataframe_format)"
            )
        if self.format == "arrow":
            raise ConfigError(
                f"{self.owner}dataframe_format \"arrow\": Spark reads no Arrow IPC files; give "
                "the DataFrame as Parquet (or any format spark.read knows)"
            )
        if not p.source:
            raise ConfigError(f"{self.owner}cos_data_param.source is missing")
        self.path = p.source
        if "://" not in self.path or self.path.startswith("file:"):
            local = local_path_of(self.path, "conf")
            if not os.path.exists(local):
                raise IoError(f"{self.owner}DataFrame source '{self.path}' does not exist")
            self.path = local

    def dataframe(self, spark: Any) -> Any:
        df = self._df
        if df is None:
            df = spark.read.format(self.format).load(self.path)
        missing = [top.name for top in self.tops if top.name not in df.columns]
        if missing:
            where = f"'{self.path}'" if self.path else "the DataFrame given"
            raise ConfigError(
                f"{self.owner}{where} has no column for top(s) {', '.join(missing)} "
                f"(columns: {', '.join(df.columns)}); each cos_data_param top reads the "
                "column named like it"
            )
        return df

    def shard_order(self, df: Any) -> tuple[bool, Any]:
        """A given DataFrame keeps its partitions (as DataFrameSource); a stored one is
        split, a local Parquet numbered in the launcher's order (as ImageDataFrameSource)."""
        if self._df is not None:
            return True, None
        if self.format != "parquet" or "://" in self.path:
            return False, None
        return False, parquet_order(df, self.path, self.owner)

    @property
    def reader(self) -> ReaderOptions:
        return ReaderOptions(mode=self.mode, resize_tops=bool(self.conf.resize))

    def memory_layer(
        self, batch_size: int | None = None, source_class: str = "", source: str = ""
    ) -> caffe_pb2.LayerParameter:
        """The CoSData layer itself: reading `source` as `source_class` says ("Arrow": the
        rank's spool file, "Parquet": trainWithValidation's scratch copy), or, with neither,
        fed by push (test / features)."""
        out = caffe_pb2.LayerParameter()
        out.CopyFrom(self.layer)
        p = out.cos_data_param
        p.batch_size = int(batch_size or self.batch_size)
        if source_class:
            formats = {"Arrow": "arrow", "Parquet": "parquet"}
            if source_class not in formats:
                raise ValueError(f"CoSData executors read Arrow or Parquet, not {source_class}")
            out.source_class = DATAFRAME_SOURCE_CLASSES[-1]
            p.dataframe_format = formats[source_class]
        else:
            out.ClearField("source_class")
        p.source = source
        if not source:
            p.ClearField("source")
        return out

    def __repr__(self) -> str:
        where = self.path or "a given DataFrame"
        return f"CosDataSource({self.owner.rstrip(': ')}, {where}, batch {self.batch_size})"


class FileSource(DataSource):
    """A file source (LMDB, SequenceFile, NumPy, Arrow) read by n Spark tasks."""

    def __init__(self, conf: Config, is_train: bool, layer: Any, cls_name: str, path: str) -> None:
        super().__init__(conf, is_train, layer)
        self.cls_name = cls_name
        self.path = local_path_of(path, "conf")
        cls = source_class(cls_name, self.owner)
        options = self._source_options(0, 1)
        with cls(self.path, **options) as probe:  # fails here, naming the layer and path
            first = next(probe.epoch(0), None)
            if first is None:
                raise IoError(f"{self.owner}{probe.kind} source '{self.path}' holds no records")
            self.floats = first.data.dtype != np.uint8
            self.record_shape = tuple(int(d) for d in first.data.shape[1:])
        if self.layer.type == "MemoryData" and self.floats and self.record_shape != self.item_shape:
            raise ConfigError(
                f"{self.owner}source '{self.path}' holds float items of shape "
                f"{self.record_shape}; memory_data_param says {self.item_shape}"
            )

    def _source_options(self, partition: int, num_partitions: int) -> dict[str, Any]:
        options: dict[str, Any] = {
            "partition": partition,
            "num_partitions": num_partitions,
            "mode": self.mode,
            "resize": self._resize(),
            "owner": self.owner,
        }
        if source_class(self.cls_name) is ParquetSource:
            p = self.layer.memory_data_param
            options.update(
                select=list(p.dataframe_column_select),
                default_shape=self.item_shape,
                encoded_default=p.image_encoded,
            )
        return options

    @property
    def reader(self) -> ReaderOptions:
        # Rows are already decoded, resized and named data / label.
        return ReaderOptions(default_shape=self.record_shape, mode=self.mode)

    @property
    def schema(self) -> str:
        if self.floats:
            return "id string, label double, data array<float>"
        return (
            "id string, label double, channels int, height int, width int, encoded boolean, "
            "data binary"
        )

    def dataframe(self, spark: Any) -> Any:
        n = self.conf.lmdbPartitions
        reader = _PartitionReader(self.cls_name, self.path, self, n)
        return spark.range(0, n, 1, n).mapInArrow(reader, self.schema)


class _PartitionReader:
    """mapInArrow function: task i yields partition i of n of a file source."""

    def __init__(self, cls_name: str, path: str, source: FileSource, n: int) -> None:
        self.cls_name = cls_name
        self.path = path
        self.n = n
        self.floats = source.floats
        self.options = {p: source._source_options(p, n) for p in range(n)}

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        parts = [int(i) for batch in batches for i in batch.column(0).to_numpy()]
        cls = source_class(self.cls_name)
        for part in parts:
            with cls(self.path, **self.options[part]) as source:
                for chunk in source.epoch(0):
                    yield self._batch(source, chunk)

    def _batch(self, source: Any, chunk: Any) -> pa.RecordBatch:
        k = len(chunk.ids)
        ids = pa.array(source.record_keys(chunk.ids), pa.string())
        labels = pa.array(chunk.labels.astype(np.float64))
        if self.floats:
            flat = np.ascontiguousarray(chunk.data, dtype=np.float32).reshape(k, -1)
            offsets = pa.array(np.arange(k + 1, dtype=np.int32) * flat.shape[1])
            data = pa.ListArray.from_arrays(offsets, pa.array(flat.ravel()))
            return pa.RecordBatch.from_arrays([ids, labels, data], ["id", "label", "data"])
        c, h, w = (int(d) for d in chunk.data.shape[1:])
        pixels = np.ascontiguousarray(chunk.data).reshape(-1)
        offsets = pa.array(np.arange(k + 1, dtype=np.int32) * (c * h * w))
        data = pa.BinaryArray.from_buffers(
            pa.binary(), k, [None, offsets.buffers()[1], pa.py_buffer(pixels)]
        )
        const = [pa.array(np.full(k, v, np.int32)) for v in (c, h, w)]
        encoded = pa.array(np.zeros(k, dtype=bool))
        return pa.RecordBatch.from_arrays(
            [ids, labels, *const, encoded, data],
            ["id", "label", "channels", "height", "width", "encoded", "data"],
        )


def parquet_order(df: Any, path: str, owner: str) -> Any:
    """(row number in ParquetSource's order, row count), or None (with a warning) when the
    files Spark reads are not those ParquetSource lists."""
    from urllib.parse import unquote

    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    from caffeonspark.data.parquet_io import parquet_files

    offsets: dict[str, int] = {}
    total = 0
    for file in parquet_files(path):
        offsets[os.path.realpath(file)] = total
        total += pq.ParquetFile(file).metadata.num_rows
    seen = [r[0] for r in df.select("_metadata.file_path").distinct().collect()]
    mapping = {}
    for uri in seen:
        local = os.path.realpath(unquote(uri[len("file:"):] if uri.startswith("file:") else uri))
        if local not in offsets:
            log.warning("%sSpark reads '%s', which the launcher's Parquet source does not list: "
                        "the shards follow Spark's file order", owner, uri)
            return None
        mapping[uri] = offsets[local]
    if not mapping:
        return None
    offset = F.create_map(*[v for uri, o in mapping.items() for v in (F.lit(uri), F.lit(o).cast("long"))])
    index = offset[F.col("_metadata.file_path")] + F.col("_metadata.row_index")
    return index, total
