"""Partitioned sources (python/caffeonspark/data/sources/): for LMDB, Parquet (image schema
and numeric columns), SequenceFile, NumPy and Arrow (IPC file or in-memory table), n readers together see every record exactly
once per epoch (n = 1, 2, 3, 7), with or without the seeded per-epoch shuffle, and get the
original pixels and labels; a cut-out share shuffles as its shard (shuffle_shard); the batching rule at epoch boundaries (drop / wrap / partial);
encoded records with resize; errors naming the source and the key or row."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from caffeonspark import errors
from caffeonspark.data.convert_seq import lmdb_to_seq
from caffeonspark.data.datums import encoded_datum, raw_datum
from caffeonspark.data.image_codec import encode_image
from caffeonspark.data.lmdb_writer import write_lmdb
from caffeonspark.data.parquet_io import lmdb_to_parquet
from caffeonspark.data.sources import (
    SOURCE_CLASSES,
    ArrowSource,
    LmdbSource,
    NumpySource,
    ParquetSource,
    SeqFileSource,
    source_class,
)

N, C, H, W = 61, 3, 6, 5


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The same N images (label = index) as LMDB, Parquet, SequenceFile and .npz."""
    root = tmp_path_factory.mktemp("sources")
    pixels = np.random.default_rng(0).integers(0, 256, size=(N, C, H, W), dtype=np.uint8)
    records = [(f"{i:08d}".encode(), raw_datum(pixels[i], i).SerializeToString()) for i in range(N)]
    write_lmdb(root / "lmdb", records)
    lmdb_to_parquet(root / "lmdb", root / "parquet", row_group_size=8)
    lmdb_to_seq(root / "lmdb", root / "seq" / "part-00000")
    np.savez(root / "arrays.npz", data=pixels, label=np.arange(N))
    table = pq.read_table(root / "parquet")
    with pa.ipc.new_file(root / "table.arrow", table.schema) as writer:
        for batch in table.to_batches(max_chunksize=9):  # batch edges inside partitions
            writer.write_batch(batch)
    return root, pixels


PATHS = {
    LmdbSource: "lmdb",
    ParquetSource: "parquet",
    SeqFileSource: "seq",
    NumpySource: "arrays.npz",
    ArrowSource: "table.arrow",
}


@pytest.mark.parametrize("cls", list(PATHS))
@pytest.mark.parametrize("n", [1, 2, 3, 7])
@pytest.mark.parametrize("shuffle", [False, True])
def test_partitions_see_every_record_once_per_epoch(dataset, cls, n, shuffle):
    root, pixels = dataset
    orders = []
    for epoch in range(2):
        labels_seen: list[int] = []
        ids_seen: list[int] = []
        for part in range(n):
            with cls(
                root / PATHS[cls],
                partition=part,
                num_partitions=n,
                shuffle=shuffle,
                seed=3,
                chunk_size=4,
            ) as source:
                if len(source):  # a SequenceFile split may hold no sync marker, so no record
                    assert source.item_shape == (C, H, W)
                chunks = list(source.epoch(epoch))
                got = sum(len(c.ids) for c in chunks)
                assert got == len(source)
                if cls is not SeqFileSource:  # SequenceFiles split at sync markers (~2 kB)
                    assert abs(got - N / n) < 1
                for chunk in chunks:
                    assert chunk.data.dtype == np.uint8 and chunk.labels.dtype == np.float32
                    index = chunk.labels.astype(int)
                    np.testing.assert_array_equal(chunk.data, pixels[index])
                    labels_seen += index.tolist()
                    ids_seen += chunk.ids.tolist()
        assert sorted(labels_seen) == list(range(N))
        assert len(set(ids_seen)) == N
        orders.append(labels_seen)
    if shuffle:
        assert orders[0] != orders[1] and orders[0] != sorted(orders[0])
    else:
        assert orders[0] == orders[1] == list(range(N))


def test_shuffle_is_reproducible_from_the_seed(dataset):
    root, _ = dataset

    def order(seed):
        with LmdbSource(root / "lmdb", shuffle=True, seed=seed) as source:
            return [int(x) for c in source.epoch(4) for x in c.labels]

    assert order(1) == order(1) != order(2)


@pytest.mark.parametrize("n", [2, 3])
def test_a_cut_out_share_shuffles_as_its_shard(dataset, n):
    # A Spark task's spool file holds rank r's share alone and is read whole with
    # shuffle_shard=(r, n): the same batches, epoch after epoch, as partition r of n of the
    # whole source (data/shard_rule.py), the remainder dropped alike.
    root, _ = dataset
    for r in range(n):
        with LmdbSource(root / "lmdb", partition=r, num_partitions=n, shuffle=True, seed=5) as whole:
            expected = [b.labels.tolist() for b in itertools.islice(whole.batches(6), 12)]
            lo, hi = N * r // n, N * (r + 1) // n
        share = pq.read_table(root / "parquet").slice(lo, hi - lo)
        with ArrowSource(share, shuffle=True, seed=5, shuffle_shard=(r, n)) as cut:
            assert [b.labels.tolist() for b in itertools.islice(cut.batches(6), 12)] == expected
        with ArrowSource(share, shuffle=True, seed=5) as unkeyed:  # shuffled as 0 of 1
            assert [b.labels.tolist() for b in itertools.islice(unkeyed.batches(6), 12)] != expected
    with pytest.raises(errors.ConfigError, match=r"shuffle_shard \(2, 2\)"):
        ArrowSource(share, shuffle_shard=(2, 2))


@pytest.mark.parametrize("batch", [5, 8, 61])
def test_batches_drop_the_remainder_and_never_mix_epochs(dataset, batch):
    root, _ = dataset
    with NumpySource(root / "arrays.npz", shuffle=True, seed=0, chunk_size=7) as source:
        batches = list(source.batches(batch, epochs=3))
    per_epoch = N // batch
    assert len(batches) == 3 * per_epoch
    for b in batches:
        assert len(b.ids) == batch and len(b.epochs) == 1
    for e in range(3):
        labels = [x for b in batches if b.epochs == (e,) for x in b.labels]
        assert len(set(labels)) == per_epoch * batch
    assert source.stats["dropped"] == 3 * (N - per_epoch * batch)


def test_wrap_completes_from_the_next_epoch_and_says_so(dataset):
    root, _ = dataset
    with NumpySource(root / "arrays.npz", chunk_size=10) as source:
        batches = list(source.batches(25, epochs=2, remainder="wrap"))
    # 122 items: 25, 25, [11 of epoch 0 + 14 of epoch 1], 25, 22 (the last, short)
    assert [len(b.ids) for b in batches] == [25, 25, 25, 25, 22]
    assert [b.epochs for b in batches] == [(0,), (0,), (0, 1), (1,), (1,)]
    assert source.stats["mixed_batches"] == 1
    np.testing.assert_array_equal(batches[2].labels, [*range(50, 61), *range(14)])
    with NumpySource(root / "arrays.npz") as source:
        partial = list(source.batches(25, epochs=1, remainder="partial"))
    assert [len(b.ids) for b in partial] == [25, 25, 11]


def test_a_share_smaller_than_a_batch_is_a_config_error(dataset):
    root, _ = dataset
    with NumpySource(root / "arrays.npz", partition=6, num_partitions=7) as source:
        with pytest.raises(errors.ConfigError, match="partition 6 of 7 holds 9 records"):
            next(source.batches(10))
        assert len(next(source.batches(10, remainder="wrap")).ids) == 10


def test_parquet_numeric_columns_per_top(tmp_path):
    rng = np.random.default_rng(1)
    features = rng.normal(size=(30, 6)).astype(np.float32)
    table = pa.table(
        {
            "f": pa.array(features[:, :4].tolist(), pa.list_(pa.float32())),
            "g": features[:, 4],
            "h": features[:, 5].astype(np.float64),
            "y": pa.array([str(i) for i in range(30)]),
        }
    )
    pq.write_table(table, tmp_path / "n.parquet", row_group_size=7)
    for n in (1, 3):
        seen = []
        for part in range(n):
            with ParquetSource(
                tmp_path / "n.parquet",
                data_columns=["f", "g", "h"],
                label_column="target",
                select=["y AS target", "f", "g", "h"],
                default_shape=(2, 3, 1),
                partition=part,
                num_partitions=n,
                shuffle=True,
            ) as source:
                for chunk in source.epoch(0):
                    assert chunk.data.dtype == np.float32 and chunk.data.shape[1:] == (2, 3, 1)
                    rows = chunk.labels.astype(int)
                    np.testing.assert_allclose(chunk.data.reshape(-1, 6), features[rows], rtol=1e-6)
                    seen += rows.tolist()
        assert sorted(seen) == list(range(30))


def test_encoded_records_are_decoded_and_resized(tmp_path):
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, size=(3, 4 + i, 6), dtype=np.uint8) for i in range(5)]
    records = [
        (f"{i:03d}".encode(), encoded_datum(encode_image(im, ".png"), i).SerializeToString())
        for i, im in enumerate(images)
    ]
    write_lmdb(tmp_path / "enc", records)
    lmdb_to_parquet(tmp_path / "enc", tmp_path / "pq")
    for cls, path in ((LmdbSource, "enc"), (ParquetSource, "pq")):
        with cls(tmp_path / path, resize=(8, 8), decode_threads=2) as source:
            (chunk,) = list(source.epoch(0))
            assert chunk.data.shape == (5, 3, 8, 8)
        with cls(tmp_path / path, mode="gray", resize=(8, 8)) as source:
            assert source.item_shape == (1, 8, 8)
        with cls(tmp_path / path) as source:  # sizes differ and nothing resizes them
            with pytest.raises(errors.FormatError, match=r"(key '001'|row 1): image shape"):
                list(source.epoch(0))


def test_corrupt_records_and_size_mismatches_name_the_key_or_row(tmp_path):
    good = raw_datum(np.zeros((1, 2, 2), np.uint8), 0).SerializeToString()
    write_lmdb(tmp_path / "bad", [(b"k0", good), (b"k1", b"\xff\xfe junk"), (b"k2", good)])
    with LmdbSource(tmp_path / "bad") as source:
        with pytest.raises(errors.FormatError, match=r"LMDB '.*bad' key 'k1': not a Datum"):
            list(source.epoch(0))
    other = raw_datum(np.zeros((1, 3, 2), np.uint8), 0).SerializeToString()
    write_lmdb(tmp_path / "sizes", [(b"k0", good), (b"k1", other)])
    with LmdbSource(tmp_path / "sizes") as source:
        with pytest.raises(errors.FormatError, match=r"key 'k1': image shape \(1, 3, 2\) differs"):
            list(source.epoch(0))
    lmdb_to_seq(tmp_path / "bad", tmp_path / "bad.seq")
    with SeqFileSource(tmp_path / "bad.seq") as source:
        with pytest.raises(
            errors.FormatError, match=r"bad.seq' key 'k1' \(byte \d+\): not a Datum"
        ):
            list(source.epoch(0))
    table = pa.table(
        {
            "label": ["0", "1"],
            "data": [b"\0" * 4, b"\0" * 5],
            "channels": [1, 1],
            "height": [2, 2],
            "width": [2, 2],
        }
    )
    pq.write_table(table, tmp_path / "bad.parquet")
    with ParquetSource(tmp_path / "bad.parquet") as source:
        with pytest.raises(errors.FormatError, match=r"bad.parquet' row 1: 5 data bytes"):
            list(source.epoch(0))
    with pytest.raises(errors.FormatError, match=r"lacks the column\(s\) \['pixels'\]"):
        ParquetSource(tmp_path / "bad.parquet", data_columns="pixels")


@pytest.mark.parametrize("cls", list(PATHS))
def test_missing_sources_name_the_path(tmp_path, cls):
    missing = tmp_path / "nowhere"
    with pytest.raises(errors.IoError, match="nowhere"):
        cls(missing)


def test_registry_and_java_aliases():
    assert source_class("com.yahoo.ml.caffe.LMDB") is LmdbSource
    assert source_class("com.yahoo.ml.caffe.SeqImageDataSource") is SeqFileSource
    assert source_class("com.yahoo.ml.caffe.ImageDataFrame") is ParquetSource
    assert SOURCE_CLASSES["NumPy"] is NumpySource
    with pytest.raises(errors.ConfigError, match=r"layer 'x': unknown source_class 'Foo'.*LMDB"):
        source_class("Foo", "layer 'x': ")


def test_uri_paths(dataset):
    root, _ = dataset
    with LmdbSource(f"file:{root / 'lmdb'}") as source:
        assert len(source) == N
    with pytest.raises(errors.IoError, match="not on a local file system"):
        LmdbSource("hdfs:///projects/x_lmdb")


def test_arrow_source_reads_tables_in_memory_with_select(dataset):
    root, pixels = dataset
    table = pq.read_table(root / "parquet").rename_columns(
        ["id", "target", "channels", "height", "width", "encoded", "pixels"]
    )
    with ArrowSource(
        table.to_batches(max_chunksize=10), select=["pixels AS data", "target AS label"],
        partition=1, num_partitions=2, shuffle=True,
    ) as source:
        assert source.path == "<Arrow table>" and len(source) == N - N // 2
        (chunk,) = list(source.epoch(0))
        index = chunk.labels.astype(int)
        assert sorted(index.tolist()) == list(range(N // 2, N))
        np.testing.assert_array_equal(chunk.data, pixels[index])
        np.testing.assert_array_equal(chunk.ids, index)
    with pytest.raises(errors.FormatError, match=r"Arrow '<Arrow table>' lacks the column\(s\) \['data', 'label'\]"):
        ArrowSource(table)
    (root / "junk.arrow").write_bytes(b"not arrow")
    with pytest.raises(errors.FormatError, match="junk.arrow' is not an Arrow IPC file"):
        ArrowSource(root / "junk.arrow")
    assert source_class("Arrow") is ArrowSource
