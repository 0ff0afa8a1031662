"""LMDB <-> Parquet (data/parquet_io.py, CaffeOnSpark's image schema) and LMDB <-> SequenceFile
(data/convert_seq.py): round trips keep every key and Datum byte for byte, raw and encoded;
bad inputs name the file and the row or key; an interrupted conversion leaves the old output
as it was; the CLI verbs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from caffeonspark import cli, errors
from caffeonspark.data.convert_seq import lmdb_to_seq, seq_to_lmdb
from caffeonspark.data.datums import encoded_datum, raw_datum
from caffeonspark.data.image_codec import encode_image
from caffeonspark.data.lmdb_writer import iter_lmdb, write_lmdb
from caffeonspark.data.parquet_io import IMAGE_SCHEMA, lmdb_to_parquet, parquet_to_lmdb
from caffeonspark.data.seqfile import SequenceFileWriter
from caffeonspark.proto import caffe_pb2


@pytest.fixture
def mixed_db(tmp_path):
    rng = np.random.default_rng(0)
    records = []
    for i in range(23):
        image = rng.integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
        datum = (
            encoded_datum(encode_image(image, ".png"), i % 4)
            if i % 3 == 0
            else raw_datum(image, i % 4)
        )
        records.append((f"{i:08d}_img{i}.png".encode(), datum.SerializeToString()))
    return write_lmdb(tmp_path / "src_lmdb", records) and tmp_path / "src_lmdb", records


def test_parquet_round_trip_and_schema(mixed_db, tmp_path):
    db, records = mixed_db
    assert lmdb_to_parquet(db, tmp_path / "pq", row_group_size=5) == 23
    parquet = pq.ParquetFile(tmp_path / "pq" / "part-00000.parquet")
    assert parquet.schema_arrow == IMAGE_SCHEMA and parquet.num_row_groups == 5
    table = parquet.read()
    assert table.column("id").to_pylist() == [k.decode() for k, _ in records]
    assert table.column("label").to_pylist() == [str(i % 4) for i in range(23)]
    assert table.column("encoded").to_pylist() == [i % 3 == 0 for i in range(23)]
    assert table.column("channels").to_pylist()[:2] == [0, 3]
    assert parquet_to_lmdb(tmp_path / "pq", tmp_path / "back") == 23
    assert list(iter_lmdb(tmp_path / "back")) == records


def test_parquet_with_numeric_labels_and_no_id(tmp_path):
    image = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    table = pa.table(
        {
            "label": pa.array([7, 2], pa.int64()),
            "data": [image.tobytes()] * 2,
            "channels": [2, 2],
            "height": [3, 3],
            "width": [4, 4],
        }
    )
    pq.write_table(table, tmp_path / "x.parquet")
    parquet_to_lmdb(tmp_path / "x.parquet", tmp_path / "db")
    got = list(iter_lmdb(tmp_path / "db"))
    assert [k for k, _ in got] == [b"00000000", b"00000001"]
    assert got[1][1] == raw_datum(image, 2).SerializeToString()


def test_parquet_errors_name_file_and_row(tmp_path):
    good = np.zeros(12, np.uint8).tobytes()
    table = pa.table(
        {
            "id": ["a", "b"],
            "label": ["1", "2"],
            "channels": [1, 1],
            "height": [3, 3],
            "width": [4, 5],
            "encoded": [False, False],
            "data": [good, good],
        }
    )
    pq.write_table(table, tmp_path / "bad.parquet")
    with pytest.raises(errors.FormatError, match=r"bad.parquet' row 1 \(id 'b'\): 12 data bytes"):
        parquet_to_lmdb(tmp_path / "bad.parquet", tmp_path / "db")
    pq.write_table(pa.table({"label": ["1"]}), tmp_path / "nodata.parquet")
    with pytest.raises(errors.FormatError, match=r"lacks the column\(s\) \['data'\]"):
        parquet_to_lmdb(tmp_path / "nodata.parquet", tmp_path / "db2")
    pq.write_table(pa.table({"label": ["cat"], "data": [good]}), tmp_path / "lbl.parquet")
    with pytest.raises(errors.FormatError, match="label column cannot be read as numbers"):
        parquet_to_lmdb(tmp_path / "lbl.parquet", tmp_path / "db3")
    with pytest.raises(errors.IoError, match="does not exist"):
        parquet_to_lmdb(tmp_path / "nothing", tmp_path / "db4")
    floats = caffe_pb2.Datum(channels=1, height=1, width=2, label=0)
    floats.float_data.extend([1.0, 2.0])
    write_lmdb(tmp_path / "floats", [(b"f0", floats.SerializeToString())])
    with pytest.raises(errors.FormatError, match="key 'f0': float_data"):
        lmdb_to_parquet(tmp_path / "floats", tmp_path / "fpq")


def test_sequencefile_round_trip(mixed_db, tmp_path):
    db, records = mixed_db
    assert lmdb_to_seq(db, tmp_path / "seq" / "part-00000") == 23
    assert seq_to_lmdb(tmp_path / "seq", tmp_path / "back") == 23
    assert list(iter_lmdb(tmp_path / "back")) == records


@pytest.mark.parametrize("convert, argument", [(lmdb_to_seq, "out/part-00000"),
                                                (lmdb_to_parquet, "out")])
def test_interrupted_conversion_keeps_the_old_output(mixed_db, tmp_path, monkeypatch, convert,
                                                     argument):
    db, records = mixed_db
    convert(db, tmp_path / argument)
    written = sorted((tmp_path / "out").iterdir())
    before = [p.read_bytes() for p in written]

    def crash(path):
        yield from records[:10]
        raise RuntimeError("disk gone")

    monkeypatch.setattr(f"{convert.__module__}.iter_lmdb", crash)
    with pytest.raises(RuntimeError, match="disk gone"):
        convert(db, tmp_path / argument)
    assert sorted((tmp_path / "out").iterdir()) == written
    assert [p.read_bytes() for p in written] == before


def test_sequencefile_value_that_is_not_a_datum_names_the_key(tmp_path):
    with SequenceFileWriter(tmp_path / "bad.seq") as writer:
        writer.append("k0", raw_datum(np.zeros((1, 1, 1), np.uint8), 0).SerializeToString())
        writer.append("k1", b"\xff\xff\xff garbage")
    with pytest.raises(errors.FormatError, match=r"bad.seq' key 'k1': not a Datum"):
        seq_to_lmdb(tmp_path / "bad.seq", tmp_path / "db")
    assert not (tmp_path / "db").exists()


def test_cli_verbs(mixed_db, tmp_path, capsys):
    db, records = mixed_db
    assert cli.main(["lmdb-to-parquet", str(db), str(tmp_path / "pq"), "-row_group_size", "7"]) == 0
    assert cli.main(["parquet-to-lmdb", str(tmp_path / "pq"), str(tmp_path / "db1")]) == 0
    assert cli.main(["lmdb-to-seq", str(tmp_path / "db1"), str(tmp_path / "x.seq")]) == 0
    assert cli.main(["seq-to-lmdb", str(tmp_path / "x.seq"), str(tmp_path / "db2")]) == 0
    assert list(iter_lmdb(tmp_path / "db2")) == records
    assert "23 rows" in capsys.readouterr().out
