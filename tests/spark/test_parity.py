"""Spark and the local launcher train the same model (data/shard_rule.py, docs/SPARK.md "Same
result as the launcher"): CaffeOnSpark's LeNet trained with -clusterSize 2 on the local[2]
session, from (a) an ImageDataFrame (Parquet) source, (b) an LMDB source
(com.yahoo.ml.caffe.LMDB) and (c) lenet_cos's CoSData layer over a Parquet of typed columns
(com.yahoo.ml.caffe.DataFrameSource, with cos_data_param.shuffle), ends with the parameters `caffeonspark train -world_size 2` gives
on the same data and seed: rank r reads the contiguous shard r of 2 (651 records: 325 and 326,
a different remainder dropped each epoch), shuffled per epoch from (random_seed, epoch, r, 2).
Also: the contiguous split of a DataFrame (contiguous.py) in its own order and in Parquet's.
local-cluster[2,1,1024] (executors in their own JVMs) is checked in a subprocess:
tests/spark/test_local_cluster.py."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from spark_util import assert_same_model, lenet_parity_solvers, train_with_launcher

from caffeonspark.data.convert_mnist import prepare_mnist_lmdb
from caffeonspark.data.cos_dataframe import write_cos_parquet
from caffeonspark.data.parquet_io import lmdb_to_parquet
from caffeonspark.data.sources import LmdbSource
from caffeonspark.spark import CaffeOnSpark, Config, DataSource
from caffeonspark.spark.contiguous import split_contiguously
from caffeonspark.spark.placement import with_partitions
from caffeonspark.spark.source import parquet_order

N_TRAIN, ITERS = 651, 20  # batch 64: 4 epochs of each shard, remainders 5 and 6 dropped


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity")
    lmdb = prepare_mnist_lmdb(root, n_train=N_TRAIN, n_test=100)
    lmdb_to_parquet(lmdb.train, root / "train_df")  # one row group: ParquetSource's block
    lmdb_to_parquet(lmdb.test, root / "test_df")  # shuffle is then the full one
    for name, path in (("train", lmdb.train), ("test", lmdb.test)):  # CoSData's columns
        with LmdbSource(path, chunk_size=N_TRAIN) as source:
            (chunk,) = list(source.epoch(0))
        write_cos_parquet(root / f"{name}_cos.parquet", {
            "data": ("RAW_IMAGE", chunk.data), "label": ("STRING", chunk.labels)})
    return root, lmdb


@pytest.mark.parametrize("kind", ["dataframe", "memory", "cos"])
def test_two_spark_ranks_train_the_launchers_model(spark, digits, anchors, tmp_path, kind):
    root, lmdb = digits
    if kind == "dataframe":  # (a) ImageDataFrame: Spark reads the Parquet file itself
        sources = (str(root / "train_df"), str(root / "test_df"))
    elif kind == "memory":  # (b) com.yahoo.ml.caffe.LMDB: read by 2 tasks, one shard each
        sources = (f"file:{lmdb.train}", f"file:{lmdb.test}")
    else:  # (c) CoSData (DataFrameSource): typed columns, shuffled with shuffle: true
        sources = (str(root / "train_cos.parquet"), str(root / "test_cos.parquet"))
    solvers = lenet_parity_solvers(tmp_path, anchors, kind, *sources, max_iter=ITERS)
    if kind == "cos":
        for solver in (solvers.launcher, solvers.spark):
            net = solver.parent / "lenet_cos_train_test.prototxt"
            text = net.read_text()  # the first cos_data_param is the TRAIN layer's
            net.write_text(text.replace("cos_data_param {", "cos_data_param { shuffle: true", 1))
    launcher_model, initial = train_with_launcher(solvers, 2)
    model = tmp_path / "spark.caffemodel"
    conf = Config(spark, ["-train", "-conf", str(solvers.spark), "-model", str(model),
                          "-clusterSize", "2"])
    summaries = CaffeOnSpark(spark, timeout=60.0).train(DataSource.getSource(conf, True))
    assert [(s["rank"], s["iter"], s["rows"]) for s in summaries] == [
        (0, ITERS, N_TRAIN // 2), (1, ITERS, N_TRAIN - N_TRAIN // 2)
    ]
    assert_same_model(model, launcher_model, initial)


def test_contiguous_split_in_the_dataframes_order_and_in_parquets(spark, tmp_path):
    df = spark.range(0, 23, 1, 3).selectExpr("id", "id * 10 AS x")  # 3 partitions: 7, 8, 8
    assert with_partitions(df, 3) is df  # the source's own 3 shards are kept
    parts = split_contiguously(df, 2).rdd.glom().map(lambda rows: [r.id for r in rows])
    assert parts.collect() == [list(range(0, 11)), list(range(11, 23))]
    # Spark reads the larger file first; the launcher's ParquetSource reads sorted names.
    folder = tmp_path / "folder"
    folder.mkdir()
    pq.write_table(pa.table({"v": np.arange(0, 5)}), folder / "part-0.parquet")
    pq.write_table(pa.table({"v": np.arange(5, 14)}), folder / "part-1.parquet")
    df = spark.read.parquet(str(folder))
    assert [r.v for r in df.collect()][:1] == [5]
    index, total = parquet_order(df, str(folder), "")
    assert total == 14
    split = with_partitions(df, 2, keep=False, order=(index, total))
    assert split.rdd.glom().map(lambda rows: [r.v for r in rows]).collect() == [
        list(range(0, 7)), list(range(7, 14))
    ]
