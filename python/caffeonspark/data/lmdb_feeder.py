"""LMDB reader thread feeding the engine's Data layer (cpp/layers/data.h).

The engine does not link liblmdb, so a Python thread reads the database (the `lmdb`
package, read-only, lock=False) and pushes batches into the layer's native feed queue;
the layer's native prefetch thread applies transform_param and Forward pops, all without
Python in the solver loop.

Caffe's DataLayer rules (CAFFE_FACTS §5.2): records in key (DB) order, wrapping around at
the end; with several solvers, a running record index counts every record read (across
wrap-arounds) and rank r keeps the records whose index % world_size == r, in TRAIN only
(TEST does not skip). Each record is a serialized Datum: raw `data` bytes (uint8, planar
CHW) or `float_data`; batch_size of them are stacked into (N, C, H, W) (uint8, or float32
when any holds float_data) with float labels. Every Datum must have the shape of the first
(which fixed the layer's top shape at net construction); a mismatch or a data size other
than C*H*W raises FormatError naming the source and key. Encoded Datums (compressed image
bytes) raise NotImplementedError for now: decoding comes in a later issue.

A reading error closes the feed queue with that error, so it is raised by Forward in the
solver's thread after the batches already queued. Missing sources raise IoError naming the
layer and path when the net is built (first_datum_shape), never a hang.

Tests: tests/layers/test_data.py.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import lmdb
import numpy as np

from caffeonspark.data.native_queue import close_with_error
from caffeonspark.errors import FormatError, IoError
from caffeonspark.proto import caffe_pb2

__all__ = ["open_lmdb", "first_datum_shape", "datum_array", "LmdbFeeder"]


_envs_lock = threading.Lock()
_envs: dict[str, list[Any]] = {}  # real path -> [Environment, users]


@contextlib.contextmanager
def open_lmdb(source: str | os.PathLike[str], owner: str = "") -> Iterator[lmdb.Environment]:
    """The LMDB at `source`, read-only without locking; IoError naming `owner` and the path.

    py-lmdb refuses to open one environment twice in a process, so every reader of a path
    (train and test nets, several ranks in one process) shares one, closed with its last user.
    """
    path = os.fspath(source)
    if not os.path.exists(path):
        raise IoError(f"{owner}LMDB source '{path}' does not exist")
    real = os.path.realpath(path)
    with _envs_lock:
        entry = _envs.get(real)
        if entry is None:
            try:
                env = lmdb.open(
                    real, readonly=True, lock=False, subdir=os.path.isdir(real), readahead=False
                )
            except lmdb.Error as err:
                raise IoError(f"{owner}cannot open LMDB source '{path}': {err}") from err
            entry = _envs[real] = [env, 0]
        entry[1] += 1
    try:
        yield entry[0]
    finally:
        with _envs_lock:
            entry[1] -= 1
            if entry[1] == 0:
                del _envs[real]
                entry[0].close()


def _key_text(key: bytes) -> str:
    return key.decode("utf-8", errors="backslashreplace")


def parse_datum(value: bytes, source: str, key: bytes, owner: str = "") -> caffe_pb2.Datum:
    datum = caffe_pb2.Datum()
    try:
        datum.ParseFromString(value)
    except Exception as err:  # protobuf's DecodeError and friends
        raise FormatError(
            f"{owner}LMDB '{source}' key '{_key_text(key)}' is not a Datum: {err}"
        ) from err
    if datum.encoded:
        raise NotImplementedError(
            f"{owner}LMDB '{source}' key '{_key_text(key)}' holds an encoded (compressed) "
            "image; decoding encoded Datums is not supported yet (convert without --encoded)"
        )
    return datum


def first_datum_shape(source: str | os.PathLike[str], owner: str = "") -> tuple[int, int, int]:
    """(C, H, W) of the first record: the shape every record must have."""
    path = os.fspath(source)
    with open_lmdb(path, owner) as env, env.begin(buffers=False) as txn:
        cursor = txn.cursor()
        if not cursor.first():
            raise IoError(f"{owner}LMDB source '{path}' holds no records")
        key, value = bytes(cursor.key()), bytes(cursor.value())
    datum = parse_datum(value, path, key, owner)
    shape = (int(datum.channels), int(datum.height), int(datum.width))
    datum_array(datum, shape, path, key, owner)  # the first record must be well formed too
    return shape


def datum_array(
    datum: caffe_pb2.Datum, shape: tuple[int, int, int], source: str, key: bytes, owner: str = ""
) -> np.ndarray:
    """The Datum's pixels as a (C, H, W) uint8 array (raw `data`) or float32 (`float_data`)."""
    where = f"{owner}LMDB '{source}' key '{_key_text(key)}'"
    have = (int(datum.channels), int(datum.height), int(datum.width))
    if have != tuple(shape):
        raise FormatError(f"{where}: Datum shape {have} differs from the first record's {shape}")
    count = shape[0] * shape[1] * shape[2]
    if datum.data:
        if len(datum.data) != count:
            raise FormatError(
                f"{where}: Datum holds {len(datum.data)} data bytes but channels*height*width "
                f"= {count}"
            )
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
    if len(datum.float_data) != count:
        raise FormatError(
            f"{where}: Datum holds {len(datum.float_data)} float_data values (and no data "
            f"bytes) but channels*height*width = {count}"
        )
    return np.asarray(datum.float_data, dtype=np.float32).reshape(shape)


class LmdbFeeder:
    """Reads `source` in a daemon thread and pushes batches into a native feed queue.

    batches() is the reading logic on its own (an endless generator of (data, labels)),
    start() runs it in a thread that pushes into `queue` until the queue closes, and
    stop() closes the queue and joins the thread.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        queue: Any,
        *,
        batch_size: int,
        shape: tuple[int, int, int] | None = None,
        train: bool = True,
        rank: int = 0,
        world_size: int = 1,
        owner: str = "",
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.source = os.fspath(source)
        self.queue = queue
        self.batch_size = int(batch_size)
        self.owner = owner
        self.shape = tuple(shape) if shape is not None else first_datum_shape(source, owner)
        self.train = bool(train)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self._thread: threading.Thread | None = None

    def records(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of this reader's records, in DB order, wrapping around forever."""
        with open_lmdb(self.source, self.owner) as env, env.begin(buffers=False) as txn:
            cursor = txn.cursor()
            index = 0
            while True:
                if not cursor.first():
                    raise IoError(f"{self.owner}LMDB source '{self.source}' holds no records")
                for key, value in cursor.iternext():
                    keep = not self.train or index % self.world_size == self.rank
                    index += 1
                    if keep:
                        yield key, value

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Endless (data (N, C, H, W), labels (N,)) batches of this reader's records."""
        records = self.records()
        n = self.batch_size
        while True:
            data: np.ndarray = np.empty((n, *self.shape), dtype=np.uint8)
            labels = np.empty(n, dtype=np.float32)
            for i in range(n):
                key, value = next(records)
                datum = parse_datum(value, self.source, key, self.owner)
                item = datum_array(datum, self.shape, self.source, key, self.owner)
                if item.dtype != data.dtype:
                    data = data.astype(np.float32)
                data[i] = item
                labels[i] = datum.label
            yield data, labels

    def run(self) -> None:
        """Push batches until the queue closes; a failure closes it with the error."""
        try:
            for data, labels in self.batches():
                if not self.queue.push(data, labels):
                    return
        except BaseException as err:  # surfaces in Forward, on the solver's thread
            close_with_error(self.queue, err, self.owner)

    def start(self) -> LmdbFeeder:
        self._thread = threading.Thread(
            target=self.run, name=f"lmdb-feeder {self.source}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Close the queue (a blocked push returns) and join the thread."""
        self.queue.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
