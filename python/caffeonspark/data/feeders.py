"""Hooks between engine.Net and the engine's queue-fed data layers (MemoryData, Data).

Two steps, called by python/caffeonspark/engine.py:

1. `prepare_data_params(layer, params, where)`, while the layer specs are built (before the
   engine sets the net up), adds what the engine cannot read itself:
   - Data layers (backend LMDB): `data_param["datum_shape"] = [C, H, W]`, read from the
     first Datum of the source (decoded when encoded, in the mode transform_param's
     force_color / force_gray select; an engine-only field, not in caffe.proto): the top
     shape (batch_size, C, crop or H, crop or W) is known only from the data. A missing source
     raises IoError naming the layer and the path here, at construction. Other backends
     are left alone (the engine refuses LevelDB with a ConfigError).
   - Any layer with transform_param.mean_file: `transform_param["mean_file_data"] =
     {"shape": [C, H, W], "data": float32 bytes}` from the .binaryproto (legacy num = 1).
2. `NetFeeds(native_net, specs)`, once the native net exists, starts one LmdbFeeder daemon
   thread per Data layer (rank/world_size from set_default_shard, used in TRAIN only;
   encoded images decoded on set_decode_threads threads) and
   hands out MemoryDataFeeders; close() stops and joins the threads (engine.Net calls it
   on close() and when the Net is garbage-collected).

Tests: tests/layers/test_data.py, tests/layers/test_memory_data.py.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from caffeonspark import model_io
from caffeonspark._native import _engine
from caffeonspark.data.image_codec import decode_mode
from caffeonspark.data.lmdb_feeder import LmdbFeeder, first_datum
from caffeonspark.data.native_queue import MemoryDataFeeder, layer_owner
from caffeonspark.errors import ConfigError, FormatError, IoError
from caffeonspark.proto import caffe_pb2

__all__ = [
    "QUEUE_FED_TYPES",
    "set_default_shard",
    "default_shard",
    "set_decode_threads",
    "set_default_resize",
    "default_resize",
    "decode_threads",
    "layer_decode_mode",
    "prepare_data_params",
    "NetFeeds",
]

QUEUE_FED_TYPES = ("Data", "MemoryData")

_shard_lock = threading.Lock()
_default_shard = (0, 1)


def set_default_shard(rank: int, world_size: int) -> None:
    """(rank, world_size) the Data layers of nets built from now on read with (TRAIN only):
    each keeps the records whose running index % world_size == rank, as Caffe's DataLayer
    does with several solvers. One solver per process is the CaffeOnSpark layout."""
    global _default_shard
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    with _shard_lock:
        _default_shard = (int(rank), int(world_size))


def default_shard() -> tuple[int, int]:
    with _shard_lock:
        return _default_shard


_decode_threads = 2
_default_resize = False


def set_default_resize(resize: bool) -> None:
    """CaffeOnSpark's `-resize`: MemoryData feeders of nets built from now on resize every
    image to the layer's height x width (bilinear) before the transform."""
    global _default_resize
    with _shard_lock:
        _default_resize = bool(resize)


def default_resize() -> bool:
    with _shard_lock:
        return _default_resize


def set_decode_threads(threads: int) -> None:
    """Threads each feeder of nets built from now on decodes encoded images with (default 2;
    raw records are read on the feeder thread alone)."""
    global _decode_threads
    if threads < 1:
        raise ValueError(f"decode threads must be >= 1, got {threads}")
    with _shard_lock:
        _decode_threads = int(threads)


def decode_threads() -> int:
    with _shard_lock:
        return _decode_threads


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
    transform = params.get("transform_param")
    if transform is not None and transform.get("mean_file"):
        transform["mean_file_data"] = _mean_file_data(transform["mean_file"], owner)
    if layer.type == "Data" and layer.data_param.backend == caffe_pb2.DataParameter.LMDB:
        shape, _ = first_datum(layer.data_param.source, owner, layer_decode_mode(layer, owner))
        params["data_param"]["datum_shape"] = list(shape)
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
    """The data feeding of one built net: LMDB feeder threads and MemoryData feeders."""

    def __init__(self, native_net: Any, specs: list[dict[str, Any]], layers: list[Any]) -> None:
        self._queues: dict[str, tuple[Any, Any]] = {}
        self._owners: dict[str, str] = {}
        self._layers: dict[str, caffe_pb2.LayerParameter] = {}
        self._lmdb: dict[str, LmdbFeeder] = {}
        self._closed = False
        self._resize = default_resize()
        rank, world_size = default_shard()
        for index, (spec, layer) in enumerate(zip(specs, layers, strict=True)):
            if spec["type"] not in QUEUE_FED_TYPES:
                continue
            name = spec["name"]
            self._queues[name] = tuple(_engine.data_layer_queues(native_net, index))
            self._owners[name] = layer_owner(name, spec["type"], spec["where"])
            self._layers[name] = layer
        try:
            for name, layer in self._layers.items():
                if layer.type == "Data":
                    self._lmdb[name] = self._start_lmdb(name, layer, specs, rank, world_size)
        except BaseException:
            self.close()
            raise

    def _start_lmdb(
        self,
        name: str,
        layer: caffe_pb2.LayerParameter,
        specs: list[dict[str, Any]],
        rank: int,
        world_size: int,
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
            rank=rank if train else 0,
            world_size=world_size if train else 1,
            owner=self._owners[name],
            mode=mode,
            decode_threads=decode_threads() if encoded else 1,
        ).start()

    def memory_data_feeder(self, layer_name: str) -> MemoryDataFeeder:
        layer = self._layers.get(layer_name)
        if layer is None or layer.type != "MemoryData":
            known = [n for n, lay in self._layers.items() if lay.type == "MemoryData"]
            raise ConfigError(
                f"the net has no MemoryData layer '{layer_name}' (MemoryData layers: {known})"
            )
        return MemoryDataFeeder(
            layer, self._queues[layer_name], self._owners[layer_name], resize=self._resize
        )

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
        for name in self._lmdb:
            _, ready = self._queues[name]
            for _ in range(int(count)):
                ready.pop()

    @property
    def lmdb_feeders(self) -> dict[str, LmdbFeeder]:
        return dict(self._lmdb)

    def close(self, timeout: float | None = 10.0) -> None:
        """Close every feed queue and join the feeder threads (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for feed, _ in self._queues.values():
            feed.close()
        for feeder in self._lmdb.values():
            feeder.stop(timeout)
