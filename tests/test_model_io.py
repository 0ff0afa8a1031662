"""Tests of python/caffeonspark/model_io.py: every anchor prototxt parses (net or solver);
Caffe-written .caffemodel / .solverstate files decode and round-trip byte for byte; what we
write has Caffe's wire layout (checked with a wire decoder written here); blob and
.binaryproto conversions; atomic writes; errors name the file (and line:column for text).
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from caffeonspark import model_io
from caffeonspark.errors import FormatError, IoError
from caffeonspark.proto import caffe_pb2

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ANCHORS = SHARED / "anchors"
PROTOTXT_DIRS = ("caffe", "caffeonspark", "caffe-ref")
needs_shared = pytest.mark.skipif(
    not ANCHORS.is_dir(), reason=f"fixture directory {ANCHORS} is absent"
)


def _prototxts() -> list[Path]:
    return sorted(p for d in PROTOTXT_DIRS for p in (ANCHORS / d).glob("*.prototxt"))


def _is_solver(path: Path) -> bool:
    if "solver" in path.name:
        return True
    return re.search(r"^\s*base_lr\s*:", path.read_text(), re.M) is not None


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


# ---------------------------------------------------------------------------------------
# A minimal protobuf wire decoder, independent of the protobuf package.
# ---------------------------------------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def wire_fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """(field number, wire type, value) for each field: varints as int, length-delimited
    and fixed-width fields as their raw bytes."""
    fields = []
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(data, pos)
        elif wire_type == 2:
            length, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire_type == 5:
            value, pos = data[pos : pos + 4], pos + 4
        elif wire_type == 1:
            value, pos = data[pos : pos + 8], pos + 8
        else:
            raise AssertionError(f"unexpected wire type {wire_type}")
        fields.append((number, wire_type, value))
    assert pos == len(data), "trailing bytes"
    return fields


def _packed_varints(data: bytes) -> list[int]:
    values, pos = [], 0
    while pos < len(data):
        value, pos = _read_varint(data, pos)
        values.append(value)
    return values


# ---------------------------------------------------------------------------------------
# Every anchor prototxt parses
# ---------------------------------------------------------------------------------------


@needs_shared
@pytest.mark.parametrize("path", _prototxts() if ANCHORS.is_dir() else [], ids=_id)
def test_anchor_prototxt_parses(path: Path):
    if _is_solver(path):
        solver = model_io.read_solver_prototxt(path)
        assert solver.type in {"SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam"}
        assert not solver.HasField("solver_type")
        assert solver.HasField("snapshot_prefix")
    else:
        net = model_io.read_net_prototxt(path)
        assert net.layer, "no layers"
        assert not net.layers and not net.input and not net.input_dim and not net.input_shape
        assert all(layer.type for layer in net.layer)


@needs_shared
def test_all_anchor_dirs_have_prototxts():
    counts = {d: len(list((ANCHORS / d).glob("*.prototxt"))) for d in PROTOTXT_DIRS}
    assert all(counts.values()), counts


def test_caffeonspark_extension_fields(anchors):
    net = model_io.read_net_prototxt(anchors / "caffeonspark" / "lenet_cos_train_test.prototxt")
    data = net.layer[0]
    assert data.type == "CoSData"
    assert data.source_class == "com.yahoo.ml.caffe.DataFrameSource"
    tops = data.cos_data_param.top
    assert [t.name for t in tops] == ["data", "label"]
    assert tops[0].type == caffe_pb2.CoSDataParameter.TopBlob.RAW_IMAGE
    assert tops[0].transform_param.scale == pytest.approx(1 / 256)
    memory = model_io.read_net_prototxt(
        anchors / "caffeonspark" / "lenet_memory_train_test.prototxt"
    )
    assert memory.layer[0].memory_data_param.share_in_parallel is False
    assert memory.layer[0].source_class == "com.yahoo.ml.caffe.LMDB"


def test_vgg_stray_fields_are_tolerated(anchors):
    net = model_io.read_net_prototxt(anchors / "caffe" / "vgg_ilsvrc_16_layers_deploy.prototxt")
    assert list(net.state.stage) == [""]
    assert net.layer[0].type == "Input"
    assert net.layer[0].HasField("image_data_param")


# ---------------------------------------------------------------------------------------
# Caffe-written binaries
# ---------------------------------------------------------------------------------------

LENET_PARAMS = {
    "conv1": [(20, 1, 5, 5), (20,)],
    "conv2": [(50, 20, 5, 5), (50,)],
    "ip1": [(500, 800), (500,)],
    "ip2": [(10, 500), (10,)],
}


def test_read_lenet_caffemodel(anchors):
    net = model_io.read_caffemodel(anchors / "caffe-ref" / "lenet.caffemodel")
    assert [layer.name for layer in net.layer] == [
        "input", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "loss",
    ]  # fmt: skip
    for layer in net.layer:
        shapes = [model_io.blob_to_array(b).shape for b in layer.blobs]
        assert shapes == LENET_PARAMS.get(layer.name, [])
        assert layer.phase == caffe_pb2.TRAIN
    bias = model_io.blob_to_array(net.layer[1].blobs[1])
    assert bias.dtype == np.float32 and not bias.any()  # constant-filled bias


@pytest.mark.parametrize(
    "name", ["lenet.caffemodel", "cifar10_quick.caffemodel", "solver_SGD_iter_10.caffemodel"]
)
def test_caffemodel_round_trip_byte_exact(anchors, tmp_path, name):
    source = anchors / "caffe-ref" / name
    net = model_io.read_caffemodel(source)
    out = tmp_path / name
    model_io.write_caffemodel(out, net)
    assert out.read_bytes() == source.read_bytes()


def test_blobs_reencode_byte_exact(anchors):
    net = model_io.read_caffemodel(anchors / "caffe-ref" / "cifar10_quick.caffemodel")
    blobs = [blob for layer in net.layer for blob in layer.blobs]
    assert blobs
    for blob in blobs:
        again = model_io.array_to_blob(model_io.blob_to_array(blob))
        assert again.SerializeToString() == blob.SerializeToString()


def test_solverstate_round_trip_byte_exact(anchors, tmp_path):
    source = anchors / "caffe-ref" / "solver_SGD_iter_10.solverstate"
    state = model_io.read_solverstate(source)
    assert state.iter == 10
    assert state.current_step == 0
    assert state.learned_net.endswith("solver_SGD_iter_10.caffemodel")
    expected = [s for name in ("conv1", "conv2", "ip1", "ip2") for s in LENET_PARAMS[name]]
    assert [model_io.blob_to_array(h).shape for h in state.history] == expected
    out = tmp_path / "copy.solverstate"
    model_io.write_solverstate(out, state)
    assert out.read_bytes() == source.read_bytes()
    assert model_io.read_solverstate(out) == state


def test_written_caffemodel_wire_layout(tmp_path):
    net = caffe_pb2.NetParameter(name="tiny")
    layer = net.layer.add(name="ip", type="InnerProduct", bottom=["x"], top=["y"])
    weights = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    layer.blobs.append(model_io.array_to_blob(weights))
    path = tmp_path / "tiny.caffemodel"
    model_io.write_caffemodel(path, net)

    top = wire_fields(path.read_bytes())
    assert top[0] == (1, 2, b"tiny")
    layers = [value for number, wire, value in top if number == 100]
    assert len(layers) == 1 and all(wire == 2 for number, wire, _ in top if number == 100)
    assert not [f for f in top if f[0] == 2]  # no V1 `layers`

    layer_fields = wire_fields(layers[0])
    assert (1, 2, b"ip") in layer_fields
    assert (2, 2, b"InnerProduct") in layer_fields
    blobs = [value for number, wire, value in layer_fields if number == 7 and wire == 2]
    assert len(blobs) == 1

    blob_fields = {number: (wire, value) for number, wire, value in wire_fields(blobs[0])}
    assert set(blob_fields) == {5, 7}  # data and shape only: no legacy dims, no diff
    shape_wire, shape = blob_fields[7]
    assert shape_wire == 2
    ((dim_number, dim_wire, dims),) = wire_fields(shape)
    assert (dim_number, dim_wire) == (1, 2)  # BlobShape.dim, packed
    assert _packed_varints(dims) == [2, 3]
    data_wire, data = blob_fields[5]
    assert data_wire == 2  # packed floats: one length-delimited run
    assert struct.unpack("<6f", data) == tuple(weights.ravel())


# ---------------------------------------------------------------------------------------
# Blobs and .binaryproto
# ---------------------------------------------------------------------------------------


def test_blob_legacy_dims_win_over_shape():
    blob = caffe_pb2.BlobProto(num=1, channels=2, height=1, width=3, data=range(6))
    blob.shape.dim.extend([6])
    assert model_io.blob_shape(blob) == (1, 2, 1, 3)
    assert model_io.blob_to_array(blob).shape == (1, 2, 1, 3)


def test_blob_double_data_wins():
    blob = caffe_pb2.BlobProto(data=[1, 2], double_data=[3.5, 4.5])
    blob.shape.dim.append(2)
    array = model_io.blob_to_array(blob)
    assert array.dtype == np.float32
    assert array.tolist() == [3.5, 4.5]


def test_blob_diff():
    blob = model_io.array_to_blob(np.ones((2, 2)), diff=np.full((2, 2), 0.5))
    assert model_io.blob_to_array(blob, diff=True).tolist() == [[0.5, 0.5], [0.5, 0.5]]
    with pytest.raises(ValueError, match="diff shape"):
        model_io.array_to_blob(np.ones(3), diff=np.ones(2))


def test_blob_count_mismatch():
    blob = caffe_pb2.BlobProto(data=[1, 2, 3])
    blob.shape.dim.extend([2, 2])
    with pytest.raises(FormatError, match="3 data values but its shape"):
        model_io.blob_to_array(blob)


def test_array_to_blob_scalar_and_empty():
    scalar = model_io.array_to_blob(np.float32(2.0))
    assert list(scalar.shape.dim) == [] and list(scalar.data) == [2.0]
    assert model_io.blob_to_array(scalar).shape == ()
    empty = model_io.array_to_blob(np.zeros((0, 4)))
    assert list(empty.shape.dim) == [0, 4] and len(empty.data) == 0
    assert model_io.blob_to_array(empty).shape == (0, 4)


def test_binaryproto_round_trip(tmp_path):
    mean = np.random.default_rng(0).random((1, 3, 4, 5), dtype=np.float32) * 255
    path = tmp_path / "mean.binaryproto"
    model_io.write_binaryproto(path, mean)
    np.testing.assert_array_equal(model_io.read_binaryproto(path), mean)


def test_binaryproto_legacy_4d(tmp_path):
    mean = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    path = tmp_path / "mean.binaryproto"
    model_io.write_binaryproto(path, mean, legacy_4d=True)
    fields = {number for number, _, _ in wire_fields(path.read_bytes())}
    assert fields == {1, 2, 3, 4, 5}  # num, channels, height, width, data
    np.testing.assert_array_equal(model_io.read_binaryproto(path), mean[None])


def test_binaryproto_bad_count_names_file(tmp_path):
    path = tmp_path / "bad.binaryproto"
    blob = caffe_pb2.BlobProto(num=1, channels=1, height=2, width=2, data=[1.0])
    path.write_bytes(blob.SerializeToString())
    with pytest.raises(FormatError, match=re.escape(str(path))):
        model_io.read_binaryproto(path)


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


def test_missing_file_is_io_error(tmp_path):
    missing = tmp_path / "nope.prototxt"
    for reader in (
        model_io.read_net_prototxt,
        model_io.read_solver_prototxt,
        model_io.read_caffemodel,
        model_io.read_solverstate,
        model_io.read_binaryproto,
    ):
        with pytest.raises(IoError, match=re.escape(str(missing))):
            reader(missing)


def test_malformed_prototxt_names_file_line_column(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "x"\nlayer {\n  name: "a"\n  bottm: "data"\n}\n')
    with pytest.raises(FormatError) as info:
        model_io.read_net_prototxt(path)
    message = str(info.value)
    assert message.startswith(f"{path}:4:3: ")
    assert "bottm" in message


def test_unterminated_prototxt(tmp_path):
    path = tmp_path / "open.prototxt"
    path.write_text("layer {\n  name: 'a'\n")
    with pytest.raises(FormatError, match=re.escape(f"{path}:")):
        model_io.read_net_prototxt(path)


def test_solver_parse_error_names_line(tmp_path):
    path = tmp_path / "solver.prototxt"
    path.write_text('net: "n.prototxt"\nbase_lr: fast\n')
    with pytest.raises(FormatError, match=re.escape(f"{path}:2:")):
        model_io.read_solver_prototxt(path)


def test_missing_required_field(tmp_path):
    path = tmp_path / "clip.prototxt"
    path.write_text('layer { name: "c" type: "Clip" clip_param { min: 0 } }\n')
    with pytest.raises(FormatError, match=r"clip_param\.max"):
        model_io.read_net_prototxt(path)


def test_binary_file_as_prototxt(tmp_path):
    path = tmp_path / "weights.prototxt"
    path.write_bytes(b"\x0a\x03\xff\xfe\x00")
    with pytest.raises(FormatError, match="not a text prototxt"):
        model_io.read_net_prototxt(path)


def test_v0_text_net_is_rejected_clearly(tmp_path):
    path = tmp_path / "v0.prototxt"
    path.write_text('layers {\n  layer {\n    name: "conv1"\n    type: "conv"\n  }\n}\n')
    with pytest.raises(FormatError, match=r"V0 net format .* not supported"):
        model_io.read_net_prototxt(path)


def test_truncated_caffemodel(anchors, tmp_path):
    data = (anchors / "caffe-ref" / "lenet.caffemodel").read_bytes()
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="truncated or not a NetParameter") as info:
        model_io.read_caffemodel(path)
    assert str(path) in str(info.value)


def test_text_file_as_caffemodel(anchors):
    with pytest.raises(FormatError, match="truncated or not a NetParameter"):
        model_io.read_caffemodel(anchors / "caffe" / "mnist_lenet.prototxt")


def test_empty_caffemodel(tmp_path):
    path = tmp_path / "empty.caffemodel"
    path.write_bytes(b"")
    with pytest.raises(FormatError, match="empty file"):
        model_io.read_caffemodel(path)


def test_truncated_solverstate(anchors, tmp_path):
    data = (anchors / "caffe-ref" / "solver_SGD_iter_10.solverstate").read_bytes()
    path = tmp_path / "cut.solverstate"
    path.write_bytes(data[:-3])
    with pytest.raises(FormatError, match="truncated or not a SolverState"):
        model_io.read_solverstate(path)


# ---------------------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------------------


def _small_net() -> caffe_pb2.NetParameter:
    net = caffe_pb2.NetParameter(name="n")
    net.layer.add(name="a", type="ReLU", bottom=["x"], top=["x"])
    return net


def test_write_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "m.caffemodel"
    model_io.write_caffemodel(path, _small_net())
    model_io.write_caffemodel(path, _small_net())  # overwrite
    assert os.listdir(tmp_path) == ["m.caffemodel"]
    assert model_io.read_caffemodel(path) == _small_net()


def test_written_file_mode_follows_umask(tmp_path):
    path = tmp_path / "m.caffemodel"
    old = os.umask(0o022)
    try:
        model_io.write_caffemodel(path, _small_net())
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_crash_during_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.caffemodel"
    model_io.write_caffemodel(path, _small_net())
    before = path.read_bytes()

    def crash(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    bigger = _small_net()
    bigger.layer.add(name="b", type="ReLU", bottom=["x"], top=["x"])
    with pytest.raises(KeyboardInterrupt):
        model_io.write_caffemodel(path, bigger)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.caffemodel"]


def test_unserializable_message_writes_nothing(tmp_path):
    net = caffe_pb2.NetParameter()
    net.layer.add(name="c", type="Clip").clip_param.min = 0  # max is required
    path = tmp_path / "bad.caffemodel"
    with pytest.raises(FormatError, match="cannot serialize"):
        model_io.write_caffemodel(path, net)
    assert os.listdir(tmp_path) == []


def test_write_into_missing_directory_is_io_error(tmp_path):
    path = tmp_path / "no" / "such" / "m.caffemodel"
    with pytest.raises(IoError, match="cannot write"):
        model_io.write_caffemodel(path, _small_net())


def test_write_prototxt_round_trip(tmp_path, anchors):
    net = model_io.read_net_prototxt(anchors / "caffe" / "bvlc_googlenet_train_val.prototxt")
    path = tmp_path / "g.prototxt"
    model_io.write_prototxt(path, net)
    assert model_io.read_net_prototxt(path) == net


# ---------------------------------------------------------------------------------------
# Solvers
# ---------------------------------------------------------------------------------------


def test_solver_snapshot_prefix_default(tmp_path):
    path = tmp_path / "my_solver.prototxt"
    path.write_text('net: "n.prototxt"\nbase_lr: 0.1\n')
    solver = model_io.read_solver_prototxt(path)
    assert solver.snapshot_prefix == str(tmp_path / "my_solver")


def test_solver_snapshot_prefix_directory(tmp_path, monkeypatch):
    (tmp_path / "snaps").mkdir()
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "my_solver.prototxt"
    path.write_text('net: "n.prototxt"\nsnapshot_prefix: "snaps"\n')
    solver = model_io.read_solver_prototxt(path)
    assert solver.snapshot_prefix == os.path.join("snaps", "my_solver")


def test_solver_snapshot_prefix_kept(tmp_path):
    path = tmp_path / "s.prototxt"
    path.write_text('snapshot_prefix: "out/lenet"\n')
    assert model_io.read_solver_prototxt(path).snapshot_prefix == "out/lenet"


def test_parse_text_without_upgrade(anchors):
    text = (anchors / "caffe" / "legacy_v1_mnist_lenet_train_test.prototxt").read_text()
    raw = model_io.parse_net_text(text, "legacy", upgrade_legacy=False)
    assert raw.layers and not raw.layer
    assert model_io.parse_net_text(text, "legacy").layer


def test_array_to_blob_non_contiguous_and_other_dtypes():
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    blob = model_io.array_to_blob(base.T)
    assert list(blob.shape.dim) == [4, 3]
    np.testing.assert_array_equal(model_io.blob_to_array(blob), base.T.astype(np.float32))
    listed = model_io.array_to_blob([1, 2, 3])
    assert list(listed.data) == [1.0, 2.0, 3.0]
