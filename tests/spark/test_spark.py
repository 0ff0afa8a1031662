"""The Spark driver on a local[2] session (python/caffeonspark/spark/): CaffeOnSpark's LeNet
trained with -clusterSize 1 from an LMDB source read by 2 Spark tasks (repartitioned to one
rank), then test() and features() checked against the engine run directly on the same model
and rows (every row once, the partial last batch included); features join back on id;
CaffeOnSpark's `-features accuracy,ip1 -label label` (each row repeats its batch's accuracy,
one warning);
JSON / Parquet outputs load back with Spark; the UDF helpers; an ImageDataFrame (Parquet)
source with trainWithValidation and an in-memory DataFrame; the command line on the running
session; the fast failures: too few barrier slots, the missing allreduce, an unreadable
source, a missing solver; and CaffeOnSpark's lenet_cos (CoSData tops from a Parquet of typed
columns): trainWithValidation, test and features against the engine reading the same Parquet
itself, with and without an id column, and a missing top column named."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import numpy as np
import pytest
from spark_util import PYTHON_DIR, REPO_DIR, write_lenet

from caffeonspark import cli, engine, errors, model_io
from caffeonspark.data.convert_mnist import prepare_mnist_lmdb
from caffeonspark.data.parquet_io import lmdb_to_parquet
from caffeonspark.data.sources import LmdbSource
from caffeonspark.proto import caffe_pb2
from caffeonspark.spark import CaffeOnSpark, Config, DataSource
from caffeonspark.spark.driver import run

N_TRAIN, N_TEST = 2000, 250


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return prepare_mnist_lmdb(tmp_path_factory.mktemp("digits"), n_train=N_TRAIN, n_test=N_TEST)


@pytest.fixture(scope="module")
def trained(spark, digits, anchors, tmp_path_factory, caplog_module):
    """LeNet (lenet_memory: MemoryData + com.yahoo.ml.caffe.LMDB) trained 100 iterations."""
    root = tmp_path_factory.mktemp("lenet")
    solver = write_lenet(
        root, anchors, "memory", f"file:{digits.train}", f"file:{digits.test}",
        max_iter=100, display=50,
    )
    args = ["-train", "-conf", str(solver), "-model", f"file:{root}/lenet.caffemodel",
            "-clusterSize", "1", "-lmdb_partitions", "2", "-features", "ip2", "-label", "label"]
    conf = Config(spark, args)
    cos = CaffeOnSpark(spark)
    summaries = cos.train(DataSource.getSource(conf, True))
    return root, conf, cos, summaries


@pytest.fixture(scope="module")
def caplog_module():
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep(logging.INFO)
    logger = logging.getLogger("caffeonspark")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old)


def engine_reference(conf: Config, model: str, test_lmdb,
                     blob: str = "ip2") -> tuple[dict, np.ndarray, np.ndarray]:
    """The TEST net run by the engine on all test rows in one batch: outputs, `blob`, labels."""
    net_param = conf.phase_net(caffe_pb2.TEST)
    layer = next(layer for layer in net_param.layer if layer.type == "MemoryData")
    layer.ClearField("source_class")
    layer.memory_data_param.ClearField("source")
    layer.memory_data_param.batch_size = N_TEST
    net = engine.Net(net_param, phase=engine.TEST)
    net.copy_from(model)
    with LmdbSource(test_lmdb, chunk_size=N_TEST) as source:
        (chunk,) = list(source.epoch(0))
    net.memory_data_feeder(layer.name).push(chunk.data, chunk.labels)
    outputs = net.forward(blobs=[blob])
    net.close()
    return outputs, outputs[blob], chunk.labels


def test_train_writes_the_model_from_rank_zero(trained, caplog_module):
    root, conf, _, summaries = trained
    assert summaries == [
        {**summaries[0], "rank": 0, "iter": 100, "rows": N_TRAIN}
    ]
    assert np.isfinite(summaries[0]["smoothed_loss"])
    assert (root / "lenet.caffemodel").is_file()
    assert (root / "mnist_lenet_iter_100.caffemodel").is_file()  # snapshot beside -model
    assert not list(root.glob(".*tmp"))  # written through a temporary name, renamed
    messages = [r.getMessage() for r in caplog_module]
    assert any("(2 partitions) into 1 contiguous shards" in m for m in messages), messages


def test_test_metrics_are_means_over_every_row(trained, digits):
    root, conf, cos, _ = trained
    metrics = cos.test(DataSource.getSource(conf, False))
    reference, _, _ = engine_reference(conf, str(root / "lenet.caffemodel"), digits.test)
    assert set(metrics) == {"accuracy", "loss"}
    # 2 partitions of 125 rows: batches of 100 + 25 each, weighted by rows.
    np.testing.assert_allclose(metrics["accuracy"], reference["accuracy"].ravel(), rtol=1e-6)
    np.testing.assert_allclose(metrics["loss"], reference["loss"].ravel(), rtol=1e-4)
    assert metrics["accuracy"][0] > 0.5
    row = metrics.dataframe.collect()[0]
    assert row.accuracy == metrics["accuracy"]


def test_features_one_row_per_input_row_joinable_on_id(trained, digits, spark):
    root, conf, cos, _ = trained
    source = DataSource.getSource(conf, False)
    features = cos.features(source)
    assert features.columns == ["SampleID", "label", "ip2"]
    rows = features.collect()
    assert len(rows) == N_TEST and len({r.SampleID for r in rows}) == N_TEST
    _, ip2, labels = engine_reference(conf, str(root / "lenet.caffemodel"), digits.test)
    by_id = {r.SampleID: r for r in rows}
    order = [f"{i:08d}" for i in range(N_TEST)]  # the LMDB keys
    np.testing.assert_array_equal([by_id[k].label for k in order], labels)
    got = np.array([by_id[k].ip2 for k in order], dtype=np.float32)
    np.testing.assert_allclose(got, ip2, rtol=1e-4, atol=1e-4)
    inputs = source.dataframe(spark)
    assert inputs.join(features, inputs.id == features.SampleID).count() == N_TEST


def test_outputs_load_back_as_json_and_parquet(trained, spark, tmp_path):
    root, _, _, _ = trained
    solver = str(root / "solver.prototxt")
    model = f"file:{root}/lenet.caffemodel"
    out = tmp_path / "features.json"
    conf = Config(["-features", "ip2", "-label", "label", "-conf", solver, "-model", model,
                   "-output", str(out), "-lmdb_partitions", "2"])
    run(conf, spark)
    back = spark.read.json(str(out))
    assert back.count() == N_TEST and set(back.columns) == {"SampleID", "label", "ip2"}
    assert len(back.first().ip2) == 10
    out = tmp_path / "test.parquet"
    conf = Config(["-test", "-conf", solver, "-model", model, "-output", f"file:{out}",
                   "-outputFormat", "parquet"])
    metrics = run(conf, spark)
    (row,) = spark.read.parquet(str(out)).collect()
    np.testing.assert_allclose(row.accuracy, metrics["accuracy"])
    with pytest.raises(errors.ConfigError, match=r"-output: '.*test.parquet' exists"):
        Config(["-test", "-conf", solver, "-model", model, "-output", str(out)])


def test_udf_helpers(trained):
    from pyspark.ml.linalg import DenseVector

    _, conf, cos, _ = trained
    features = cos.features(DataSource.getSource(conf, False)).limit(3)
    rows = features.select(
        cos.floatarray2doubleUDF("ip2").alias("first"),
        cos.floatarray2doublevectorUDF(features.ip2).alias("vector"),
        "ip2",
    ).collect()
    for row in rows:
        assert isinstance(row.vector, DenseVector) and row.vector.size == 10
        np.testing.assert_allclose(row.vector.toArray(), row.ip2, rtol=1e-7)
        assert row.first == pytest.approx(row.ip2[0])


def test_original_features_command_repeats_batch_outputs_on_every_row(
        trained, digits, spark, tmp_path, caplog):
    # CaffeOnSpark's documented `-features accuracy,ip1 -label label`: accuracy is one value
    # per batch, so (CaffeOnSpark's rule) every row of a batch carries that batch's accuracy.
    root, _, _, _ = trained
    model = root / "lenet.caffemodel"
    out = tmp_path / "features"
    conf = Config(["-features", "accuracy,ip1", "-label", "label", "-conf",
                   str(root / "solver.prototxt"), "-model", str(model), "-output", str(out),
                   "-lmdb_partitions", "1"])
    caplog.set_level(logging.INFO, logger="caffeonspark")
    run(conf, spark)
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "accuracy" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "'accuracy' holds fewer values than a batch" in warnings[0]
    assert "-test" in warnings[0] and "batch size of 1" in warnings[0]
    rows = sorted(spark.read.json(str(out)).collect(), key=lambda r: r.SampleID)
    assert [r.SampleID for r in rows] == [f"{i:08d}" for i in range(N_TEST)]
    # ip1 is per sample: the engine's ip1 of each row, run on all rows in one batch.
    _, ip1, labels = engine_reference(conf, str(model), digits.test, blob="ip1")
    got = np.array([r.ip1 for r in rows], dtype=np.float32)
    assert got.shape == (N_TEST, 500)
    np.testing.assert_allclose(got, ip1, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal([r.label for r in rows], labels)
    # accuracy: one partition of 250 rows runs as batches of 100, 100 and 50 (TEST
    # batch_size 100, the partial last batch on its own); each row holds its batch's
    # accuracy, recomputed here from the same output's ip1 (after ReLU, in place) through
    # the model's ip2 weights and the labels.
    ip2 = {layer.name: layer for layer in model_io.read_caffemodel(model).layer}["ip2"]
    weight, bias = (model_io.blob_to_array(b).astype(np.float64) for b in ip2.blobs)
    scores = got.astype(np.float64) @ weight.reshape(10, 500).T + bias
    correct = scores.argmax(axis=1) == np.array([r.label for r in rows])
    for start, stop in ((0, 100), (100, 200), (200, 250)):
        values = {tuple(r.accuracy) for r in rows[start:stop]}
        assert len(values) == 1, values
        (value,) = values
        assert len(value) == 1
        assert value[0] == pytest.approx(correct[start:stop].mean(), abs=1e-6)


def test_batch_outputs_at_batch_size_100_and_1(trained):
    # At batch size 1 a 0-d accuracy is that sample's own value: repeated, but no warning.
    import dataclasses

    from caffeonspark.spark.infer_task import batch_outputs

    root, _, cos, _ = trained
    conf = Config(["-features", "accuracy,loss,ip1", "-conf", str(root / "solver.prototxt"),
                   "-model", str(root / "lenet.caffemodel"), "-output", str(root / "never")])
    plan = cos._infer_plan(DataSource.getSource(conf, False), conf.features, None, "id")
    assert batch_outputs(plan) == (("accuracy", "loss"), {"accuracy": (), "loss": ()})
    net = caffe_pb2.NetParameter.FromString(plan.net)
    net.layer[plan.data_layer].memory_data_param.batch_size = 1
    one = dataclasses.replace(plan, net=net.SerializeToString())
    assert batch_outputs(one) == (("accuracy", "loss"), {})


def test_features_refuses_a_blob_no_row_owns(trained, monkeypatch):
    # A blob with as many values as samples or more, whose first axis is not the batch,
    # is neither per sample nor a batch output.
    from caffeonspark.spark import infer_task

    root, _, cos, _ = trained
    conf = Config(["-features", "ip1", "-conf", str(root / "solver.prototxt"), "-model",
                   str(root / "lenet.caffemodel"), "-output", str(root / "never")])

    def transposed(plan, batch_size):
        net = build(plan, batch_size)
        net.blobs["ip1"].reshape(500, batch_size)
        return net

    build = infer_task._build_net
    monkeypatch.setattr(infer_task, "_build_net", transposed)
    with pytest.raises(errors.ConfigError,
                       match=r"-features: blob 'ip1' has shape \(500, 100\): its first axis"):
        cos.features(DataSource.getSource(conf, False))


def test_image_dataframe_source_train_with_validation(spark, digits, anchors, tmp_path):
    lmdb_to_parquet(digits.train, tmp_path / "train_df", row_group_size=500)
    lmdb_to_parquet(digits.test, tmp_path / "test_df")
    solver = write_lenet(
        tmp_path / "net", anchors, "dataframe", str(tmp_path / "train_df"),
        str(tmp_path / "test_df"), max_iter=40, test_interval=20, test_iter=2, display=0,
    )
    conf = Config(spark, ["-train", "-conf", str(solver), "-model", str(tmp_path / "df.model")])
    cos = CaffeOnSpark(spark)
    train = DataSource.getSource(conf, True)
    assert type(train).__name__ == "ImageDataFrameSource"
    validation = cos.trainWithValidation(train, DataSource.getSource(conf, False))
    rows = validation.orderBy("iter").collect()
    assert [r.iter for r in rows] == [0, 20, 40]
    assert set(validation.columns) == {"iter", "accuracy", "loss"}
    assert all(0 <= r.accuracy[0] <= 1 and np.isfinite(r.loss[0]) for r in rows)
    assert not list(tmp_path.glob("df.model.validation-*"))  # the scratch copy is gone
    in_memory = spark.read.parquet(str(tmp_path / "test_df")).limit(150)
    metrics = cos.test(DataSource.fromDataFrame(conf, in_memory, isTrain=False))
    assert 0 <= metrics["accuracy"][0] <= 1


def test_cluster_too_small_fails_before_any_stage(trained, spark):
    root, _, cos, _ = trained
    args = ["-train", "-conf", str(root / "solver.prototxt"), "-model", str(root / "x.model")]
    started = time.perf_counter()
    conf = Config(spark, [*args, "-clusterSize", "3"])
    with pytest.raises(errors.ConfigError, match=r"-clusterSize 3 needs 3 barrier tasks.*"
                       r"can run 2 \(master local\[2\].*local\[3\]"):
        cos.train(DataSource.getSource(conf, True))
    assert time.perf_counter() - started < 20
    assert not (root / "x.model").exists()


def test_two_ranks_train_over_the_ring(spark, digits, anchors, tmp_path):
    # Two barrier tasks, rank = partition id, addresses and secret through allGather, the
    # gradients averaged over the TCP ring: both ranks finish in step, rank 0 writes the model.
    solver = write_lenet(
        tmp_path, anchors, "memory", f"file:{digits.train}", f"file:{digits.test}",
        max_iter=10, display=0,
    )
    conf = Config(spark, ["-train", "-conf", str(solver), "-model", str(tmp_path / "two.model"),
                          "-clusterSize", "2", "-connection", "ethernet"])
    cos = CaffeOnSpark(spark, timeout=60.0)
    summaries = cos.train(DataSource.getSource(conf, True))
    assert [(s["rank"], s["iter"], s["rows"]) for s in summaries] == [
        (0, 10, N_TRAIN // 2), (1, 10, N_TRAIN // 2)
    ]
    assert (tmp_path / "two.model").is_file()


def test_unreadable_source_or_missing_solver_stop_before_training(spark, anchors, tmp_path):
    missing = tmp_path / "no_such_lmdb"
    solver = write_lenet(tmp_path / "a", anchors, "memory", f"file:{missing}", f"file:{missing}")
    conf = Config(spark, ["-train", "-conf", str(solver), "-model", str(tmp_path / "m")])
    with pytest.raises(errors.IoError, match=r"layer 'data' \(MemoryData\).*no_such_lmdb"):
        DataSource.getSource(conf, True)
    (tmp_path / "not_lmdb").mkdir()
    (tmp_path / "not_lmdb" / "data.mdb").write_bytes(b"garbage" * 100)
    solver = write_lenet(tmp_path / "b", anchors, "memory", f"file:{tmp_path}/not_lmdb", "x")
    conf = Config(spark, ["-train", "-conf", str(solver), "-model", str(tmp_path / "m")])
    with pytest.raises(errors.IoError, match="cannot open LMDB source '.*not_lmdb'"):
        DataSource.getSource(conf, True)
    with pytest.raises(errors.IoError, match="-conf: solver file '.*nowhere.prototxt'"):
        Config(spark, ["-train", "-conf", str(tmp_path / "nowhere.prototxt"), "-model", "m"])
    assert not (tmp_path / "m").exists()


def test_data_layer_source_reads_the_same_rows(trained, digits, tmp_path, spark):
    # Caffe's own LeNet (Data layers, backend LMDB) scores the model exactly as the
    # MemoryData net does on the same rows.
    root, conf, cos, _ = trained
    examples = REPO_DIR / "examples" / "mnist"
    net = (examples / "lenet_train_test.prototxt").read_text()
    net = net.replace("data/mnist/mnist_train_lmdb", str(digits.train))
    net = net.replace("data/mnist/mnist_test_lmdb", str(digits.test))
    (tmp_path / "net.prototxt").write_text(net)
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\ntest_iter: 1\nbase_lr: 0.01\nmax_iter: 1\nlr_policy: "fixed"\n'
    )
    data_conf = Config(["-test", "-conf", str(tmp_path / "solver.prototxt"), "-model",
                        str(root / "lenet.caffemodel"), "-output", str(tmp_path / "out")])
    source = DataSource.getSource(data_conf, False)
    assert type(source).__name__ == "FileSource" and source.item_shape == (1, 28, 28)
    expected = cos.test(DataSource.getSource(conf, False))
    got = cos.test(source)
    np.testing.assert_allclose(got["accuracy"], expected["accuracy"], rtol=1e-6)
    np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-5)


def test_command_line_trains_then_extracts_features(spark, digits, anchors, tmp_path):
    solver = write_lenet(
        tmp_path, anchors, "memory", f"file:{digits.train}", f"file:{digits.test}", max_iter=10
    )
    out = tmp_path / "features"
    # CaffeOnSpark's documented command line, unchanged: accuracy repeats on each row.
    status = cli.main(["-train", "-features", "accuracy,ip1", "-label", "label", "-conf",
                       str(solver), "-model", f"file:{tmp_path}/cli.model", "-clusterSize", "1",
                       "-output", str(out)])
    assert status == 0
    back = spark.read.json(str(out))
    first = back.first()
    assert back.count() == N_TEST and len(first.ip1) == 500 and len(first.accuracy) == 1
    assert set(back.columns) == {"SampleID", "label", "accuracy", "ip1"}


def test_python_m_driver_checks_flags_before_spark(tmp_path):
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "caffeonspark.spark.driver", "-train", "-conf",
         str(tmp_path / "solver.prototxt"), "-clusterSize", "x"],
        capture_output=True, text=True, env={"PYTHONPATH": str(PYTHON_DIR), "PATH": ""},
    )
    assert result.returncode == 2
    assert "-clusterSize wants an integer, got 'x'" in result.stderr
    assert "Warning" not in result.stderr  # the module runs once, not imported twice
    assert time.perf_counter() - started < 30  # no JVM was started


# -- CoSData (CaffeOnSpark's DataFrameSource): lenet_cos from a Parquet of typed columns ------

N_COS_TRAIN, N_COS_TEST = 640, 150  # TEST batch 64: 64 + 64 + a partial batch of 22


@pytest.fixture(scope="module")
def cos_digits(tmp_path_factory):
    """Parquet files in lenet_cos's layout: data RAW_IMAGE bytes, label STRING, plus an id."""
    from caffeonspark.data.cos_dataframe import write_cos_parquet
    from caffeonspark.data.digits import generate_digits

    root = tmp_path_factory.mktemp("cos")
    images, labels = generate_digits(N_COS_TRAIN + N_COS_TEST, seed=11)
    paths = {}
    for name, rows in (("train", slice(0, N_COS_TRAIN)), ("test", slice(N_COS_TRAIN, None))):
        ids = np.arange(len(labels))[rows] + 1000
        paths[name] = write_cos_parquet(
            root / f"{name}.parquet",
            {"id": ("INT", ids), "data": ("RAW_IMAGE", images[rows]),
             "label": ("STRING", labels[rows])},
            row_group_size=100,
        )
    return paths, images[N_COS_TRAIN:], labels[N_COS_TRAIN:]


def cos_reference(conf: Config, model: str, rows: int) -> dict:
    """The TEST CoSData net run by the engine on its own Parquet source (ParquetSource, in
    order): the first `rows` rows in one batch; outputs with ip2 and label."""
    net_param = conf.phase_net(caffe_pb2.TEST)
    layer = next(layer for layer in net_param.layer if layer.type == "CoSData")
    layer.cos_data_param.batch_size = rows
    net = engine.Net(net_param, phase=engine.TEST)
    net.copy_from(model)
    outputs = net.forward(blobs=["ip2", "label"])
    net.close()
    return outputs


def test_cos_data_net_trains_validates_tests_and_extracts_features(
    spark, cos_digits, anchors, tmp_path
):
    paths, test_images, test_labels = cos_digits
    solver = write_lenet(
        tmp_path, anchors, "cos", f"file:{paths['train']}", str(paths["test"]),
        max_iter=30, test_interval=15, test_iter=2, display=0,
    )
    model = tmp_path / "cos.caffemodel"
    conf = Config(spark, ["-train", "-conf", str(solver), "-model", str(model),
                          "-clusterSize", "1", "-features", "ip2", "-label", "label"])
    cos = CaffeOnSpark(spark)
    train, test = DataSource.getSource(conf, True), DataSource.getSource(conf, False)
    assert type(train).__name__ == "CosDataSource" and train.batch_size == 64
    validation = cos.trainWithValidation(train, test).orderBy("iter").collect()
    assert [r.iter for r in validation] == [0, 15, 30]
    assert model.is_file() and (tmp_path / "mnist_lenet_iter_30.caffemodel").is_file()

    # The last validation tested the final model on the first 2 TEST batches (128 rows).
    first = cos_reference(conf, str(model), 128)
    np.testing.assert_allclose(validation[-1].accuracy, first["accuracy"].ravel(), rtol=1e-6)
    np.testing.assert_allclose(validation[-1].loss, first["loss"].ravel(), rtol=1e-4)

    # test(): every row once (64 + 64 + 22), each output's mean over the rows.
    reference = cos_reference(conf, str(model), N_COS_TEST)
    np.testing.assert_array_equal(reference["label"].ravel(), test_labels)  # STRING parsed
    metrics = cos.test(test)
    assert set(metrics) == {"accuracy", "loss"}
    np.testing.assert_allclose(metrics["accuracy"], reference["accuracy"].ravel(), rtol=1e-6)
    np.testing.assert_allclose(metrics["loss"], reference["loss"].ravel(), rtol=1e-4)
    assert metrics["accuracy"][0] > 0.3  # 30 iterations: learning, not converged

    # features(): one row per input row, SampleID = the input's id, label from -label.
    features = cos.features(test)
    assert features.columns == ["SampleID", "label", "ip2"]
    by_id = {r.SampleID: r for r in features.collect()}
    ids = list(range(1000 + N_COS_TRAIN, 1000 + N_COS_TRAIN + N_COS_TEST))
    assert sorted(by_id) == ids
    np.testing.assert_array_equal([by_id[i].label for i in ids], test_labels)
    got = np.array([by_id[i].ip2 for i in ids], dtype=np.float32)
    np.testing.assert_allclose(got, reference["ip2"], rtol=1e-4, atol=1e-4)
    inputs = test.dataframe(spark)
    assert inputs.join(features, inputs.id == features.SampleID).count() == N_COS_TEST

    # A DataFrame without an id (3 partitions): SampleID numbers the rows, same values.
    df = inputs.drop("id").repartition(3)
    no_id = cos.features(DataSource.fromDataFrame(conf, df, isTrain=False)).collect()
    assert len(no_id) == N_COS_TEST and len({r.SampleID for r in no_id}) == N_COS_TEST
    got = np.array([r.ip2 for r in no_id], dtype=np.float32)
    nearest = np.abs(got[:, None, :] - reference["ip2"][None]).max(axis=2).argmin(axis=1)
    assert sorted(nearest) == list(range(N_COS_TEST))  # each reference row matched once
    np.testing.assert_allclose(got, reference["ip2"][nearest], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal([r.label for r in no_id], test_labels[nearest])


def test_cos_data_source_names_the_missing_column(spark, cos_digits, anchors, tmp_path):
    paths, _, _ = cos_digits
    solver = write_lenet(tmp_path, anchors, "cos", str(paths["train"]), str(paths["test"]))
    conf = Config(spark, ["-train", "-conf", str(solver), "-model", str(tmp_path / "m")])
    df = spark.read.parquet(str(paths["train"])).withColumnRenamed("label", "digit")
    with pytest.raises(errors.ConfigError, match=r"layer 'data' \(CoSData\).*no column for "
                       r"top\(s\) label \(columns: id, data, digit\)"):
        CaffeOnSpark(spark).train(DataSource.fromDataFrame(conf, df, isTrain=True))
    missing = write_lenet(tmp_path / "b", anchors, "cos", str(tmp_path / "absent"), "x")
    with pytest.raises(errors.IoError, match=r"layer 'data' \(CoSData\).*'.*absent' does not"):
        DataSource.getSource(Config(spark, ["-train", "-conf", str(missing), "-model", "m"]), True)
