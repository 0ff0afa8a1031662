"""Fault tolerance and the driver console on the local[2] session (spark/fault.py,
spark/console.py, spark/reporter.py): LeNet trained by two ranks, once uninterrupted and
once with rank 1's engine killed (os._exit) mid-training by the test-only FailAt hook
(fault._arm_fail_at). Spark retries the barrier stage; every rank resumes from this job's
newest snapshot (not from an older job's snapshot left in the directory), and the model
equals the uninterrupted one (the resumed ranks restore weights, history and iteration, and
their data streams skip the batches already trained on), so it scores within one point of
it. The ranks' log lines and rank 0's progress reach the driver's logger; the summaries
carry the first iteration's wall clock and the steady-state rate; a rank failing on every
attempt ends the job with a RankFailure carrying its last lines."""

from __future__ import annotations

import logging
import shutil
import time

import numpy as np
import pytest
from spark_util import write_lenet

from caffeonspark import engine, model_io
from caffeonspark.data.convert_mnist import prepare_mnist_lmdb
from caffeonspark.data.sources import LmdbSource
from caffeonspark.proto import caffe_pb2
from caffeonspark.spark import CaffeOnSpark, Config, DataSource, fault
from caffeonspark.spark.console import RankFailure
from caffeonspark.spark.fault import FailAt

N_TRAIN, N_TEST = 2000, 250
MAX_ITER, SNAPSHOT, FAIL_AT = 60, 20, 30


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return prepare_mnist_lmdb(tmp_path_factory.mktemp("digits"), n_train=N_TRAIN, n_test=N_TEST)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


def recording() -> tuple[Records, object]:
    handler = Records()
    logger = logging.getLogger("caffeonspark")
    old = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)

    def stop() -> None:
        logger.removeHandler(handler)
        logger.setLevel(old)

    return handler, stop


@pytest.fixture
def driver_log():
    handler, stop = recording()
    yield handler
    stop()


def lenet(root, anchors, digits, **solver):
    return write_lenet(root, anchors, "memory", f"file:{digits.train}", f"file:{digits.test}",
                       max_iter=MAX_ITER, snapshot=SNAPSHOT, display=10, **solver)


def accuracy(conf, model, test_lmdb) -> float:
    """The TEST net's accuracy over every test row, run by the engine directly."""
    net_param = conf.phase_net(caffe_pb2.TEST)
    layer = next(layer for layer in net_param.layer if layer.type == "MemoryData")
    layer.ClearField("source_class")
    layer.memory_data_param.ClearField("source")
    layer.memory_data_param.batch_size = N_TEST
    net = engine.Net(net_param, phase=engine.TEST)
    try:
        net.copy_from(str(model))
        with LmdbSource(test_lmdb, chunk_size=N_TEST) as source:
            (chunk,) = list(source.epoch(0))
        net.memory_data_feeder(layer.name).push(chunk.data, chunk.labels)
        return float(net.forward()["accuracy"].ravel()[0])
    finally:
        net.close()


def train_two_ranks(spark, solver, model, fail_at: FailAt | None = None):
    conf = Config(spark, ["-train", "-conf", str(solver), "-model", str(model),
                          "-clusterSize", "2"])
    cos = CaffeOnSpark(spark, timeout=60.0)
    if fail_at is not None:
        fault._arm_fail_at(cos, fail_at)  # the private test hook
    return conf, cos, cos.train(DataSource.getSource(conf, True))


@pytest.fixture(scope="module")
def uninterrupted(spark, digits, anchors, tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    solver = lenet(root, anchors, digits)
    handler, stop = recording()
    started = time.time()
    try:
        conf, cos, summaries = train_two_ranks(spark, solver, root / "lenet.caffemodel")
    finally:
        stop()
    return root, conf, cos, summaries, handler, started


def test_killed_rank_resumes_from_the_snapshot(spark, digits, anchors, tmp_path, uninterrupted,
                                               driver_log):
    root, conf, _, summaries, _, _ = uninterrupted
    assert [(s["rank"], s["iter"], s["attempt"], s["resumed_from"]) for s in summaries] == [
        (0, MAX_ITER, 0, None), (1, MAX_ITER, 0, None)
    ]
    # An older job's snapshot, newer than any this job writes before the failure: the
    # retry must not resume from it.
    for suffix in ("caffemodel", "solverstate"):
        shutil.copy(root / f"mnist_lenet_iter_40.{suffix}", tmp_path / f"mnist_lenet_iter_40.{suffix}")
    solver = lenet(tmp_path, anchors, digits)
    marker = tmp_path / "failed-once"
    _, _, resumed = train_two_ranks(spark, solver, tmp_path / "lenet.caffemodel",
                                    fail_at=FailAt(rank=1, iteration=FAIL_AT, marker=str(marker)))
    assert marker.exists()
    assert [(s["rank"], s["iter"], s["attempt"], s["resumed_from"]) for s in resumed] == [
        (0, MAX_ITER, 1, SNAPSHOT), (1, MAX_ITER, 1, SNAPSHOT)
    ]
    messages = driver_log.messages()
    state = tmp_path / f"mnist_lenet_iter_{SNAPSHOT}.solverstate"
    assert f"[rank 0] attempt 1: resuming from {state} at iteration {SNAPSHOT}" in messages
    assert any(f"[rank 1] test hook FailAt: rank 1 dies (os._exit) at iteration {FAIL_AT}" in m
               for m in messages)
    assert not list(tmp_path.glob(".lenet.caffemodel.attempts-*"))  # the run directory is gone

    expected = model_io.read_caffemodel(root / "lenet.caffemodel").layer
    got = model_io.read_caffemodel(tmp_path / "lenet.caffemodel").layer
    assert [layer.name for layer in got] == [layer.name for layer in expected]
    for a, b in zip(got, expected, strict=True):
        for blob_a, blob_b in zip(a.blobs, b.blobs, strict=True):
            np.testing.assert_allclose(model_io.blob_to_array(blob_a),
                                       model_io.blob_to_array(blob_b), rtol=1e-5, atol=1e-6)

    base = accuracy(conf, root / "lenet.caffemodel", digits.test)
    again = accuracy(conf, tmp_path / "lenet.caffemodel", digits.test)
    assert base > 0.5
    assert abs(again - base) <= 0.01, (base, again)



def test_resume_from_snapshots_at_a_uri(spark, digits, anchors, tmp_path, uninterrupted):
    """-model at a URI that is not a local path (fsspec's `local://`, which storage.py opens
    through pyarrow's fsspec bridge as it would hdfs: or s3:): the snapshots are uploaded
    there, listed there on the retry, fetched by every rank and restored; the model again
    equals the uninterrupted run's."""
    pytest.importorskip("fsspec", reason="the local:// filesystem comes from fsspec")
    root = uninterrupted[0]
    solver = lenet(tmp_path, anchors, digits)
    marker = tmp_path / "failed-once"
    model = f"local://{tmp_path}/out/lenet.caffemodel"
    (tmp_path / "out").mkdir()
    _, _, resumed = train_two_ranks(spark, solver, model,
                                    fail_at=FailAt(rank=1, iteration=FAIL_AT, marker=str(marker)))
    assert marker.exists()
    assert [(s["rank"], s["attempt"], s["resumed_from"]) for s in resumed] == [
        (0, 1, SNAPSHOT), (1, 1, SNAPSHOT)
    ]
    out = tmp_path / "out"
    assert (out / f"mnist_lenet_iter_{MAX_ITER}.solverstate").is_file()
    assert not list(out.glob(".lenet.caffemodel.attempts-*"))
    expected = model_io.read_caffemodel(root / "lenet.caffemodel").layer
    got = model_io.read_caffemodel(out / "lenet.caffemodel").layer
    for a, b in zip(got, expected, strict=True):
        for blob_a, blob_b in zip(a.blobs, b.blobs, strict=True):
            np.testing.assert_allclose(model_io.blob_to_array(blob_a),
                                       model_io.blob_to_array(blob_b), rtol=1e-5, atol=1e-6)


def test_rank_logs_and_progress_reach_the_driver(uninterrupted):
    _, _, _, summaries, log, started = uninterrupted
    for s in summaries:
        assert s["images_per_second"] > 0
        assert started < s["first_iteration_time"] < time.time()
    messages = log.messages()
    for rank in (0, 1):
        assert any(m.startswith(f"[rank {rank}] rank {rank}: 1000 training rows spooled")
                   for m in messages), messages
    assert f"[rank 0] Iteration {MAX_ITER}, loss = " in "\n".join(messages)
    assert "[rank 1] Optimization Done." in messages
    rank_records = [r for r in log.records if r.name == "caffeonspark.rank"]
    assert {r.rank for r in rank_records} == {0, 1}
    progress = [m for m in messages if m.startswith("progress: iteration ")]
    assert any(m.startswith(f"progress: iteration 10/{MAX_ITER}, loss ") and "images/s, ETA"
               in m for m in progress), messages


def test_a_rank_failing_every_attempt_names_it_with_its_last_lines(spark, digits, anchors,
                                                                   tmp_path):
    solver = lenet(tmp_path, anchors, digits)
    with pytest.raises(RankFailure) as caught:
        train_two_ranks(spark, solver, tmp_path / "m.caffemodel",
                        fail_at=FailAt(rank=1, iteration=2, hard=False))
    failure = caught.value
    assert failure.ranks[0] == 1
    assert any("test hook FailAt: rank 1 raises at iteration 2" in line
               for line in failure.last_lines[1])
    text = str(failure)
    assert "training failed on rank(s) 1" in text
    assert "--- rank 1, last" in text and "RuntimeError: test hook FailAt" in text
    assert "--- Spark's cause ---" in text and "barrier" in text
    assert not (tmp_path / "m.caffemodel").exists()


# -- the helpers, without Spark -------------------------------------------------------------


def test_newest_snapshot_of_this_job_only(tmp_path):
    prefix = str(tmp_path / "net")

    def write(iteration: int, h5: bool = False, model: bool = True) -> str:
        suffix = ".h5" if h5 else ""
        if model:
            (tmp_path / f"net_iter_{iteration}.caffemodel{suffix}").write_bytes(b"m")
        state = tmp_path / f"net_iter_{iteration}.solverstate{suffix}"
        state.write_bytes(b"s")
        return str(state)

    write(500)  # an older job's
    (tmp_path / "net_iter_7.solverstate.tmp").write_bytes(b"partial")  # not a snapshot
    existing = fault.existing_snapshots(prefix)
    assert list(existing) == [str(tmp_path / "net_iter_500.solverstate")]
    assert fault.newest_snapshot(prefix, existing) is None
    write(10)
    assert fault.newest_snapshot(prefix, existing) == (10, str(tmp_path / "net_iter_10.solverstate"))
    assert fault.newest_snapshot(prefix, existing) == (10, write(10))
    h5 = write(20, h5=True)
    write(30, model=False)  # its weights are missing: incomplete
    assert fault.newest_snapshot(prefix, existing) == (20, h5)
    time.sleep(0.01)
    rewritten = write(500)  # this job wrote iteration 500 again: it counts now
    assert fault.newest_snapshot(prefix, existing) == (500, rewritten)
    assert fault.existing_snapshots("") == {}


def test_attempts_are_counted_in_the_run_directory(tmp_path):
    run_dir = str(tmp_path / "run" / "dir")
    assert [fault.next_attempt(run_dir) for _ in range(3)] == [0, 1, 2]


def test_test_journal_keeps_the_tests_before_the_snapshot(tmp_path):
    journal = fault.TestJournal(str(tmp_path / "run"))
    assert journal.before(100) == []
    results = [{"iter": i, "test_net": 0, "outputs": {"accuracy": [i / 100]}, "loss": None}
               for i in (0, 20, 40)]
    journal.keep(results[:1])
    journal.keep(results)
    again = fault.TestJournal(str(tmp_path / "run"))  # the retried attempt
    assert again.before(40) == results[:2]
    assert again.before(41) == results
