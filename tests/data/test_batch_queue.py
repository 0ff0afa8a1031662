"""The native BatchQueue (cpp/data/batch_queue.h) through its binding: FIFO order, uint8
and float batches, bounded capacity with blocking pushes, pop deadlines with clear errors,
a feeder's error re-raised on the consumer side after the queued batches, waits recorded,
and blocking with the GIL released."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from caffeonspark import errors
from caffeonspark._native import _engine
from caffeonspark.data.native_queue import close_with_error

OWNER = "layer 'probe' (MemoryData): "


def wait_until_blocked(queue, producers: int = 1, timeout: float = 5.0) -> None:
    """Returns once `producers` threads are blocked inside queue.push (the event itself,
    reported by the queue), failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while queue.blocked_pushes < producers:
        assert time.monotonic() < deadline, "the producer never blocked in push"
        time.sleep(0.001)


def batch(value: int, n: int = 2, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    data = np.full((n, 1, 2, 3), value, dtype=dtype)
    return data, np.arange(n, dtype=np.float32) + value


def test_fifo_order_dtypes_and_copies():
    queue = _engine.BatchQueue(OWNER, 4, 1.0)
    raw = np.arange(24, dtype=np.uint8).reshape(2, 3, 2, 2)
    floats = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 2, 2)
    assert queue.push(raw, [7, 8])
    assert queue.push(floats, np.array([1, 2], dtype=np.int64))
    raw[...] = 0  # the queue holds copies
    assert queue.size == 2
    data, labels = queue.pop()
    assert data.dtype == np.uint8
    np.testing.assert_array_equal(data, np.arange(24, dtype=np.uint8).reshape(2, 3, 2, 2))
    np.testing.assert_array_equal(labels, [7, 8])
    data, labels = queue.pop()
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data, floats)
    np.testing.assert_array_equal(labels, [1, 2])
    assert queue.pops == 2 and queue.size == 0


def test_non_contiguous_and_float64_inputs_are_converted():
    queue = _engine.BatchQueue(OWNER, 2)
    source = np.arange(2 * 3 * 4 * 4, dtype=np.float64).reshape(2, 3, 4, 4)
    view = source[:, :, ::2, 1::2]
    assert queue.push(view, [0, 1])
    data, _ = queue.pop(1.0)
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data, view.astype(np.float32))


def test_bad_shapes_raise_shape_error_naming_the_owner():
    queue = _engine.BatchQueue(OWNER, 2)
    with pytest.raises(errors.ShapeError, match="probe.*4-D"):
        queue.push(np.zeros((2, 3, 4), np.float32), [0, 1])
    with pytest.raises(errors.ShapeError, match="probe.*one label per item"):
        queue.push(np.zeros((2, 1, 1, 1), np.float32), [0, 1, 2])


def test_pop_timeout_names_the_layer_and_the_seconds():
    queue = _engine.BatchQueue(OWNER, 2, 0.25)
    start = time.monotonic()
    with pytest.raises(errors.IoError, match=r"layer 'probe'.*no data arrived within 0.25 seconds"):
        queue.pop()
    elapsed = time.monotonic() - start
    assert 0.2 <= elapsed < 5
    assert queue.wait_seconds >= 0.2
    with pytest.raises(errors.IoError, match="within 0.05 seconds"):
        queue.pop(0.05)


def test_push_blocks_while_full_and_times_out():
    queue = _engine.BatchQueue(OWNER, 2)
    assert queue.push(*batch(0)) and queue.push(*batch(1))
    start = time.monotonic()
    with pytest.raises(errors.IoError, match="stayed full for 0.2 seconds"):
        queue.push(*batch(2), timeout=0.2)
    assert time.monotonic() - start >= 0.15
    # A consumer making room wakes a blocked producer.
    pushed = []
    producer = threading.Thread(target=lambda: pushed.append(queue.push(*batch(3))))
    producer.start()
    wait_until_blocked(queue)
    assert not pushed
    data, _ = queue.pop(1.0)
    producer.join(5)
    assert pushed == [True] and queue.blocked_pushes == 0
    assert [queue.pop(1.0)[0][0, 0, 0, 0] for _ in range(2)] == [1, 3]


def test_capacity_can_grow():
    queue = _engine.BatchQueue(OWNER, 1)
    assert queue.push(*batch(0))
    queue.capacity = 3
    assert queue.push(*batch(1), timeout=0.5) and queue.push(*batch(2), timeout=0.5)
    assert queue.size == 3 and queue.capacity == 3
    with pytest.raises(errors.ConfigError, match="capacity of at least 1"):
        _engine.BatchQueue(OWNER, 0)


@pytest.mark.parametrize(
    "kind", ["FormatError", "ShapeError", "ConfigError", "IoError", "InternalError", "PeerTimeout"]
)
def test_close_with_error_drains_then_reraises_that_class(kind):
    queue = _engine.BatchQueue(OWNER, 4)
    queue.push(*batch(5))
    queue.close(kind, f"{OWNER}record '00000003' is broken")
    assert queue.closed
    data, _ = queue.pop(1.0)  # the batch queued before the failure is still delivered
    assert data[0, 0, 0, 0] == 5
    for _ in range(2):  # and every later pop raises the same error, without waiting
        start = time.monotonic()
        with pytest.raises(getattr(errors, kind), match="record '00000003' is broken"):
            queue.pop(30.0)
        assert time.monotonic() - start < 5


def test_close_with_python_exceptions():
    queue = _engine.BatchQueue(OWNER, 2)
    close_with_error(queue, errors.FormatError("key '00000009': truncated"), OWNER)
    with pytest.raises(errors.FormatError, match="00000009"):
        queue.pop(1.0)
    queue = _engine.BatchQueue(OWNER, 2)
    close_with_error(queue, ValueError("bad pixel"), OWNER)
    with pytest.raises(errors.IoError, match=r"layer 'probe'.*ValueError: bad pixel"):
        queue.pop(1.0)
    queue = _engine.BatchQueue(OWNER, 2)
    close_with_error(queue, "the source went away", OWNER)
    with pytest.raises(errors.IoError, match=r"layer 'probe'.*the source went away"):
        queue.pop(1.0)


def test_close_without_error_and_push_after_close():
    queue = _engine.BatchQueue(OWNER, 1)
    assert queue.push(*batch(0))
    blocked = []
    producer = threading.Thread(target=lambda: blocked.append(queue.push(*batch(1))))
    producer.start()
    wait_until_blocked(queue)
    queue.close()
    producer.join(5)
    assert blocked == [False]  # a blocked push returns False when the queue closes
    assert queue.push(*batch(2)) is False
    assert queue.pop(1.0)[0][0, 0, 0, 0] == 0
    with pytest.raises(errors.IoError, match="feeder was closed and no batches are left"):
        queue.pop(1.0)
    queue.close("FormatError", "ignored: the first close wins")
    with pytest.raises(errors.IoError, match="feeder was closed"):
        queue.pop(1.0)


def test_pop_waits_with_the_gil_released_and_records_the_wait():
    # The producer is a Python thread: if pop held the GIL it could never push, and the
    # pop would time out instead of returning.
    queue = _engine.BatchQueue(OWNER, 2, 10.0)
    progress = {"ticks": 0}

    def producer():
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            progress["ticks"] += 1
        queue.push(*batch(9))

    thread = threading.Thread(target=producer)
    thread.start()
    data, _ = queue.pop()
    thread.join(5)
    assert data[0, 0, 0, 0] == 9
    assert progress["ticks"] > 0
    assert 0.2 <= queue.wait_seconds < 5


def test_many_producers_and_consumers_deliver_each_batch_once():
    queue = _engine.BatchQueue(OWNER, 3, 10.0)
    producers, per_producer = 4, 40
    received: list[int] = []
    lock = threading.Lock()

    def produce(p):
        for i in range(per_producer):
            assert queue.push(*batch(p * 1000 + i, n=1))

    def consume(count):
        for _ in range(count):
            data, labels = queue.pop()
            assert labels[0] == data[0, 0, 0, 0]
            with lock:
                received.append(int(labels[0]))

    total = producers * per_producer
    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    threads += [threading.Thread(target=consume, args=(total // 2,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(received) == sorted(
        p * 1000 + i for p in range(producers) for i in range(per_producer)
    )
    assert queue.pops == total
