"""Files at URIs on the driver's side (python/caffeonspark/spark/storage.py HadoopFiles, the
checks of spark/config.py, -output in spark/driver.py), through the Hadoop FileSystem of
Spark's JVM with a scheme other than file:: Hadoop's built-in viewfs://, its mount table
linking a folder to a local one. A DataFrame is written to a temporary sibling and renamed;
a failed Spark job leaves nothing under the final name; plain paths stay local even when
fs.defaultFS is elsewhere; an existing -output is refused before training; and the command
line trains LeNet, then writes its features as JSON to a viewfs:// -output."""

from __future__ import annotations

import secrets

import pytest
from spark_util import write_lenet

from caffeonspark import errors
from caffeonspark.data.convert_mnist import prepare_mnist_lmdb
from caffeonspark.data.sources import LmdbSource
from caffeonspark.spark import Config, storage
from caffeonspark.spark.driver import run


@pytest.fixture
def viewfs(spark, tmp_path):
    """(viewfs://<fresh mount>/data, the local folder it links to)."""
    mount = f"cos{secrets.token_hex(4)}"
    target = tmp_path / "linked"
    target.mkdir()
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    conf.set(f"fs.viewfs.mounttable.{mount}.link./data", f"file://{target}")
    return f"viewfs://{mount}/data", target


def test_hadoop_files_check_rename_and_delete_through_viewfs(spark, viewfs):
    root, target = viewfs
    files = storage.HadoopFiles(spark)
    assert files.is_dir(root) and not files.exists(f"{root}/a")
    files.mkdirs(f"{root}/a/b")
    assert (target / "a" / "b").is_dir() and files.is_dir(f"{root}/a/b")
    (target / "a" / "f").write_bytes(b"x")
    assert files.is_file(f"{root}/a/f") and not files.is_dir(f"{root}/a/f")
    files.rename(f"{root}/a/f", f"{root}/a/g")
    assert (target / "a" / "g").read_bytes() == b"x" and not (target / "a" / "f").exists()
    with pytest.raises(errors.IoError, match=r"cannot rename .*/a/b' to .*/a/g': it exists"):
        files.rename(f"{root}/a/b", f"{root}/a/g")
    assert files.delete(f"{root}/a") and not (target / "a").exists()
    assert not files.delete(f"{root}/a")


def test_dataframe_written_atomically_and_a_failed_job_leaves_nothing(spark, viewfs):
    from pyspark.sql import functions as F

    root, target = viewfs
    files = storage.HadoopFiles(spark)
    frame = spark.range(20)
    files.write_atomically(f"{root}/ok", lambda temp: frame.write.parquet(temp), "output")
    assert sorted(r.id for r in spark.read.parquet(f"{root}/ok").collect()) == list(range(20))
    assert sorted(p.name for p in target.iterdir()) == ["ok"]  # the temporary name is gone

    failing = spark.range(20).select(
        F.when(F.col("id") < 19, F.col("id")).otherwise(F.raise_error("task failed")).alias("id")
    )
    with pytest.raises(Exception, match="task failed"):
        files.write_atomically(f"{root}/bad", lambda temp: failing.write.json(temp), "output")
    assert sorted(p.name for p in target.iterdir()) == ["ok"]
    with pytest.raises(errors.ConfigError, match=r"-output: 'viewfs://.*/ok' exists"):
        files.write_atomically(f"{root}/ok", lambda temp: frame.write.json(temp), "output")


def test_plain_paths_stay_local_whatever_fs_default_fs_says(spark, viewfs, tmp_path):
    root, _ = viewfs
    local = tmp_path / "local.bin"
    local.write_bytes(b"x")
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    before = conf.get("fs.defaultFS")
    conf.set("fs.defaultFS", root.rsplit("/", 1)[0] + "/")
    try:
        files = storage.HadoopFiles(spark)
        assert files.is_file(str(local)) and files.is_file(f"file:{local}")
    finally:
        conf.set("fs.defaultFS", before)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return prepare_mnist_lmdb(tmp_path_factory.mktemp("digits"), n_train=256, n_test=120)


def test_existing_output_is_refused_before_training(spark, viewfs, digits, anchors, tmp_path):
    root, target = viewfs
    (target / "features").mkdir()
    solver = write_lenet(tmp_path, anchors, "memory", f"file:{digits.train}",
                         f"file:{digits.test}", max_iter=2)
    args = ["-train", "-features", "ip1", "-conf", str(solver), "-model",
            f"file:{tmp_path}/m.caffemodel", "-output", f"{root}/features"]
    with pytest.raises(errors.ConfigError, match=r"-output: 'viewfs://.*/features' exists"):
        Config(spark, args)
    conf = Config(args)  # no session yet: the URI is checked when the driver runs
    with pytest.raises(errors.ConfigError, match=r"-output: 'viewfs://.*/features' exists"):
        run(conf, spark)
    assert not (tmp_path / "m.caffemodel").exists()  # nothing was trained


def test_model_where_executors_cannot_write_is_refused_on_a_local_master(
        spark, viewfs, digits, anchors, tmp_path, monkeypatch, caplog):
    from caffeonspark.spark import config

    root, _ = viewfs
    solver = write_lenet(tmp_path, anchors, "memory", f"file:{digits.train}",
                         f"file:{digits.test}", max_iter=2)
    args = ["-train", "-conf", str(solver), "-model", f"{root}/m.caffemodel"]
    try:
        Config(spark, args)
    except errors.IoError as err:
        if "needs libhdfs" not in str(err):
            raise
        assert str(err).startswith(f"-model: cannot open '{root}/m.caffemodel': viewfs: needs")
    else:
        pytest.skip("this machine's pyarrow opens viewfs: (libhdfs is installed)")
    # on a cluster the executors are other machines: the driver only warns
    monkeypatch.setattr(config, "_executors_share_this_machine", lambda spark: False)
    with caplog.at_level("WARNING", logger="caffeonspark"):
        Config(spark, args)
    assert any("needs libhdfs" in r.getMessage() and "the executors must have it" in
               r.getMessage() for r in caplog.records)


def test_command_line_writes_features_to_a_viewfs_output(spark, viewfs, digits, anchors,
                                                         tmp_path):
    root, target = viewfs
    solver = write_lenet(tmp_path, anchors, "memory", f"file:{digits.train}",
                         f"file:{digits.test}", max_iter=4)
    conf = Config(spark, ["-train", "-features", "ip1", "-label", "label", "-conf", str(solver),
                          "-model", f"file:{tmp_path}/m.caffemodel", "-clusterSize", "1",
                          "-output", f"{root}/features"])
    run(conf, spark)
    back = spark.read.json(f"{root}/features")
    assert back.count() == 120 and len(back.first().ip1) == 500
    with LmdbSource(digits.test, chunk_size=120) as source:
        (chunk,) = list(source.epoch(0))
    assert sorted(r.label for r in back.collect()) == sorted(chunk.labels.tolist())
    assert sorted(p.name for p in target.iterdir()) == ["features"]


def test_uris_hadoop_cannot_open_are_checked_with_pyarrow_unless_spark_writes_them(
        spark, digits, anchors, tmp_path):
    fsspec = pytest.importorskip("fsspec", reason="fsspec (the `test` extra) is not installed")
    memory = fsspec.filesystem("memory")
    root = f"/cos-hadoop-{secrets.token_hex(4)}"
    memory.pipe(f"{root}/w.caffemodel", b"weights")
    solver = write_lenet(tmp_path, anchors, "memory", f"file:{digits.train}",
                         f"file:{digits.test}", max_iter=2)
    train = ["-train", "-conf", str(solver), "-model", f"file:{tmp_path}/m.caffemodel"]
    try:
        # Spark's Hadoop has no memory: FileSystem; the executors' pyarrow (fsspec) does
        Config(spark, [*train, "-weights", f"memory://{root}/w.caffemodel"])
        with pytest.raises(errors.IoError, match=r"-weights: 'memory://.*/absent' does not"):
            Config(spark, [*train, "-weights", f"memory://{root}/absent"])
        with pytest.raises(errors.IoError, match=r"-output: cannot check 'memory://.*/out'.*"
                                                 r"No FileSystem for scheme"):
            Config(spark, ["-test", "-conf", str(solver), "-model", f"memory://{root}/w.caffemodel",
                           "-output", f"memory://{root}/out"])
    finally:
        memory.rm(root, recursive=True)
