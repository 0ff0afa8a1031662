"""`-tensorboard DIR` on the Spark path: CaffeOnSpark's LeNet trained with -clusterSize 2 on
the local[2] session writes one event file (rank 0's) with the display-step losses, the
learning rate and the ring's allreduce tags (spark/train_task.py, viz/tensorboard.py)."""

from __future__ import annotations

import pytest
from spark_util import write_lenet

from caffeonspark.data.convert_mnist import prepare_mnist_lmdb
from caffeonspark.spark import CaffeOnSpark, Config, DataSource

ITERS, DISPLAY = 10, 5


def test_two_ranks_write_one_event_file_with_allreduce_tags(spark, anchors, tmp_path):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    digits = prepare_mnist_lmdb(tmp_path / "digits", n_train=256, n_test=64)
    solver = write_lenet(tmp_path / "lenet", anchors, "memory", f"file:{digits.train}",
                         f"file:{digits.test}", max_iter=ITERS, display=DISPLAY,
                         test_interval=100000, test_initialization="false",
                         snapshot_after_train="false")
    events = tmp_path / "runs"
    conf = Config(spark, ["-train", "-conf", str(solver), "-model",
                          f"file:{tmp_path}/lenet.caffemodel", "-clusterSize", "2",
                          "-tensorboard", str(events)])
    summaries = CaffeOnSpark(spark, timeout=60.0).train(DataSource.getSource(conf, True))
    assert [(s["rank"], s["iter"]) for s in summaries] == [(0, ITERS), (1, ITERS)]

    files = list(events.iterdir())
    assert len(files) == 1 and files[0].name.startswith("events.out.tfevents")  # rank 0 only
    accumulator = event_accumulator.EventAccumulator(str(events),
                                                     size_guidance={"scalars": 0})
    accumulator.Reload()
    # Solve's last line (iteration 10) has the loss but no rate nor ring statistics.
    loss = accumulator.Scalars("train/loss")
    assert [e.step for e in loss] == [0, 5, 10]
    assert all(0 < e.value < 10 for e in loss)
    rates = accumulator.Scalars("lr")
    assert [e.step for e in rates] == [0, 5]
    # lr_policy inv: base_lr * (1 + gamma * iter) ^ -power
    for event in rates:
        assert event.value == pytest.approx(0.01 * (1 + 0.0001 * event.step) ** -0.75,
                                            rel=1e-6)
    for tag in ("allreduce/seconds", "allreduce/wait_seconds", "allreduce/hidden_fraction"):
        assert [e.step for e in accumulator.Scalars(tag)] == [0, 5], tag
    assert all(e.value > 0 for e in accumulator.Scalars("allreduce/seconds"))
    for event in accumulator.Scalars("allreduce/hidden_fraction"):
        assert 0.0 <= event.value <= 1.0
    # images_per_second counts both ranks: 2 x 64 images per iteration
    speed = [e.value for e in accumulator.Scalars("iters_per_second")]
    images = [e.value for e in accumulator.Scalars("images_per_second")]
    assert [round(i / s) for i, s in zip(images[1:], speed[1:], strict=True)] == [128]
