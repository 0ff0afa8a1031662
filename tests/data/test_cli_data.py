"""The data-conversion verbs of `caffeonspark` (python/caffeonspark/cli_data.py) as a user
runs them, through cli.main: an image folder -> convert-imageset -> compute-image-mean, and
the LMDB -> Parquet -> LMDB -> SequenceFile -> LMDB chain, read back with the project's
readers and compared with the images, labels and a NumPy mean; one- and two-dash flags;
missing inputs fail with an error naming them and write nothing. The converters' own
details are tested in test_convert_imageset.py and test_parquet_seq.py."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from caffeonspark import cli, model_io
from caffeonspark.data.datums import datum_image, parse_datum
from caffeonspark.data.lmdb_writer import iter_lmdb

CLASSES = ("ant", "bee", "cat")  # folder mode: labels are the sorted class indices


@pytest.fixture
def image_folder(tmp_path) -> tuple[Path, dict[str, tuple[np.ndarray, int]]]:
    """ROOT/<class>/<n>.png: 3 classes x 3 random 6x5 BGR images (lossless PNG)."""
    rng = np.random.default_rng(11)
    root = tmp_path / "images"
    images = {}
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for n in range(3):
            image = rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
            assert cv2.imwrite(str(root / name / f"{n}.png"), image)
            images[f"{name}/{n}.png"] = (image, label)
    return root, images


def read_back(db: Path) -> dict[str, tuple[np.ndarray, int]]:
    """path -> (H, W, C) pixels and label, from the Datums of `db` (keys '%08d_<path>')."""
    out = {}
    for key, value in iter_lmdb(db):
        datum = parse_datum(value, str(db))
        path = key.decode().split("_", 1)[1]
        out[path] = (datum_image(datum, path).transpose(1, 2, 0), datum.label)
    return out


def assert_same_images(got, want):
    assert sorted(got) == sorted(want)
    for path, (image, label) in want.items():
        np.testing.assert_array_equal(got[path][0], image, err_msg=path)
        assert got[path][1] == label, path


def test_image_folder_to_lmdb_and_mean(image_folder, tmp_path, capsys):
    root, images = image_folder
    db = tmp_path / "db"
    assert cli.main(["convert-imageset", str(root), str(db)]) == 0
    assert f"9 images -> {db}" in capsys.readouterr().out
    assert_same_images(read_back(db), images)

    mean_file = tmp_path / "mean.binaryproto"
    assert cli.main(["compute-image-mean", str(db), str(mean_file)]) == 0
    expected = np.mean([img.astype(np.float64) for img, _ in images.values()], axis=0)
    expected = expected.transpose(2, 0, 1)  # planar (C, H, W), BGR as Caffe stores it
    mean = model_io.read_binaryproto(mean_file).reshape(expected.shape)
    np.testing.assert_allclose(mean, expected, rtol=1e-6)
    printed = capsys.readouterr().out.split("mean_value:")[1].split()
    np.testing.assert_allclose([float(v) for v in printed], expected.mean(axis=(1, 2)),
                               rtol=1e-5)
    # without an output file the verb only prints
    assert cli.main(["compute-image-mean", str(db)]) == 0
    assert "mean_value:" in capsys.readouterr().out


def test_parquet_and_sequencefile_round_trip_keeps_images(image_folder, tmp_path, capsys):
    root, images = image_folder
    db = tmp_path / "db"
    cli.main(["convert-imageset", str(root), str(db), "--encoded"])
    steps = [
        ["lmdb-to-parquet", str(db), str(tmp_path / "pq"), "--row_group_size", "4"],
        ["parquet-to-lmdb", str(tmp_path / "pq"), str(tmp_path / "from_pq")],
        ["lmdb-to-seq", str(tmp_path / "from_pq"), str(tmp_path / "all.seq")],
        ["seq-to-lmdb", str(tmp_path / "all.seq"), str(tmp_path / "from_seq")],
    ]
    for argv in steps:
        assert cli.main(argv) == 0, argv
    out = capsys.readouterr().out
    for line in ("9 rows", "9 datums", "9 records"):
        assert line in out
    assert list(iter_lmdb(tmp_path / "from_seq")) == list(iter_lmdb(db))
    assert_same_images(read_back(tmp_path / "from_seq"), images)  # PNG bytes decode exactly
    # --overwrite replaces an existing database
    assert cli.main(["seq-to-lmdb", str(tmp_path / "all.seq"), str(tmp_path / "from_seq"),
                     "-overwrite"]) == 0


def test_one_and_two_dash_flags_are_the_same(image_folder, tmp_path):
    root, _ = image_folder
    one, two = tmp_path / "one", tmp_path / "two"
    cli.main(["convert-imageset", str(root), str(one), "-shuffle", "-seed", "5",
              "-resize_height", "3", "-resize_width", "4", "-gray"])
    cli.main(["convert-imageset", str(root), str(two), "--shuffle", "--seed", "5",
              "--resize_height", "3", "--resize_width", "4", "--gray"])
    records = list(iter_lmdb(one))
    assert records == list(iter_lmdb(two))
    keys = [k.decode().split("_", 1)[1] for k, _ in records]
    assert sorted(keys) == sorted(f"{c}/{n}.png" for c in CLASSES for n in range(3))
    assert keys != sorted(keys)  # shuffled (seed 5)
    first = parse_datum(records[0][1])
    assert (first.channels, first.height, first.width) == (1, 3, 4)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["convert-imageset", "{t}/nofolder", "{t}/db"], "image folder '.*nofolder' does not exist"),
        (["convert-imageset", "{t}", "{t}/nolist.txt", "{t}/db"], "cannot read image list"),
        (["compute-image-mean", "{t}/nodb", "{t}/mean.binaryproto"], "no LMDB at '.*nodb'"),
        (["lmdb-to-parquet", "{t}/nodb", "{t}/pq"], "no LMDB at '.*nodb'"),
        (["parquet-to-lmdb", "{t}/no.parquet", "{t}/db"], "Parquet source '.*no.parquet'"),
        (["lmdb-to-seq", "{t}/nodb", "{t}/x.seq"], "no LMDB at '.*nodb'"),
        (["seq-to-lmdb", "{t}/no.seq", "{t}/db"], "SequenceFile source '.*no.seq'"),
    ],
)
def test_missing_inputs_name_the_path_and_write_nothing(tmp_path, capsys, argv, message):
    work = tmp_path / "work"
    work.mkdir()
    assert cli.main([a.format(t=work) for a in argv]) == 1  # a user error: one line, status 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("caffeonspark: error: ")
    assert re.search(message, error), error
    assert list(work.iterdir()) == []


def test_usage_errors(tmp_path, capsys):
    assert cli.main(["convert-imageset", "a", "b", "c", "d"]) == 2
    assert re.search(r"takes ROOT \[LISTFILE\] DB", capsys.readouterr().err)
    assert cli.main(["lmdb-to-seq", str(tmp_path / "db")]) == 2  # OUT missing
    error = capsys.readouterr().err
    assert error.startswith("caffeonspark: error: ") and "out" in error
