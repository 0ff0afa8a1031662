"""HDF5Data and HDF5Output (cpp/layers/hdf5_data.h, python/caffeonspark/data/hdf5_feeder.py):
rows in file order with wrap-around across files, tops named like the datasets, seeded
shuffles, sharding, errors naming files and datasets; HDF5Output's "data"/"label" datasets
in Caffe's 4-D layout, appended per Forward, published atomically when the net closes; and
Caffe's hdf5_classification net trains on generated files."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from google.protobuf import text_format

from caffeonspark import engine, errors, model_io
from caffeonspark.data.feed_options import FeedOptions
from caffeonspark.data.hdf5_feeder import Hdf5Reader
from caffeonspark.proto import caffe_pb2
from caffeonspark.solver import Solver


def write_h5(path: Path, **datasets: np.ndarray) -> Path:
    with h5py.File(path, "w") as handle:
        for name, value in datasets.items():
            handle.create_dataset(name, data=value)
    return path


def write_list(path: Path, files: list[Path]) -> Path:
    path.write_text("".join(f"{f}\n" for f in files))
    return path


@pytest.fixture
def two_files(tmp_path):
    """File A: rows 0..4, file B: rows 5..11; data row i = i * [1, 10, 100] (shape (3,)),
    label row i = i, extra row i = i as a (2, 2) block."""
    rows = np.arange(12, dtype=np.float64)
    data = rows[:, None] * np.array([1, 10, 100])
    extra = np.repeat(rows, 4).reshape(12, 2, 2)
    a = write_h5(tmp_path / "a.h5", data=data[:5], label=rows[:5].astype(np.int32),
                 extra=extra[:5])
    b = write_h5(tmp_path / "b.h5", data=data[5:], label=rows[5:].astype(np.int32),
                 extra=extra[5:])
    return write_list(tmp_path / "list.txt", [a, b]), data, rows


def hdf5_net(source, batch_size=4, tops=("data", "label"), shuffle=False, phase=engine.TRAIN,
             feed=None, extra=""):
    top_text = " ".join(f'top: "{t}"' for t in tops)
    text = f"""layer {{ name: "h5" type: "HDF5Data" {top_text}
      hdf5_data_param {{ source: "{source}" batch_size: {batch_size} shuffle: {str(shuffle).lower()} }} }}
    {extra}"""
    return engine.Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase=phase, feed=feed)


def test_rows_in_order_wrap_across_files(two_files):
    source, data, rows = two_files
    net = hdf5_net(source, batch_size=5, tops=("data", "label", "extra"))
    assert net.blobs["data"].shape == (5, 3)
    assert net.blobs["label"].shape == (5,)
    assert net.blobs["extra"].shape == (5, 2, 2)
    seen = []
    for _ in range(6):  # 30 rows = 2.5 passes over 12 rows
        net.forward()
        seen.extend(net.blobs["label"].data.tolist())
        np.testing.assert_array_equal(
            net.blobs["data"].data, data[net.blobs["label"].data.astype(int)]
        )
        np.testing.assert_array_equal(net.blobs["extra"].data[:, 1, 1], net.blobs["label"].data)
    assert seen == [float(i % 12) for i in range(30)]
    net.close()


def test_shuffle_is_seeded_and_covers_each_pass(two_files):
    source, _, _ = two_files

    def labels(seed):
        net = hdf5_net(source, batch_size=6, shuffle=True, feed=FeedOptions(seed=seed))
        out = []
        for _ in range(4):
            net.forward()
            out.extend(net.blobs["label"].data.astype(int).tolist())
        net.close()
        return out

    first = labels(3)
    assert first == labels(3)
    assert first != labels(4)
    assert sorted(first[:12]) == list(range(12)) and sorted(first[12:]) == list(range(12))
    assert first[:12] != list(range(12))
    # within a pass, the rows of one file stay together (files are shuffled, then rows)
    a_positions = [i for i, v in enumerate(first[:12]) if v < 5]
    assert a_positions in (list(range(5)), list(range(7, 12)))


def test_feed_shuffle_off_keeps_the_order(two_files):
    source, _, _ = two_files
    net = hdf5_net(source, batch_size=12, shuffle=True, feed=FeedOptions(shuffle=False))
    net.forward()
    assert net.blobs["label"].data.tolist() == list(range(12))
    net.close()


@pytest.mark.parametrize("world_size", [2, 3])
def test_train_ranks_split_the_rows(two_files, world_size):
    source, _, _ = two_files
    per_rank = []
    for rank in range(world_size):
        reader = Hdf5Reader(str(source), ["label"], rank=rank, world_size=world_size)
        rows = reader.rows()
        per_rank.append([int(next(rows)[0]) for _ in range(12 // world_size)])
    assert sorted(sum(per_rank, [])) == list(range(12))
    assert per_rank[1][0] == 1


def test_missing_dataset_names_file_and_dataset(tmp_path, two_files):
    source, _, _ = two_files
    with pytest.raises(errors.FormatError, match=r"a\.h5' has no dataset 'nope'") as info:
        hdf5_net(source, tops=("data", "nope"))
    assert "layer 'h5' (HDF5Data)" in str(info.value)


def test_missing_list_and_missing_file(tmp_path):
    with pytest.raises(errors.IoError, match="cannot read the HDF5 file list"):
        hdf5_net(tmp_path / "absent.txt")
    source = write_list(tmp_path / "l.txt", [tmp_path / "gone.h5"])
    with pytest.raises(errors.IoError, match="gone.h5"):
        hdf5_net(source)


def test_a_later_file_of_another_shape_fails_in_forward_naming_it(tmp_path):
    a = write_h5(tmp_path / "a.h5", data=np.zeros((2, 3)), label=np.zeros(2))
    b = write_h5(tmp_path / "b.h5", data=np.zeros((2, 4)), label=np.zeros(2))
    net = hdf5_net(write_list(tmp_path / "l.txt", [a, b]), batch_size=2)
    net.forward()
    with pytest.raises(errors.FormatError, match=r"b\.h5' dataset 'data' has rows of shape"):
        net.forward()
    net.close()


def test_rows_disagreeing_within_a_file(tmp_path):
    a = write_h5(tmp_path / "a.h5", data=np.zeros((3, 2)), label=np.zeros(2))
    with pytest.raises(errors.FormatError, match="differ in rows"):
        hdf5_net(write_list(tmp_path / "l.txt", [a]))


def output_net(source, file_name, batch_size=4):
    extra = f"""layer {{ name: "out" type: "HDF5Output" bottom: "data" bottom: "label"
      hdf5_output_param {{ file_name: "{file_name}" }} }}"""
    return hdf5_net(source, batch_size=batch_size, extra=extra)


def test_hdf5_output_writes_data_and_label_in_caffe_layout_on_close(two_files, tmp_path):
    source, data, rows = two_files
    out = tmp_path / "out.h5"
    net = output_net(source, out, batch_size=4)
    for _ in range(4):  # 16 rows: wraps once
        net.forward()
    assert not out.exists()  # published only when complete
    net.close()
    with h5py.File(out, "r") as handle:
        assert sorted(handle.keys()) == ["data", "label"]
        order = [i % 12 for i in range(16)]
        assert handle["data"].shape == (16, 3, 1, 1)  # Caffe's legacy 4-D view
        assert handle["label"].shape == (16, 1, 1, 1)
        assert handle["data"].dtype == np.float32
        np.testing.assert_array_equal(handle["data"][:, :, 0, 0], data[order])
        np.testing.assert_array_equal(handle["label"][:, 0, 0, 0], rows[order])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_hdf5_output_keeps_an_existing_file_until_it_is_complete(two_files, tmp_path):
    source, _, _ = two_files
    out = write_h5(tmp_path / "out.h5", old=np.ones(3))
    net = output_net(source, out)
    net.forward()
    with h5py.File(out, "r") as handle:
        assert list(handle.keys()) == ["old"]
    net.close()
    with h5py.File(out, "r") as handle:
        assert sorted(handle.keys()) == ["data", "label"]


def test_hdf5_output_missing_folder_and_bottom_mismatch(two_files, tmp_path):
    source, _, _ = two_files
    with pytest.raises(errors.IoError, match="does not exist"):
        output_net(source, tmp_path / "no" / "out.h5")
    text = f"""layer {{ name: "a" type: "DummyData" top: "x" top: "y"
        dummy_data_param {{ shape {{ dim: 3 dim: 2 }} shape {{ dim: 4 }} }} }}
      layer {{ name: "out" type: "HDF5Output" bottom: "x" bottom: "y"
        hdf5_output_param {{ file_name: "{tmp_path / 'o.h5'}" }} }}"""
    with pytest.raises(errors.ShapeError, match="same first dimension"):
        engine.Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase=engine.TEST)


def test_hdf5_classification_net_trains(anchors, tmp_path):
    rng = np.random.default_rng(0)
    w = rng.normal(size=4)

    def split(name, n):
        x = rng.normal(size=(n, 4)).astype(np.float32)
        y = (x @ w > 0).astype(np.float32)
        h5 = write_h5(tmp_path / f"{name}.h5", data=x, label=y)
        return write_list(tmp_path / f"{name}.txt", [h5])

    sources = {"TRAIN": split("train", 200), "TEST": split("test", 50)}
    net = model_io.read_net_prototxt(anchors / "caffe" / "hdf5_classification_train_val.prototxt")
    for layer in net.layer:
        if layer.type == "HDF5Data":
            phase = caffe_pb2.Phase.Name(layer.include[0].phase)
            layer.hdf5_data_param.source = str(sources[phase])
    param = caffe_pb2.SolverParameter(base_lr=0.1, lr_policy="fixed", momentum=0.9,
                                      random_seed=1, max_iter=100)
    param.net_param.CopyFrom(net)
    solver = Solver(param)
    losses = []
    for _ in range(40):
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5])
    assert os.path.exists(sources["TRAIN"])
