"""Write and read LMDB databases of Caffe ``Datum`` records, the way Caffe's data layer reads them.

``write_lmdb(path, records)`` stores (key, value) byte pairs, committing every 1000 records
(as Caffe's converters do). The map size starts small and is doubled whenever LMDB reports
the map full, replaying the uncommitted batch. The database is built under a temporary
directory name beside ``path``, fsynced and renamed into place only once complete
(atomic_file.publish), so a failed or interrupted conversion never leaves a half-written
database under the final name.

``iter_lmdb`` / ``iter_datums`` read a database back in key order (the order Caffe's
DataLayer uses); ``lmdb_entry_count`` tells how many records one holds.

Tests: tests/data/test_convert_mnist.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import lmdb

from caffeonspark.atomic_file import publish, remove, temp_sibling
from caffeonspark.errors import FormatError, IoError
from caffeonspark.proto import caffe_pb2

__all__ = [
    "DEFAULT_COMMIT_EVERY",
    "write_lmdb",
    "iter_lmdb",
    "iter_datums",
    "lmdb_entry_count",
    "last_key",
]

DEFAULT_COMMIT_EVERY = 1000
_INITIAL_MAP_SIZE = 16 << 20  # bytes; doubled on MDB_MAP_FULL
_MAX_MAP_SIZE = 1 << 40


def _put_batch(env: lmdb.Environment, batch: list[tuple[bytes, bytes]]) -> None:
    """Write one batch in one transaction, doubling the map size until it fits."""
    while True:
        txn = env.begin(write=True)
        try:
            for key, value in batch:
                txn.put(key, value, overwrite=True)
            txn.commit()
            return
        except lmdb.MapFullError:
            txn.abort()
            size = int(env.info()["map_size"])
            if size >= _MAX_MAP_SIZE:
                raise
            env.set_mapsize(size * 2)
        except BaseException:
            txn.abort()
            raise


def write_lmdb(
    path: str | os.PathLike[str],
    records: Iterable[tuple[bytes, bytes]],
    *,
    commit_every: int = DEFAULT_COMMIT_EVERY,
    overwrite: bool = False,
    initial_map_size: int = _INITIAL_MAP_SIZE,
) -> int:
    """Write ``records`` (key, value byte pairs) into a new LMDB directory at ``path``.

    Commits every ``commit_every`` records; grows the map as needed. The database appears
    under ``path`` only when every record is written: on any exception (including one raised
    by the ``records`` iterator) the temporary directory is removed and the error re-raised.
    An existing ``path`` is an error unless ``overwrite`` is true, in which case it is
    replaced after the new database is complete. Returns the number of records written.
    """
    if commit_every < 1:
        raise ValueError(f"commit_every must be >= 1, got {commit_every}")
    final = Path(path)
    if final.exists() and not overwrite:
        raise IoError(f"LMDB {str(final)!r} already exists")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(final)
    count = 0
    try:
        env = lmdb.open(str(tmp), map_size=initial_map_size, subdir=True, meminit=False)
    except lmdb.Error as exc:
        remove(tmp)
        raise IoError(f"cannot create LMDB at {tmp!r}: {exc}") from exc
    try:
        try:
            batch: list[tuple[bytes, bytes]] = []
            for key, value in records:
                batch.append((key, value))
                if len(batch) >= commit_every:
                    _put_batch(env, batch)
                    count += len(batch)
                    batch = []
            if batch:
                _put_batch(env, batch)
                count += len(batch)
            env.sync(True)
        finally:
            env.close()
        if final.exists():  # overwrite: a rename never replaces a folder, so move it aside
            old = temp_sibling(final)
            os.rename(final, old)
            try:
                publish(tmp, final)
            except BaseException:
                os.rename(old, final)
                raise
            remove(old)
        else:
            publish(tmp, final)
    except BaseException:
        remove(tmp)
        raise
    return count


def _open_readonly(path: str | os.PathLike[str]) -> lmdb.Environment:
    p = Path(path)
    if not (p / "data.mdb").is_file():
        raise IoError(f"no LMDB at {str(p)!r} (missing data.mdb)")
    try:
        return lmdb.open(str(p), readonly=True, lock=False, subdir=True, readahead=False)
    except lmdb.Error as exc:
        raise IoError(f"cannot open LMDB {str(p)!r}: {exc}") from exc


def iter_lmdb(path: str | os.PathLike[str]) -> Iterator[tuple[bytes, bytes]]:
    """Yield every (key, value) of the LMDB at ``path`` in key order (Caffe's read order)."""
    env = _open_readonly(path)
    try:
        with env.begin(buffers=False) as txn:
            for key, value in txn.cursor():
                yield bytes(key), bytes(value)
    finally:
        env.close()


def iter_datums(lmdb_path: str | os.PathLike[str]) -> Iterator[tuple[str, caffe_pb2.Datum]]:
    """Yield (key, Datum) for every record of a Datum LMDB, in key order.

    Keys are returned as text (Caffe's keys are ASCII: ``00000000``, ``00000042_path``...).
    """
    for key, value in iter_lmdb(lmdb_path):
        datum = caffe_pb2.Datum()
        try:
            datum.ParseFromString(value)
        except Exception as exc:  # protobuf's DecodeError and friends
            raise FormatError(
                f"{os.fspath(lmdb_path)}: record {key!r} is not a Datum: {exc}"
            ) from exc
        yield key.decode("utf-8", errors="surrogateescape"), datum


def lmdb_entry_count(path: str | os.PathLike[str]) -> int | None:
    """Number of records in the LMDB at ``path``, or None if there is no readable LMDB there."""
    try:
        env = _open_readonly(path)
    except IoError:
        return None
    try:
        return int(env.stat()["entries"])
    finally:
        env.close()


def last_key(path: str | os.PathLike[str]) -> bytes | None:
    """The greatest key in the LMDB at ``path`` (None if empty or unreadable)."""
    try:
        env = _open_readonly(path)
    except IoError:
        return None
    try:
        with env.begin() as txn:
            cur = txn.cursor()
            return bytes(cur.key()) if cur.last() else None
    finally:
        env.close()
