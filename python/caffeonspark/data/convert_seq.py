"""Datum LMDB <-> Hadoop SequenceFile (Text key = the LMDB key, BytesWritable value = the
serialized Datum, so the label and encoding travel inside the value; seqfile.py has the
format).

CaffeOnSpark's own SequenceFiles keyed records by Java-serialized (id, label) tuples, which
only a JVM reads; ours use plain Text keys, and the label lives in the Datum.

- `lmdb_to_seq(db, out)`: one SequenceFile at `out` (a file path), records in key order.
- `seq_to_lmdb(path, db)`: a SequenceFile or a folder of them (sorted `part-*` / any
  non-hidden files); each value must parse as a Datum (FormatError naming file and key).

Tests: tests/data/test_parquet_seq.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from caffeonspark.data.datums import key_text, parse_datum
from caffeonspark.data.lmdb_writer import iter_lmdb, lmdb_entry_count, write_lmdb
from caffeonspark.data.progress import progress
from caffeonspark.data.seqfile import SequenceFileReader, SequenceFileWriter
from caffeonspark.errors import IoError

__all__ = ["seq_files", "lmdb_to_seq", "seq_to_lmdb"]


def seq_files(path: str | os.PathLike[str]) -> list[Path]:
    """The SequenceFile at `path`, or the sorted non-hidden files of the folder `path`."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise IoError(f"SequenceFile source '{p}' does not exist")
    files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith((".", "_")))
    if not files:
        raise IoError(f"SequenceFile source '{p}' holds no files")
    return files


def lmdb_to_seq(
    db_path: str | os.PathLike[str],
    out_file: str | os.PathLike[str],
    *,
    show_progress: bool | None = None,
) -> int:
    """Copy every (key, Datum) of the LMDB into a new SequenceFile; returns the count."""
    source = os.fspath(db_path)
    total = lmdb_entry_count(source)
    if total is None:
        raise IoError(f"no LMDB at '{source}'")
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    with SequenceFileWriter(out) as writer:  # published at `out` only when complete
        for key, value in progress(
            iter_lmdb(source), total=total, desc="to seq", enabled=show_progress
        ):
            writer.append(key, value)
    return writer.count


def _seq_records(files: list[Path]) -> Iterator[tuple[bytes, bytes]]:
    for path in files:
        with SequenceFileReader(path) as reader:
            for record in reader:
                parse_datum(record.value, f"SequenceFile '{path}' key '{key_text(record.key)}'")
                yield record.key, record.value


def seq_to_lmdb(
    path: str | os.PathLike[str],
    db_path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    show_progress: bool | None = None,
) -> int:
    """Write the Datum records of the SequenceFile(s) at `path` into a new LMDB."""
    records = progress(_seq_records(seq_files(path)), desc="to lmdb", enabled=show_progress)
    return write_lmdb(db_path, records, overwrite=overwrite)
