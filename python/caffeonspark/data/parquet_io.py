"""Datum LMDB <-> Parquet in CaffeOnSpark's image DataFrame schema (ImageDataFrame).

Schema (IMAGE_SCHEMA), one row per image: id (string: the LMDB key), label (string, as
CaffeOnSpark's ImageDataFrame wants it; readers also accept integer or float labels),
channels, height, width (int32; 0 for encoded images, as in an encoded Datum), encoded
(bool), data (binary: planar CHW uint8 pixels, or the image file's bytes when encoded).

- `lmdb_to_parquet(db, out)`: `out` is a folder (Spark's layout) receiving part-00000.parquet,
  written in row groups of `row_group_size` rows; Datums holding float_data cannot be
  represented and raise FormatError naming the key.
- `parquet_to_lmdb(path, db)`: a .parquet file or a folder of them (sorted part files),
  read in Arrow record batches; keys are the `id` column (or the 8-digit row index when
  there is none), values raw or encoded Datums. Missing required columns (label, data), raw
  rows without a size, or a data length other than C*H*W raise FormatError naming the file
  and row.

Tests: tests/data/test_parquet_seq.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from caffeonspark.atomic_file import atomic_path
from caffeonspark.data.datums import key_text, parse_datum
from caffeonspark.data.lmdb_writer import iter_lmdb, lmdb_entry_count, write_lmdb
from caffeonspark.data.progress import progress
from caffeonspark.errors import FormatError, IoError
from caffeonspark.proto import caffe_pb2

__all__ = ["IMAGE_SCHEMA", "parquet_files", "lmdb_to_parquet", "parquet_to_lmdb", "parse_labels"]

log = logging.getLogger(__name__)

IMAGE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("label", pa.string()),
        ("channels", pa.int32()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("encoded", pa.bool_()),
        ("data", pa.binary()),
    ]
)


def parquet_files(path: str | os.PathLike[str]) -> list[Path]:
    """The .parquet file at `path`, or the sorted .parquet files of the folder `path`."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise IoError(f"Parquet source '{p}' does not exist")
    files = sorted(
        f for f in p.rglob("*.parquet") if f.is_file() and not f.name.startswith((".", "_"))
    )
    if not files:
        raise IoError(f"Parquet source '{p}' holds no .parquet files")
    return files


def parse_labels(column: pa.Array | pa.ChunkedArray, where: str) -> pa.Array:
    """A label column (string, integer or float) as float64, vectorised."""
    try:
        return pc.cast(column, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise FormatError(f"{where}: label column cannot be read as numbers: {err}") from err


def _batch_of_rows(rows: list[dict[str, object]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows, schema=IMAGE_SCHEMA)


def lmdb_to_parquet(
    db_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    row_group_size: int = 1000,
    show_progress: bool | None = None,
) -> int:
    """Write the LMDB's Datums as `out_dir/part-00000.parquet`; returns the row count."""
    source = os.fspath(db_path)
    total = lmdb_entry_count(source)
    if total is None:
        raise IoError(f"no LMDB at '{source}'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "part-00000.parquet"
    rows: list[dict[str, object]] = []
    count = 0
    with atomic_path(target) as tmp:
        with pq.ParquetWriter(tmp, IMAGE_SCHEMA) as writer:
            for key, value in progress(
                iter_lmdb(source), total=total, desc="to parquet", enabled=show_progress
            ):
                where = f"LMDB '{source}' key '{key_text(key)}'"
                datum = parse_datum(value, where)
                if not datum.data and len(datum.float_data):
                    raise FormatError(
                        f"{where}: float_data Datums have no place in the image schema"
                    )
                rows.append(
                    {
                        "id": key_text(key),
                        "label": str(datum.label),
                        "channels": datum.channels,
                        "height": datum.height,
                        "width": datum.width,
                        "encoded": datum.encoded,
                        "data": datum.data,
                    }
                )
                if len(rows) >= row_group_size:
                    writer.write_batch(_batch_of_rows(rows), row_group_size=row_group_size)
                    count += len(rows)
                    rows = []
            if rows:
                writer.write_batch(_batch_of_rows(rows), row_group_size=row_group_size)
                count += len(rows)
    return count


def _parquet_records(files: list[Path]) -> Iterator[tuple[bytes, bytes]]:
    row = 0
    for path in files:
        parquet = pq.ParquetFile(path)
        names = set(parquet.schema_arrow.names)
        missing = {"label", "data"} - names
        if missing:
            raise FormatError(f"Parquet '{path}' lacks the column(s) {sorted(missing)}")
        wanted = [c for c in IMAGE_SCHEMA.names if c in names]
        file_row = 0
        for batch in parquet.iter_batches(columns=wanted):
            where = f"Parquet '{path}' rows {file_row}-{file_row + batch.num_rows - 1}"
            labels = parse_labels(batch.column("label"), where).to_pylist()
            columns = {name: batch.column(name).to_pylist() for name in wanted if name != "label"}
            for i in range(batch.num_rows):
                at = f"Parquet '{path}' row {file_row + i}"
                label = labels[i]
                if label is None or label != int(label):
                    raise FormatError(f"{at}: label {label!r} is not an integer")
                data = columns["data"][i]
                if data is None:
                    raise FormatError(f"{at}: data is null")
                encoded = bool(columns.get("encoded", [False] * batch.num_rows)[i])
                key = columns["id"][i] if "id" in columns else f"{row:08d}"
                if encoded:
                    datum = caffe_pb2.Datum(data=data, label=int(label), encoded=True)
                else:
                    dims = [
                        columns.get(n, [None] * batch.num_rows)[i]
                        for n in ("channels", "height", "width")
                    ]
                    if any(d is None or d <= 0 for d in dims):
                        raise FormatError(f"{at}: a raw image needs channels, height and width")
                    c, h, w = (int(d) for d in dims)
                    if len(data) != c * h * w:
                        raise FormatError(
                            f"{at} (id {key!r}): {len(data)} data bytes but channels*height*width "
                            f"= {c * h * w}"
                        )
                    datum = caffe_pb2.Datum(
                        channels=c, height=h, width=w, data=data, label=int(label)
                    )
                yield str(key).encode("utf-8"), datum.SerializeToString()
                row += 1
            file_row += batch.num_rows


def parquet_to_lmdb(
    path: str | os.PathLike[str],
    db_path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    show_progress: bool | None = None,
) -> int:
    """Write the image-schema Parquet rows at `path` as a Datum LMDB; returns the count."""
    files = parquet_files(path)
    total = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    records = progress(_parquet_records(files), total=total, desc="to lmdb", enabled=show_progress)
    return write_lmdb(db_path, records, overwrite=overwrite)
