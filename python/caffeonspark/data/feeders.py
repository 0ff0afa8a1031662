"""Hooks between engine.Net and the engine's queue-fed data layers (MemoryData, Data,
CoSData, ImageData, HDF5Data, WindowData) and HDF5Output.

Two steps, called by python/caffeonspark/engine.py:

1. `prepare_data_params(layer, params, where)`, while the layer specs are built (before the
   engine sets the net up), adds what the engine cannot read itself:
   - Data layers (backend LMDB): `data_param["datum_shape"] = [C, H, W]`, read from the
     first Datum of the source (decoded when encoded, in the mode transform_param's
     force_color / force_gray select; an engine-only field, not in caffe.proto): the top
     shape (batch_size, C, crop or H, crop or W) is known only from the data. A missing source
     raises IoError naming the layer and the path here, at construction. Other backends
     are left alone (the engine refuses LevelDB with a ConfigError).
   - Any layer with transform_param.mean_file (CoSData: any top's): `transform_param[
     "mean_file_data"] = {"shape": [C, H, W], "data": float32 bytes}` from the .binaryproto
     (legacy num = 1).
   - ImageData: `image_data_param["image_shape"]` = (C, H, W) of the first listed image
     (decoded, resized); HDF5Data: `hdf5_data_param["top_shapes"]` = the row shape of each
     top's dataset in the first listed file; WindowData: `window_data_param[
     "image_channels"]` from the window file (all engine-only fields).
2. `NetFeeds(native_net, specs, layers, feed)`, once the native net exists, follows the net's
   FeedOptions `feed` (data/feed_options.py) and starts one LmdbFeeder daemon thread per
   Data layer (feed.rank of feed.world_size, used in TRAIN only; encoded images decoded on
   feed.decode_threads threads), one SourceFeeder thread per MemoryData layer that names
   `source_class` + `memory_data_param.source` (the source class from data/sources/,
   CaffeOnSpark's Java names included; partition rank of world_size, shuffled per epoch
   with feed.seed unless feed.shuffle is off, in TRAIN; everything in order in TEST; resized
   to the layer's height x width with feed.resize; an epoch's remainder as feed.remainder;
   a pre-cut share shuffled as feed.shuffle_shard; the rule ranks follow is
   data/shard_rule.py), one CosFeeder thread per CoSData layer (data/cos_feeder.py: its
   DataFrame source, partition rank of world_size in TRAIN, shuffled per epoch when
   cos_data_param.shuffle and feed.shuffle allow, as feed.shuffle_shard for a pre-cut
   share, images resized to each top with feed.resize; a CoSData layer naming neither
   source_class nor source is fed by push through `cos_feed(name)`), one reader thread
   per ImageData (data/image_list_feeder.py), HDF5Data (data/hdf5_feeder.py) and WindowData
   (data/window_feeder.py) layer (TRAIN: rank of world_size; the layers' own shuffle unless
   feed.shuffle is off; feed.seed), one HDF5Writer per HDF5Output layer (its file is
   published when the net closes), and hands out MemoryDataFeeders; close()
   stops and joins the threads (engine.Net calls it on close() and when the Net is
   collected).
   An unknown source_class is a ConfigError naming the layer and the known classes; a
   missing source an IoError naming the layer and the path; a source whose items do not fit
   the layer a ShapeError, all when the net is built.

Tests: tests/layers/test_data.py, tests/layers/test_memory_data.py,
tests/layers/test_cos_data.py, tests/layers/test_image_data.py,
tests/layers/test_hdf5_data.py, tests/layers/test_window_data.py.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from caffeonspark import model_io
from caffeonspark._native import _engine
from caffeonspark.data.cos_feeder import CosFeeder, open_cos_source
from caffeonspark.data.feed_options import FeedOptions
from caffeonspark.data.hdf5_feeder import Hdf5Feeder, Hdf5Reader, HDF5Writer
from caffeonspark.data.image_codec import decode_mode
from caffeonspark.data.image_list_feeder import ImageListFeeder, ImageListReader
from caffeonspark.data.lmdb_feeder import LmdbFeeder, first_datum
from caffeonspark.data.native_queue import MemoryDataFeeder, layer_owner
from caffeonspark.data.source_feeder import SourceFeeder
from caffeonspark.data.sources import ArrowItems, source_class
from caffeonspark.data.window_feeder import WindowFeeder, WindowSampler
from caffeonspark.errors import ConfigError, FormatError, IoError, ShapeError
from caffeonspark.proto import caffe_pb2

__all__ = [
    "QUEUE_FED_TYPES",
    "layer_decode_mode",
    "prepare_data_params",
    "NetFeeds",
]

QUEUE_FED_TYPES = ("Data", "MemoryData", "CoSData", "ImageData", "HDF5Data", "WindowData")
# Queue-fed layers whose feeder thread reads a source of its own (for skip_batches).
_READER_TYPES = ("ImageData", "HDF5Data", "WindowData")


def layer_decode_mode(layer: caffe_pb2.LayerParameter, owner: str = "") -> str:
    """How the layer's encoded images are decoded: transform_param force_color / force_gray
    (Data's legacy data_param.force_encoded_color means force_color)."""
    transform = layer.transform_param
    force_color = transform.force_color or (
        layer.type == "Data" and layer.data_param.force_encoded_color
    )
    return decode_mode(force_color, transform.force_gray, owner)


def prepare_data_params(
    layer: caffe_pb2.LayerParameter, params: dict[str, Any], where: str = ""
) -> dict[str, Any]:
    """`params` (netspec.layer_params) plus the data the engine needs from files."""
    owner = layer_owner(layer.name, layer.type, where)
    transforms = [params.get("transform_param")]
    if layer.type == "CoSData":
        transforms += [top.get("transform_param") for top in params["cos_data_param"]["top"]]
    for transform in transforms:
        if transform is not None and transform.get("mean_file"):
            transform["mean_file_data"] = _mean_file_data(transform["mean_file"], owner)
    if layer.type == "Data" and layer.data_param.backend == caffe_pb2.DataParameter.LMDB:
        shape, _ = first_datum(layer.data_param.source, owner, layer_decode_mode(layer, owner))
        params["data_param"]["datum_shape"] = list(shape)
    elif layer.type == "ImageData" and layer.image_data_param.source:
        reader = ImageListReader(layer.image_data_param, owner=owner)
        shape = reader.image(reader.lines[0]).shape
        params["image_data_param"]["image_shape"] = [int(d) for d in shape]
    elif layer.type == "HDF5Data" and layer.hdf5_data_param.source:
        reader = Hdf5Reader(layer.hdf5_data_param.source, list(layer.top), owner=owner)
        params["hdf5_data_param"]["top_shapes"] = [
            {"dim": [int(d) for d in shape]} for shape in reader.row_shapes
        ]
    elif layer.type == "WindowData" and layer.window_data_param.source:
        sampler = WindowSampler(layer, params, owner)
        params["window_data_param"]["image_channels"] = sampler.file.images[0][1][0]
    return params


def _mean_file_data(path: str, owner: str) -> dict[str, Any]:
    try:
        mean = model_io.read_binaryproto(path)
    except (IoError, FormatError) as err:
        raise type(err)(f"{owner}mean_file: {err}") from None
    if mean.ndim == 4 and mean.shape[0] == 1:
        mean = mean[0]
    elif mean.ndim == 2:
        mean = mean[np.newaxis]
    if mean.ndim != 3:
        raise FormatError(
            f"{owner}mean_file '{path}' must hold one (C, H, W) image, got shape {mean.shape}"
        )
    return {
        "shape": [int(d) for d in mean.shape],
        "data": np.ascontiguousarray(mean, dtype="<f4").tobytes(),
    }


class NetFeeds:
    """The data feeding of one built net: LMDB feeder threads and MemoryData feeders, all
    following `feed` (data/feed_options.py)."""

    def __init__(
        self,
        native_net: Any,
        specs: list[dict[str, Any]],
        layers: list[Any],
        feed: FeedOptions,
    ) -> None:
        self._queues: dict[str, tuple[Any, Any]] = {}
        self._owners: dict[str, str] = {}
        self._layers: dict[str, caffe_pb2.LayerParameter] = {}
        self._lmdb: dict[str, LmdbFeeder] = {}
        self._sources: dict[str, SourceFeeder] = {}
        self._cos: dict[str, CosFeeder] = {}
        self._readers: dict[str, Any] = {}  # ImageData, HDF5Data, WindowData feeders
        self._writers: dict[str, HDF5Writer] = {}
        self._closed = False
        self._feed = feed
        for index, (spec, layer) in enumerate(zip(specs, layers, strict=True)):
            if spec["type"] == "HDF5Output":
                self._writers[spec["name"]] = self._start_writer(native_net, index, spec, layer)
                continue
            if spec["type"] not in QUEUE_FED_TYPES:
                continue
            name = spec["name"]
            self._queues[name] = tuple(_engine.data_layer_queues(native_net, index))
            self._owners[name] = layer_owner(name, spec["type"], spec["where"])
            self._layers[name] = layer
        try:
            for name, layer in self._layers.items():
                if layer.type == "Data":
                    self._lmdb[name] = self._start_lmdb(name, layer, specs)
                elif layer.type in _READER_TYPES:
                    spec = next(s for s in specs if s["name"] == name)
                    self._readers[name] = self._start_reader(name, layer, spec)
                elif layer.type == "CoSData":
                    if layer.source_class or layer.cos_data_param.source:
                        self._cos[name] = self._start_cos(name, layer)
                elif layer.source_class or layer.memory_data_param.source:
                    spec = next(s for s in specs if s["name"] == name)
                    self._sources[name] = self._start_source(name, layer, spec)
        except BaseException:
            self.close()
            raise

    def _start_lmdb(
        self, name: str, layer: caffe_pb2.LayerParameter, specs: list[dict[str, Any]]
    ) -> LmdbFeeder:
        spec = next(s for s in specs if s["name"] == name)
        train = layer.phase == caffe_pb2.TRAIN
        mode = layer_decode_mode(layer, self._owners[name])
        _, encoded = first_datum(layer.data_param.source, self._owners[name], mode)
        return LmdbFeeder(
            layer.data_param.source,
            self._queues[name][0],
            batch_size=int(layer.data_param.batch_size),
            shape=tuple(spec["params"]["data_param"]["datum_shape"]),
            train=train,
            rank=self._feed.rank if train else 0,
            world_size=self._feed.world_size if train else 1,
            owner=self._owners[name],
            mode=mode,
            decode_threads=self._feed.decode_threads if encoded else 1,
        ).start()

    def _start_reader(
        self, name: str, layer: caffe_pb2.LayerParameter, spec: dict[str, Any]
    ) -> Any:
        """The feeder thread of an ImageData, HDF5Data or WindowData layer."""
        train = layer.phase == caffe_pb2.TRAIN
        feed = self._feed
        owner = self._owners[name]
        queue = self._queues[name][0]
        shard = {"rank": feed.rank if train else 0, "world_size": feed.world_size if train else 1}
        if layer.type == "ImageData":
            p = layer.image_data_param
            reader = ImageListReader(
                p, owner=owner, shuffle_seed=feed.seed, train=train, **shard
            )
            if not feed.shuffle:
                reader.shuffle = False
            shape = tuple(spec["params"]["image_data_param"]["image_shape"])
            return ImageListFeeder(
                reader,
                queue,
                batch_size=int(p.batch_size),
                shape=shape,  # type: ignore[arg-type]
                decode_threads=feed.decode_threads,
            ).start()
        if layer.type == "HDF5Data":
            h = layer.hdf5_data_param
            hdf5 = Hdf5Reader(
                h.source,
                list(layer.top),
                shuffle=h.shuffle and feed.shuffle,
                seed=feed.seed,
                train=train,
                owner=owner,
                **shard,
            )
            return Hdf5Feeder(hdf5, queue, int(h.batch_size)).start()
        sampler = WindowSampler(layer, spec["params"], owner)
        return WindowFeeder(sampler, queue, seed=feed.seed, rank=shard["rank"]).start()

    def _start_writer(
        self, native_net: Any, index: int, spec: dict[str, Any], layer: caffe_pb2.LayerParameter
    ) -> HDF5Writer:
        owner = layer_owner(spec["name"], spec["type"], spec["where"])
        file_name = layer.hdf5_output_param.file_name
        folder = os.path.dirname(os.path.abspath(file_name))
        if not os.path.isdir(folder):
            raise IoError(
                f"{owner}hdf5_output_param.file_name '{file_name}': folder '{folder}' does not "
                "exist"
            )
        queue = _engine.output_layer_queue(native_net, index)
        return HDF5Writer(file_name, queue, owner).start()

    def _start_cos(self, name: str, layer: caffe_pb2.LayerParameter) -> CosFeeder:
        train = layer.phase == caffe_pb2.TRAIN
        feed = self._feed
        source = open_cos_source(
            layer,
            self._owners[name],
            partition=feed.rank if train else 0,
            num_partitions=feed.world_size if train else 1,
            shuffle=train and layer.cos_data_param.shuffle and feed.shuffle,
            seed=feed.seed,
            shuffle_shard=feed.shuffle_shard if train else None,
            resize=feed.resize,
            decode_threads=feed.decode_threads,
        )
        return CosFeeder(
            source,
            self._queues[name][0],
            int(layer.cos_data_param.batch_size),
            self._owners[name],
            remainder=feed.remainder,
        ).start()

    def _start_source(
        self, name: str, layer: caffe_pb2.LayerParameter, spec: dict[str, Any]
    ) -> SourceFeeder:
        owner = self._owners[name]
        p = layer.memory_data_param
        if not layer.source_class:
            raise ConfigError(
                f"{owner}memory_data_param.source '{p.source}' needs a source_class (e.g. "
                "com.yahoo.ml.caffe.LMDB)"
            )
        cls = source_class(layer.source_class, owner)
        if not p.source:
            raise ConfigError(
                f"{owner}source_class '{layer.source_class}' needs memory_data_param.source"
            )
        train = layer.phase == caffe_pb2.TRAIN
        feed = self._feed
        feeder = self.memory_data_feeder(name)
        channels, height, width = feeder.item_shape
        options: dict[str, Any] = {
            "partition": feed.rank if train else 0,
            "num_partitions": feed.world_size if train else 1,
            "shuffle": feed.shuffle and train,
            "seed": feed.seed,
            "mode": feeder.mode,
            "resize": (height, width) if feed.resize else None,
            "decode_threads": feed.decode_threads,
            # Whole batches per read: a batch is then a view of one chunk, never a
            # concatenation of two (the record order does not depend on the chunk size).
            "chunk_size": feeder.batch_size * max(1, 256 // feeder.batch_size),
            "owner": owner,
        }
        if train and feed.shuffle_shard is not None:
            options["shuffle_shard"] = feed.shuffle_shard
        if issubclass(cls, ArrowItems):
            options.update(
                select=list(p.dataframe_column_select),
                default_shape=(channels, height, width),
                encoded_default=p.image_encoded,
            )
        source = cls(p.source, **options)
        try:
            self._check_source_shape(source, feeder, owner, layer)
        except BaseException:
            source.close()
            raise
        return SourceFeeder(
            source,
            feeder,
            remainder=feed.remainder,
            transform_param=spec["params"].get("transform_param"),
            train=train,
            seed=feed.seed,
        ).start()

    @staticmethod
    def _check_source_shape(source: Any, feeder: MemoryDataFeeder, owner: str, layer: Any) -> None:
        shape = source.item_shape
        channels, height, width = feeder.item_shape
        crop = int(layer.transform_param.crop_size)
        fits = shape[0] == channels and (
            (shape[1] >= crop and shape[2] >= crop) if crop else shape[1:] == (height, width)
        )
        if not fits:
            want = f"at least {crop} x {crop}" if crop else f"{height} x {width}"
            raise ShapeError(
                f"{owner}source '{source.path}' holds items of shape {shape}; the layer wants "
                f"{channels} channel(s) of {want} (memory_data_param{', crop_size' if crop else ''}"
                "); resize them with FeedOptions(resize=True) / -resize"
            )

    def memory_data_feeder(self, layer_name: str) -> MemoryDataFeeder:
        layer = self._layers.get(layer_name)
        if layer is None or layer.type != "MemoryData":
            known = [n for n, lay in self._layers.items() if lay.type == "MemoryData"]
            raise ConfigError(
                f"the net has no MemoryData layer '{layer_name}' (MemoryData layers: {known})"
            )
        return MemoryDataFeeder(
            layer, self._queues[layer_name], self._owners[layer_name], resize=self._feed.resize
        )

    def cos_feed(self, layer_name: str) -> Any:
        """The feed queue of a CoSData layer that names neither source_class nor
        cos_data_param.source: push one (N, C, H, W) array per top with `push_tops`
        (data/cos_tops.py top_arrays makes them; the layer transforms them natively)."""
        layer = self._layers.get(layer_name)
        if layer is None or layer.type != "CoSData":
            known = [n for n, lay in self._layers.items() if lay.type == "CoSData"]
            raise ConfigError(
                f"the net has no CoSData layer '{layer_name}' (CoSData layers: {known})"
            )
        if layer_name in self._cos:
            raise ConfigError(
                f"{self._owners[layer_name]}reads cos_data_param.source itself; clear "
                "source_class and cos_data_param.source to feed it by push"
            )
        return self._queues[layer_name][0]

    def set_timeout(self, seconds: float, layer_name: str | None = None) -> None:
        """Seconds Forward waits for a batch (every queue-fed layer, or one)."""
        for name, (_, ready) in self._queues.items():
            if layer_name is None or name == layer_name:
                ready.timeout = float(seconds)

    def wait_report(self) -> dict[str, dict[str, float]]:
        """Per data layer: seconds Forward spent waiting for data, and batches used."""
        return {
            name: {"wait_seconds": float(ready.wait_seconds), "batches": int(ready.pops)}
            for name, (_, ready) in self._queues.items()
        }

    def skip_batches(self, count: int) -> None:
        """Consume `count` batches of every LMDB-fed layer, through the same transform
        pipeline Forward uses (so crop/mirror choices advance too): a resumed solver
        continues the data stream where the snapshotted run left it."""
        for name in [*self._lmdb, *self._sources, *self._cos, *self._readers]:
            _, ready = self._queues[name]
            for _ in range(int(count)):
                ready.pop()

    @property
    def lmdb_feeders(self) -> dict[str, LmdbFeeder]:
        return dict(self._lmdb)

    @property
    def source_feeders(self) -> dict[str, SourceFeeder]:
        return dict(self._sources)

    @property
    def cos_feeders(self) -> dict[str, CosFeeder]:
        return dict(self._cos)

    def close(self, timeout: float | None = 10.0) -> None:
        """Close every feed queue and join the feeder threads (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for feed, _ in self._queues.values():
            feed.close()
        for feeder in self._lmdb.values():
            feeder.stop(timeout)
        for source_feeder in self._sources.values():
            source_feeder.stop(timeout)
        for cos_feeder in self._cos.values():
            cos_feeder.stop(timeout)
        for reader in self._readers.values():
            reader.stop(timeout)
        for writer in self._writers.values():
            writer.stop(timeout)  # drains the queued batches, then publishes the file
        errors = [w.error for w in self._writers.values() if w.error is not None]
        if errors:
            raise errors[0]

    @property
    def reader_feeders(self) -> dict[str, Any]:
        """The feeder threads of ImageData, HDF5Data and WindowData layers, by layer."""
        return dict(self._readers)

    @property
    def hdf5_writers(self) -> dict[str, HDF5Writer]:
        return dict(self._writers)
