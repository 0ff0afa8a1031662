"""LMDB reader thread feeding the engine's Data layer (cpp/layers/data.h).

The engine does not link liblmdb, so a Python thread reads the database (the `lmdb`
package, read-only, lock=False) and pushes batches into the layer's native feed queue;
the layer's native prefetch thread applies transform_param and Forward pops, all without
Python in the solver loop.

Caffe's DataLayer rules (docs/CAFFE.md §5.2): records in key (DB) order, wrapping around at
the end; with several solvers, a running record index counts every record read (across
wrap-arounds) and rank r keeps the records whose index % world_size == r, in TRAIN only
(TEST does not skip). Each record is a serialized Datum: raw `data` bytes (uint8, planar
CHW), `float_data`, or an encoded image (JPEG, PNG, ...) decoded here with OpenCV in the
layer's decode mode (transform_param force_color / force_gray, docs/CAFFE.md §5.4; see
image_codec.py). batch_size records are stacked into (N, C, H, W) (uint8, or float32 when
any holds float_data) with float labels; decoding runs on `decode_threads` threads
(DecodePool, order kept); a batch of raw Datums is read zero-copy from the memory map and
parsed in one native call instead (datums.raw_datum_batch, pixels copied once, GIL
released), and a batch of encoded ones decoded straight from the map into the batch
(datums.encoded_datum_batch); anything unusual goes record by record. Every record must have the (decoded) shape of the first, which
fixed the layer's top shape at net construction; a mismatch, a data size other than C*H*W
or undecodable bytes raise FormatError naming the source and key.

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

from caffeonspark.data.datums import (
    datum_image,
    encoded_datum_batch,
    key_text,
    parse_datum,
    raw_datum_batch,
)
from caffeonspark.data.feeder_thread import FeederThread
from caffeonspark.data.image_codec import DecodePool
from caffeonspark.data.native_queue import push_until_closed
from caffeonspark.errors import FormatError, IoError

__all__ = ["open_lmdb", "first_datum", "first_datum_shape", "record_image", "LmdbFeeder"]


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


def record_image(
    value: bytes, source: str, key: bytes, owner: str = "", mode: str = "native"
) -> tuple[np.ndarray, float]:
    """(pixels (C, H, W), label) of one LMDB record (a serialized Datum, maybe encoded)."""
    where = f"{owner}LMDB '{source}' key '{key_text(key)}'"
    datum = parse_datum(value, where)
    return datum_image(datum, where, mode), float(datum.label)


def first_datum(
    source: str | os.PathLike[str], owner: str = "", mode: str = "native"
) -> tuple[tuple[int, int, int], bool]:
    """((C, H, W), encoded) of the first record, decoded when encoded: every record must
    have that shape."""
    path = os.fspath(source)
    with open_lmdb(path, owner) as env, env.begin(buffers=False) as txn:
        cursor = txn.cursor()
        if not cursor.first():
            raise IoError(f"{owner}LMDB source '{path}' holds no records")
        key, value = bytes(cursor.key()), bytes(cursor.value())
    where = f"{owner}LMDB '{path}' key '{key_text(key)}'"
    datum = parse_datum(value, where)
    image = datum_image(datum, where, mode)
    return (int(image.shape[0]), int(image.shape[1]), int(image.shape[2])), bool(datum.encoded)


def first_datum_shape(
    source: str | os.PathLike[str], owner: str = "", mode: str = "native"
) -> tuple[int, int, int]:
    """(C, H, W) of the first record (decoded when encoded)."""
    return first_datum(source, owner, mode)[0]


class LmdbFeeder(FeederThread):
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
        mode: str = "native",
        decode_threads: int = 1,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.source = os.fspath(source)
        self.queue = queue
        self.batch_size = int(batch_size)
        self.owner = owner
        self.mode = mode
        self.shape = tuple(shape) if shape is not None else first_datum_shape(source, owner, mode)
        self.pool = DecodePool(decode_threads, name=f"decode {self.source}")
        self.train = bool(train)
        self.rank = int(rank)
        self.world_size = int(world_size)

    def records(self) -> Iterator[tuple[bytes, memoryview]]:
        """(key, value) of this reader's records, in DB order, wrapping around forever; the
        value is a view into the read transaction's memory map, valid while this generator
        lives."""
        with open_lmdb(self.source, self.owner) as env, env.begin(buffers=True) as txn:
            cursor = txn.cursor()
            index = 0
            while True:
                if not cursor.first():
                    raise IoError(f"{self.owner}LMDB source '{self.source}' holds no records")
                for key, value in cursor.iternext():
                    keep = not self.train or index % self.world_size == self.rank
                    index += 1
                    if keep:
                        yield bytes(key), value

    def _image(self, record: tuple[bytes, memoryview]) -> tuple[np.ndarray, float]:
        key, value = record[0], bytes(record[1])
        image, label = record_image(value, self.source, key, self.owner, self.mode)
        if image.shape != self.shape:
            raise FormatError(
                f"{self.owner}LMDB '{self.source}' key '{key_text(key)}': image shape "
                f"{tuple(image.shape)} differs from the first record's {self.shape}"
            )
        return image, label

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Endless (data (N, C, H, W), labels (N,)) batches of this reader's records."""
        records = self.records()
        n = self.batch_size
        while True:
            chunk = [next(records) for _ in range(n)]
            values = [value for _, value in chunk]
            fast = raw_datum_batch(values, self.shape) or encoded_datum_batch(
                values, self.mode, self.shape, self.pool
            )
            if fast is not None:
                yield fast
                continue
            items = self.pool.map(self._image, chunk)
            floats = any(image.dtype != np.uint8 for image, _ in items)
            data = np.empty((n, *self.shape), dtype=np.float32 if floats else np.uint8)
            labels = np.empty(n, dtype=np.float32)
            for i, (image, label) in enumerate(items):
                data[i] = image
                labels[i] = label
            yield data, labels

    def run(self) -> None:
        """Push batches until the queue closes; a failure closes it with the error."""
        try:
            push_until_closed(self.queue, self.batches(), self.owner)
        finally:
            self.pool.close()

    def thread_name(self) -> str:
        return f"lmdb-feeder {self.source}"

    def end_stream(self) -> None:
        self.queue.close()
