"""The take-free gather of raw images from an Arrow table (data/sources/arrow_gather.py):
rows spread over ragged record batches come back with the original pixels and labels,
through a memory-mapped IPC file too (what ArrowSource reads a Spark spool with); tables it
must not handle (encoded rows, mixed sizes, null or non-numeric labels, a short row) get no
plan, so ArrowSource keeps its row-precise errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from caffeonspark import errors
from caffeonspark.data.sources import ArrowSource
from caffeonspark.data.sources.arrow_gather import RawImageRows

N, C, H, W = 50, 2, 3, 4


def image_table(pixels: np.ndarray, labels, chunk_sizes=(7, 1, 20, 22), large=False) -> pa.Table:
    binary = pa.large_binary() if large else pa.binary()
    batches, at = [], 0
    for size in chunk_sizes:
        rows = range(at, at + size)
        batches.append(
            pa.RecordBatch.from_arrays(
                [
                    pa.array([pixels[i].tobytes() for i in rows], binary),
                    pa.array([labels[i] for i in rows], pa.float64()),
                    pa.array([C] * size, pa.int32()),
                    pa.array([H] * size, pa.int32()),
                    pa.array([W] * size, pa.int32()),
                    pa.array([False] * size, pa.bool_()),
                ],
                ["data", "label", "channels", "height", "width", "encoded"],
            )
        )
        at += size
    assert at == len(pixels)  # a size of 0 makes an empty record batch (Spark may send one)
    return pa.Table.from_batches(batches)


@pytest.fixture
def pixels():
    return np.random.default_rng(3).integers(0, 256, size=(N, C, H, W), dtype=np.uint8)


def plan_of(table: pa.Table) -> RawImageRows | None:
    n = table.num_rows
    dims = np.stack([table.column(c).to_numpy() for c in ("channels", "height", "width")], 1)
    encoded = table.column("encoded").to_numpy(zero_copy_only=False)
    return RawImageRows.plan(table, "data", "label", dims.astype(np.int64), encoded[:n])


@pytest.mark.parametrize("large", [False, True])
def test_gather_returns_the_rows_asked_for(pixels, large):
    labels = np.arange(N) * 0.5
    plan = plan_of(image_table(pixels, labels.tolist(), (7, 1, 0, 20, 22), large=large))
    assert plan is not None and plan.shape == (C, H, W)
    rows = np.random.default_rng(1).permutation(N)[:33]
    rows = np.concatenate([rows, rows[:3]])  # repeats are allowed (a wrapped batch)
    data, got = plan.gather(rows)
    np.testing.assert_array_equal(data, pixels[rows])
    np.testing.assert_array_equal(got, labels[rows].astype(np.float32))
    assert data.dtype == np.uint8 and got.dtype == np.float32
    empty, no_labels = plan.gather(np.array([], np.int64))
    assert empty.shape == (0, C, H, W) and no_labels.shape == (0,)


def test_a_memory_mapped_spool_reads_the_same_as_take(pixels, tmp_path):
    table = image_table(pixels, list(range(N)))
    spool = tmp_path / "spool.arrow"
    with pa.ipc.new_file(spool, table.schema) as writer:
        for batch in table.to_batches():
            writer.write_batch(batch)
    with ArrowSource(spool, partition=1, num_partitions=2, shuffle=True, seed=4) as fast:
        assert fast._raw_rows is not None
        with ArrowSource(spool, partition=1, num_partitions=2, shuffle=True, seed=4) as slow:
            slow._raw_rows = None  # the general path: Table.take
            for a, b in zip(fast.batches(8), slow.batches(8), strict=False):
                np.testing.assert_array_equal(a.data, b.data)
                np.testing.assert_array_equal(a.labels, b.labels)
                np.testing.assert_array_equal(a.data, pixels[a.ids])
                if a.epochs[-1] >= 2:
                    break


def test_tables_it_must_not_handle_get_no_plan(pixels):
    table = image_table(pixels, list(range(N)))
    encoded = table.set_column(5, "encoded", pa.array([i == 9 for i in range(N)]))
    assert plan_of(encoded) is None
    null_label = table.set_column(1, "label", pa.array([None] + list(range(1, N))))
    assert plan_of(null_label) is None
    text_label = table.set_column(1, "label", pa.array(["x"] * N))
    assert plan_of(text_label) is None
    short = table.set_column(
        0, "data", pa.array([pixels[i].tobytes()[: -1 if i == 30 else None] for i in range(N)])
    )
    assert plan_of(short) is None
    mixed = table.set_column(4, "width", pa.array([W if i else W + 1 for i in range(N)], pa.int32()))
    assert plan_of(mixed) is None


def test_a_short_row_still_fails_naming_it(pixels):
    table = image_table(pixels, list(range(N)))
    short = table.set_column(
        0, "data", pa.array([pixels[i].tobytes()[: -1 if i == 30 else None] for i in range(N)])
    )
    with ArrowSource(short, shuffle=True, seed=1) as source:
        assert source._raw_rows is None
        with pytest.raises(errors.FormatError, match="row 30: 23 data bytes"):
            for _ in source.batches(N):
                pass


def test_parquet_row_groups_read_the_same_as_take(pixels, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from caffeonspark.data.sources import ParquetSource

    pq.write_table(image_table(pixels, list(range(N))), tmp_path / "p.parquet", row_group_size=16)

    def epochs(source):
        out = []
        for batch in source.batches(8):
            if batch.epochs[-1] >= 2:
                return out
            out.append(batch)

    with ParquetSource(tmp_path / "p.parquet", shuffle=True, seed=2) as source:
        fast = epochs(source)
        assert source._cache[2] is not None  # the gather plan was used
    monkeypatch.setattr(ParquetSource, "_raw_image_plan", lambda self, table: None)
    with ParquetSource(tmp_path / "p.parquet", shuffle=True, seed=2) as source:
        slow = epochs(source)
    assert len(fast) == len(slow) > 0
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.data, pixels[a.ids])


def test_batch_rows_take_keeps_the_order_asked_for():
    from caffeonspark.data.sources.arrow_gather import BatchRows

    n = 40
    rng = np.random.default_rng(7)
    values = [rng.random(int(rng.integers(0, 5))).astype(np.float32).tolist() for _ in range(n)]
    columns = {
        "blob": [bytes(rng.integers(0, 256, int(rng.integers(1, 30)), dtype=np.uint8)) for _ in range(n)],
        "feats": values,
        "name": [f"row{i}" for i in range(n)],
        "label": list(range(n)),
    }
    whole = pa.table(columns)
    table = pa.Table.from_batches(whole.to_batches(max_chunksize=6))  # 7 ragged batches
    rows = np.concatenate([rng.permutation(n)[:25], [3, 3], [39]])
    got = BatchRows(table).take(rows).to_pydict()
    for name, column in columns.items():
        assert got[name] == [column[i] for i in rows]
    one_batch = BatchRows(table).take(np.array([13, 12]))  # both in batch 2
    assert one_batch.column("label").to_pylist() == [13, 12]
    assert BatchRows(table).take(np.array([], np.int64)).num_rows == 0
