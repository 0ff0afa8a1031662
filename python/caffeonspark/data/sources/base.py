"""The contract every data source keeps: partitioned reading, epochs, per-epoch shuffling and
the batching rule.

A source holds N records. `Source(path, partition=i, num_partitions=n)` reads only its
*local share*, partition i of n (a contiguous range of records, or of bytes for
SequenceFiles; see each source): the n partitions together hold every record exactly once.
`epoch(e)` yields the local share once as `Chunk`s — (ids, data (k, C, H, W) uint8 or float32,
labels (k,) float32) — in storage order, or, with shuffle, in an order drawn from
numpy.random.default_rng([seed, e, partition, num_partitions]): the same seed gives the same
order in every run, each epoch a different one. `shuffle_shard=(r, n)` draws the order as
shard r of n instead: for a share already cut out of a larger source (a Spark task's spool
file holds rank r's share and is read whole), so it shuffles exactly as partition r of n of
the whole source would (docs/SPARK.md, "Same result as the launcher"). `ids` are record ids unique over the whole
source (for tests and for error messages). Encoded images are decoded (mode = native /
color / gray) on `decode_threads` threads and, with `resize=(h, w)`, resized bilinearly;
every item must have `item_shape` (fixed from the first record of the share when not
given): a mismatch raises FormatError naming the source and the record's key or row.

**The batching rule** (`batches(batch_size, remainder=...)`): a batch never mixes two
epochs silently. Each Batch carries `epochs`, the epochs its items come from. At the end of
an epoch, fewer than batch_size left-over items are:
- "drop" (default): discarded — every batch holds items of one epoch only; with shuffle a
  different remainder is dropped each epoch. A share smaller than one batch is a
  ConfigError (nothing could ever be fed);
- "wrap": completed from the start of the next epoch, as Caffe's data layers do; that
  batch says so (`epochs = (e, e + 1)`) and `stats["mixed_batches"]` counts it;
- "partial": yielded as a short batch (for consumers that take any batch size).
With a finite `epochs` count the last left-over is yielded short unless remainder is "drop".

CoSData reads several typed columns per record: its chunks (and batches) hold a tuple of
arrays, one per top, as `data`, and no labels (None); the batching rule is the same.

Subclasses implement `_refs()` (the local share's record references, in storage order),
`_read(refs)` (those records as a Chunk, in the given order) and may override
`_epoch_refs(e)` (the epoch's order; Parquet shuffles by blocks).
Tests: tests/data/test_sources.py.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from caffeonspark.data.image_codec import DecodePool
from caffeonspark.errors import ConfigError, FormatError, IoError

__all__ = ["Chunk", "Batch", "Source", "REMAINDER_POLICIES", "local_path"]

log = logging.getLogger(__name__)

REMAINDER_POLICIES = ("drop", "wrap", "partial")


class Chunk(NamedTuple):
    ids: np.ndarray  # int64 record ids
    data: Any  # (k, C, H, W) uint8 or float32; CoSData: a tuple of arrays, one per top
    labels: Any  # (k,) float32; CoSData: None


class Batch(NamedTuple):
    data: Any
    labels: Any
    ids: np.ndarray
    epochs: tuple[int, ...]


def _rows(part: Any, start: int, stop: int | None) -> Any:
    """Rows [start, stop) of an array, of each array of a tuple, or None."""
    if part is None:
        return None
    if isinstance(part, tuple):
        return tuple(p[start:stop] for p in part)
    return part[start:stop]


def _joined(parts: list[Any]) -> Any:
    """Row-wise concatenation of arrays (uint8 stays uint8 only if all are), of tuples of
    arrays (per position), or of Nones."""
    if parts[0] is None:
        return None
    if isinstance(parts[0], tuple):
        return tuple(_joined(list(column)) for column in zip(*parts, strict=True))
    dtype = np.float32 if any(p.dtype != np.uint8 for p in parts) else np.uint8
    return np.concatenate([p.astype(dtype, copy=False) for p in parts])


def local_path(source: str | os.PathLike[str], owner: str = "") -> str:
    """A source path usable here: `file:` URIs become paths; other URIs are refused."""
    text = os.fspath(source)
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif text.startswith("file:"):
        text = text[len("file:") :]
    elif "://" in text:
        raise IoError(
            f"{owner}source '{text}' is not on a local file system; copy it to a local "
            "path (or a mounted one) and name that"
        )
    return text


def partition_range(total: int, partition: int, num_partitions: int) -> tuple[int, int]:
    """[lo, hi) of partition i of n over `total` contiguous items (sizes differ by <= 1)."""
    return total * partition // num_partitions, total * (partition + 1) // num_partitions


class Source:
    """Base class: see the module doc. `kind` names the format in messages."""

    kind = "source"

    def __init__(
        self,
        path: Any,
        *,
        partition: int = 0,
        num_partitions: int = 1,
        shuffle: bool = False,
        seed: int = 0,
        mode: str = "native",
        resize: tuple[int, int] | None = None,
        item_shape: tuple[int, int, int] | None = None,
        decode_threads: int = 1,
        chunk_size: int = 256,
        owner: str = "",
        shuffle_shard: tuple[int, int] | None = None,
    ) -> None:
        if num_partitions < 1 or not 0 <= partition < num_partitions:
            raise ConfigError(f"{owner}partition {partition} is not in [0, {num_partitions})")
        shard = (int(partition), int(num_partitions)) if shuffle_shard is None else shuffle_shard
        if shard[1] < 1 or not 0 <= shard[0] < shard[1]:
            raise ConfigError(f"{owner}shuffle_shard {tuple(shard)} is not (r, n) with 0 <= r < n")
        self.path = path
        self.partition = int(partition)
        self.num_partitions = int(num_partitions)
        self.shuffle_shard = (int(shard[0]), int(shard[1]))
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.mode = mode
        self.resize = tuple(resize) if resize else None
        self.chunk_size = max(1, int(chunk_size))
        self.owner = owner
        self.pool = DecodePool(decode_threads, name=f"decode {self.kind}")
        self.stats = {"epochs": 0, "batches": 0, "mixed_batches": 0, "dropped": 0}
        self._item_shape = tuple(item_shape) if item_shape else None
        self._local: Sequence[Any] | None = None

    # -- subclass hooks ----------------------------------------------------------------

    def _refs(self) -> Sequence[Any]:
        raise NotImplementedError

    def _read(self, refs: Sequence[Any]) -> Chunk:
        raise NotImplementedError

    def _epoch_refs(self, epoch: int) -> Iterator[Sequence[Any]]:
        """The epoch's record references, in runs read one _read() at a time."""
        refs = self.local_refs
        if self.shuffle:
            order = self.epoch_rng(epoch).permutation(len(refs))
            refs = [refs[i] for i in order] if not isinstance(refs, np.ndarray) else refs[order]
        for start in range(0, len(refs), self.chunk_size):
            yield refs[start : start + self.chunk_size]

    # -- shared machinery ----------------------------------------------------------------

    @property
    def local_refs(self) -> Sequence[Any]:
        if self._local is None:
            self._local = self._refs()
        return self._local

    def __len__(self) -> int:
        """Records in this partition."""
        return len(self.local_refs)

    def epoch_rng(self, epoch: int) -> np.random.Generator:
        shard, shards = self.shuffle_shard
        return np.random.default_rng([self.seed, epoch, shard, shards])

    @property
    def item_shape(self) -> tuple[int, int, int]:
        """(C, H, W) every item has: given, or that of the share's first record."""
        if self._item_shape is None:
            refs = self.local_refs
            if not len(refs):
                raise IoError(
                    f"{self.owner}{self.kind} '{self.path}' partition "
                    f"{self.partition} of {self.num_partitions} holds no records"
                )
            first = self._read(refs[:1])
            self._item_shape = tuple(int(d) for d in first.data.shape[1:])
        return self._item_shape

    def check_shape(self, image: np.ndarray, where: str) -> np.ndarray:
        """`image` if it has item_shape (set by the first image seen), else FormatError."""
        if self._item_shape is None:
            self._item_shape = tuple(int(d) for d in image.shape)
        elif tuple(image.shape) != self._item_shape:
            raise FormatError(
                f"{where}: image shape {tuple(image.shape)} differs from the source's "
                f"{self._item_shape}" + ("" if self.resize else " (resize to mix sizes)")
            )
        return image

    def stack(
        self, refs: Sequence[Any], convert: Callable[[Any], tuple[np.ndarray, float]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(data, labels) of per-record conversions run on the decode pool, in order."""
        items = self.pool.map(convert, refs)
        if not items:
            shape = self._item_shape or (0, 0, 0)
            return np.empty((0, *shape), np.uint8), np.empty(0, np.float32)
        floats = any(image.dtype != np.uint8 for image, _ in items)
        data = np.empty((len(items), *items[0][0].shape), np.float32 if floats else np.uint8)
        labels = np.empty(len(items), np.float32)
        for i, (image, label) in enumerate(items):
            data[i] = image
            labels[i] = label
        return data, labels

    def record_keys(self, ids: np.ndarray) -> list[str]:
        """Names of records by id, for outputs keyed by sample (default: the id as text)."""
        return [str(int(i)) for i in ids]

    def epoch(self, epoch: int) -> Iterator[Chunk]:
        """The local share once, as Chunks, in this epoch's order."""
        for refs in self._epoch_refs(epoch):
            if len(refs):
                yield self._read(refs)

    def batches(
        self,
        batch_size: int,
        *,
        epochs: int | None = None,
        start_epoch: int = 0,
        remainder: str = "drop",
    ) -> Iterator[Batch]:
        """Batches of the local share over `epochs` epochs (None: forever); the rule on
        epoch boundaries is the module doc's."""
        if remainder not in REMAINDER_POLICIES:
            raise ConfigError(f"{self.owner}remainder must be one of {REMAINDER_POLICIES}")
        if batch_size < 1:
            raise ConfigError(f"{self.owner}batch_size must be positive, got {batch_size}")
        share = len(self)
        if share == 0 or (remainder == "drop" and share < batch_size):
            raise ConfigError(
                f"{self.owner}{self.kind} '{self.path}' partition {self.partition} of "
                f"{self.num_partitions} holds {share} records, fewer than one batch of "
                f"{batch_size}: use fewer partitions, a smaller batch or remainder='wrap'"
            )
        held: list[Chunk] = []
        held_epochs: list[int] = []
        count = 0
        stop = None if epochs is None else start_epoch + epochs
        for e in itertools.count(start_epoch) if stop is None else range(start_epoch, stop):
            for chunk in self.epoch(e):
                held.append(chunk)
                held_epochs.append(e)
                count += len(chunk.ids)
                while count >= batch_size:
                    yield self._take(held, held_epochs, batch_size)
                    count -= batch_size
            self.stats["epochs"] += 1
            if count and remainder == "drop":
                self.stats["dropped"] += count
                held, held_epochs, count = [], [], 0
            elif count and remainder == "partial":
                yield self._take(held, held_epochs, count)
                count = 0
        if count:
            yield self._take(held, held_epochs, count)

    def _take(self, held: list[Chunk], held_epochs: list[int], n: int) -> Batch:
        parts: list[Chunk] = []
        epochs: list[int] = []
        need = n
        while need:
            chunk = held[0]
            k = len(chunk.ids)
            if k <= need:
                parts.append(chunk)
                held.pop(0)
                epochs.append(held_epochs.pop(0))
                need -= k
            else:
                parts.append(
                    Chunk(
                        chunk.ids[:need], _rows(chunk.data, 0, need), _rows(chunk.labels, 0, need)
                    )
                )
                held[0] = Chunk(
                    chunk.ids[need:], _rows(chunk.data, need, None), _rows(chunk.labels, need, None)
                )
                epochs.append(held_epochs[0])
                need = 0
        span = tuple(sorted(set(epochs)))
        if len(span) > 1:
            self.stats["mixed_batches"] += 1
            log.info(
                "%s%s '%s': batch %d spans epochs %s (remainder='wrap')",
                self.owner,
                self.kind,
                self.path,
                self.stats["batches"],
                span,
            )
        self.stats["batches"] += 1
        if len(parts) == 1:
            only = parts[0]
            return Batch(only.data, only.labels, only.ids, span)
        return Batch(
            _joined([p.data for p in parts]),
            _joined([p.labels for p in parts]),
            np.concatenate([p.ids for p in parts]),
            span,
        )

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
