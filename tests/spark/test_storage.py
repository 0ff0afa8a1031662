"""Files at URIs on the executors' side (python/caffeonspark/spark/storage.py), no Spark:
plain paths and file: URIs; a URI of another scheme through pyarrow.fs, shown with fsspec's
in-memory filesystem (`memory://`, wrapped as a pyarrow PyFileSystem: nothing touches the
local disk); a write that fails leaves nothing under the final name; the errors of schemes
this process cannot open; and a real Solver whose snapshots, written locally, are uploaded
to a URI under Caffe's names (train_task.upload_snapshots_to)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from google.protobuf import text_format

from caffeonspark import model_io
from caffeonspark.errors import IoError
from caffeonspark.proto import caffe_pb2
from caffeonspark.solver import Solver
from caffeonspark.spark import storage, train_task

fsspec = pytest.importorskip("fsspec", reason="fsspec (the `test` extra) is not installed")


@pytest.fixture
def memory(request):
    """A fresh folder of fsspec's process-wide in-memory filesystem: (filesystem, uri)."""
    filesystem = fsspec.filesystem("memory")
    root = f"/cos-{request.node.name.replace('[', '-').rstrip(']')}"
    filesystem.mkdir(root)
    yield filesystem, f"memory://{root}"
    filesystem.rm(root, recursive=True)


def test_names_of_local_paths_and_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.is_local("m.caffemodel") and storage.is_local("file:/x/m")
    assert storage.is_local("file:///x/m") and not storage.is_local("hdfs://nn:8020/x")
    assert storage.local_path("file:///x/m", "model") == "/x/m"
    assert storage.local_path("file:x/m", "model") == str(tmp_path / "x" / "m")
    assert storage.hadoop_uri("m") == f"file:{tmp_path}/m"  # never fs.defaultFS's
    assert storage.hadoop_uri("hdfs://nn/m") == "hdfs://nn/m"
    assert storage.normalize("file:/x/m", "model") == "/x/m"
    assert storage.parent("hdfs://nn:8020/a/b/m.caffemodel") == "hdfs://nn:8020/a/b"
    assert storage.parent("hdfs://nn/m") == "hdfs://nn/"
    assert storage.join("hdfs://nn/a/", "snap") == "hdfs://nn/a/snap"
    assert storage.join("file:/a", "snap") == "/a/snap"
    assert storage.basename("s3://bucket/dir/m.caffemodel") == "m.caffemodel"
    assert storage.temp_name("hdfs://nn/a/out").startswith("hdfs://nn/a/out.tmp-")


def test_local_publish_writes_through_a_temporary_name(tmp_path):
    target = tmp_path / "m.bin"
    seen = []

    def write(path):
        seen.append(path)
        assert not target.exists()  # nothing under the final name while writing
        with open(path, "wb") as handle:
            handle.write(b"weights")

    storage.publish(f"file:{target}", write, "model", str(tmp_path))
    assert target.read_bytes() == b"weights"
    assert seen[0].startswith(f"{target}.tmp-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin"]


def test_a_failed_local_write_leaves_nothing_and_loses_nothing(tmp_path):
    target = tmp_path / "m.bin"

    def half_then_fail(path):
        with open(path, "wb") as handle:
            handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        storage.publish(str(target), half_then_fail, "model", str(tmp_path))
    assert list(tmp_path.iterdir()) == []
    target.write_bytes(b"previous model")
    with pytest.raises(RuntimeError, match="disk full"):
        storage.publish(str(target), half_then_fail, "model", str(tmp_path))
    assert target.read_bytes() == b"previous model"  # what was there survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin"]


def test_memory_uri_publish_fetch_and_list_go_through_the_filesystem(memory, tmp_path):
    filesystem, root = memory
    work = tmp_path / "work"
    work.mkdir()
    uri = f"{root}/models/m.caffemodel"
    filesystem.mkdir(f"{root}/models")

    def write(path):
        with open(path, "wb") as handle:
            handle.write(b"\x01weights" * 1000)

    storage.publish(uri, write, "model", str(work))
    assert filesystem.cat_file(uri) == b"\x01weights" * 1000
    assert storage.listdir(f"{root}/models", "model") == ["m.caffemodel"]  # no temp left
    assert list(work.iterdir()) == []  # the staged local copy is removed
    fetched = storage.fetch(uri, str(work), "weights")
    assert open(fetched, "rb").read() == b"\x01weights" * 1000
    with storage.fetched(uri, "model", str(tmp_path)) as path:
        assert open(path, "rb").read(8) == b"\x01weights"
    assert not os.path.exists(path)
    with pytest.raises(IoError, match=r"-weights: '.*/absent' does not exist"):
        storage.fetch(f"{root}/absent", str(work), "weights")
    # upload replaces an existing file (a retried task writes -model again)
    local = tmp_path / "new"
    local.write_bytes(b"new")
    storage.upload(str(local), uri, "model")
    assert filesystem.cat_file(uri) == b"new"
    assert storage.listdir(f"{root}/models", "model") == ["m.caffemodel"]


def test_memory_uri_fetch_tree_copies_a_folder(memory, tmp_path):
    filesystem, root = memory
    filesystem.pipe({f"{root}/df/part-0.parquet": b"a", f"{root}/df/part-1.parquet": b"bc"})
    local = storage.fetch_tree(f"{root}/df", str(tmp_path), "model")
    assert sorted(os.listdir(local)) == ["part-0.parquet", "part-1.parquet"]
    assert open(os.path.join(local, "part-1.parquet"), "rb").read() == b"bc"


def test_a_failed_upload_leaves_nothing_under_the_final_name(memory, tmp_path, monkeypatch):
    filesystem, root = memory
    uri = f"{root}/m.caffemodel"
    local = tmp_path / "m"
    local.write_bytes(b"weights")
    cls = type(filesystem)

    def broken_move(self, *args, **kwargs):
        raise OSError("connection reset")

    monkeypatch.setattr(cls, "mv", broken_move)
    monkeypatch.setattr(cls, "move", broken_move, raising=False)
    with pytest.raises(IoError, match=r"-model: cannot write 'memory://.*m.caffemodel'.*reset"):
        storage.upload(str(local), uri, "model")
    assert filesystem.ls(root, detail=False) == []  # neither the final name nor the temp

    def fail(path):
        raise RuntimeError("the engine failed while saving")

    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="engine failed"):
        storage.publish(uri, fail, "model", str(tmp_path))
    assert filesystem.ls(root, detail=False) == []


def test_schemes_this_process_cannot_open_name_flag_uri_and_need():
    with pytest.raises(IoError) as info:
        storage.arrow_filesystem("hdfs://namenode:8020/models/m", "weights")
    message = str(info.value)
    if "needs libhdfs" not in message:
        pytest.skip(f"this machine opens hdfs: ({message})")
    assert message.startswith("-weights: cannot open 'hdfs://namenode:8020/models/m': hdfs: ")
    assert "HADOOP_HOME" in message and "ARROW_LIBHDFS_DIR" in message
    with pytest.raises(IoError, match=r"-model: cannot open 'nosuch://x/m': neither pyarrow "
                                      r"nor fsspec opens nosuch:"):
        storage.arrow_filesystem("nosuch://x/m", "model")


TINY = """
name: "tiny"
layer { name: "in" type: "Input" top: "x" top: "label"
  input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def test_solver_snapshots_are_uploaded_to_the_uri_under_caffes_names(memory, tmp_path):
    filesystem, root = memory
    param = caffe_pb2.SolverParameter(
        base_lr=0.1, lr_policy="fixed", max_iter=4, snapshot=2, random_seed=3,
        snapshot_prefix=f"{root}/run/lenet",
    )
    text_format.Parse(TINY, param.net_param)
    uri_prefix = train_task._snapshot_locally(param, str(tmp_path))
    assert uri_prefix == f"{root}/run/lenet"
    assert param.snapshot_prefix == str(tmp_path / "snapshots" / "lenet")
    solver = Solver(param)
    rng = np.random.default_rng(0)

    def feed(net, index):
        net.blobs["x"].data[...] = rng.normal(size=(4, 3))
        net.blobs["label"].data[...] = rng.integers(0, 2, size=4)

    solver.set_forward_hook(feed)
    train_task.upload_snapshots_to(solver, uri_prefix, str(tmp_path))
    solver.solve()
    assert storage.listdir(f"{root}/run", "model") == [
        "lenet_iter_2.caffemodel", "lenet_iter_2.solverstate",
        "lenet_iter_4.caffemodel", "lenet_iter_4.solverstate",
    ]
    assert os.listdir(tmp_path / "snapshots") == []  # local copies dropped once uploaded
    local = tmp_path / "back.caffemodel"
    local.write_bytes(filesystem.cat_file(f"{root}/run/lenet_iter_4.caffemodel"))
    weights = model_io.read_caffemodel(local)
    ip = next(layer for layer in weights.layer if layer.name == "ip")
    np.testing.assert_array_equal(
        model_io.blob_to_array(ip.blobs[0]).reshape(2, 3), solver.net.params["ip"][0].data
    )
    state = tmp_path / "back.solverstate"
    state.write_bytes(filesystem.cat_file(f"{root}/run/lenet_iter_4.solverstate"))
    assert model_io.read_solverstate(state).iter == 4
