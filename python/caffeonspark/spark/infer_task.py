"""Tasks that run a trained model over a DataFrame: features and test (executor side; plain,
not barrier, stages: every task is independent).

    df.mapInArrow(InferTask(plan), output schema)

Each task builds the TEST net (its data layer rewritten by the driver to a plain MemoryData
layer, or a CoSData layer fed by push), loads -model (a local copy first when it is a URI:
storage.py), and streams the partition: each Arrow record batch becomes items through
caffeonspark.data.sources.ArrowSource (the layer's select, sizes, encoded flag, decode mode
and -resize), items are pushed batch_size at a time into the MemoryData layer (uint8
transformed natively, float items through the same transform) and the net runs forward once
per batch. For a CoSData net each record batch becomes one array per top instead
(data/cos_tops.py top_arrays: the column named like the top, converted by its type, images
resized with -resize), pushed with `push_tops` and transformed natively per top. The partition's last rows, fewer than batch_size, run
through a second net of exactly that batch size sharing the first one's weights, so every
row is used once and nothing is padded.

- features: one output row per input row, in input order: `SampleID` (the input's id
  column), the -label blob's value (double) when asked, and each requested blob flattened
  per sample as array<float>. CaffeOnSpark's rule for a blob holding fewer values than the
  batch has samples (an accuracy, a loss: `-features accuracy,ip1` is its documented
  example): every row of the batch gets the whole blob, computed over that batch. The
  driver finds such blobs once on the TEST net at the data layer's batch size
  (batch_outputs) and warns once; any other blob whose first axis is not the batch is a
  ConfigError naming it.
- test: per task and per net output, the sum over samples and the sample count: an output
  whose first axis is the batch is summed per sample; any other (a loss, an accuracy) is
  weighted by the batch's rows. The driver divides: each output's mean over all samples.
Tests: tests/spark/test_spark.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from caffeonspark.errors import ConfigError
from caffeonspark.proto import caffe_pb2
from caffeonspark.spark import storage
from caffeonspark.spark.source import ReaderOptions
from caffeonspark.spark.train_task import local_dir, setup_executor

__all__ = ["InferPlan", "InferTask", "TEST_OUTPUT", "batch_outputs"]

TEST_OUTPUT = "name string, sums array<double>, samples long"


@dataclass(frozen=True)
class InferPlan:
    net: bytes  # serialized NetParameter, filtered for TEST, data layer fed by push
    data_layer: int  # its index
    model_path: str
    reader: ReaderOptions
    features: tuple[str, ...] = ()  # empty: test mode
    label: str | None = None
    id_column: str | None = None
    repeated: tuple[str, ...] = ()  # features holding fewer values than a batch (batch_outputs)


def _data_layer_batch(plan: InferPlan) -> int:
    layer = caffe_pb2.NetParameter.FromString(plan.net).layer[plan.data_layer]
    return int(layer.cos_data_param.batch_size if layer.type == "CoSData"
               else layer.memory_data_param.batch_size)


def _build_net(plan: InferPlan, batch_size: int) -> Any:
    """The TEST net of the plan with its data layer at `batch_size` (weights as filled)."""
    from caffeonspark import engine
    from caffeonspark.data.feed_options import FeedOptions

    param = caffe_pb2.NetParameter.FromString(plan.net)
    layer = param.layer[plan.data_layer]
    if layer.type == "CoSData":
        layer.cos_data_param.batch_size = batch_size
    else:
        layer.memory_data_param.batch_size = batch_size
    return engine.Net(param, phase=engine.TEST, feed=FeedOptions(resize=plan.reader.resizes))


def batch_outputs(plan: InferPlan) -> tuple[tuple[str, ...], dict[str, tuple[int, ...]]]:
    """(the -features blobs each row repeats whole, those of them holding fewer values than a
    batch has samples with their shapes). Shapes are read on the TEST net built once at the
    data layer's batch size (its weights filled, not loaded; activations never computed).
    CaffeOnSpark splits each blob into batch-size parts and gives a blob of fewer values
    than samples whole to every row: an accuracy or a loss; a 0-d blob at batch size 1 is
    the same single value either way. A blob with at least as many values as samples but
    a first axis other than the batch has no per-sample reading: a ConfigError naming it."""
    batch = _data_layer_batch(plan)
    net = _build_net(plan, batch)
    try:
        shapes = {name: tuple(net.blobs[name].shape) for name in plan.features}
    finally:
        net.close()
    repeated: list[str] = []
    fewer: dict[str, tuple[int, ...]] = {}
    for name, shape in shapes.items():
        if shape and shape[0] == batch:
            continue
        count = int(np.prod(shape, dtype=np.int64))
        if count < batch or not shape:
            repeated.append(name)
            if count < batch:
                fewer[name] = shape
            continue
        raise ConfigError(
            f"-features: blob '{name}' has shape {shape}: its first axis is not the batch "
            f"of {batch} and it holds more values than the batch has samples, so no row "
            "owns a part of it; extract per-sample blobs (ip1, ip2, ...)"
        )
    return tuple(repeated), fewer


class _Engine:
    """The TEST net at one batch size (weights from -model, or shared with another)."""

    def __init__(self, plan: InferPlan, batch_size: int, weights_from: Any = None) -> None:
        layer = caffe_pb2.NetParameter.FromString(plan.net).layer[plan.data_layer]
        self.net = _build_net(plan, batch_size)
        if weights_from is None:
            with storage.fetched(plan.model_path, "model", local_dir()) as model:
                self.net.copy_from(model)
        else:
            self.net.native.share_trained_layers_with(weights_from.net.native)
        if layer.type == "CoSData":
            feed = self.net.data_feeds.cos_feed(layer.name)
            self.push = lambda arrays: feed.push_tops(list(arrays))
        else:
            from caffeonspark import netspec
            from caffeonspark.data.source_feeder import SourceFeeder

            transform = netspec.layer_params(layer).get("transform_param")
            feeder = SourceFeeder(
                None,  # type: ignore[arg-type]  # push() only: no source of its own
                self.net.memory_data_feeder(layer.name),
                transform_param=transform,
                train=False,
            )
            self.push = lambda arrays: feeder.push(*arrays)
        self.batch_size = batch_size

    def run(self, arrays: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
        if not self.push(arrays):
            raise ConfigError("the net's data layer closed while features were computed")
        return self.net.forward()

    def close(self) -> None:
        self.net.close()


class InferTask:
    """mapInArrow function of the features / test stages."""

    def __init__(self, plan: InferPlan) -> None:
        self.plan = plan

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        plan = self.plan
        ctx = TaskContext.get()
        setup_executor(ctx.cpus() if ctx else 1)
        param = caffe_pb2.NetParameter.FromString(plan.net)
        layer = param.layer[plan.data_layer]
        owner = f"features/test task {ctx.partitionId() if ctx else 0}: "
        read = _cos_reader(layer, plan, owner) if layer.type == "CoSData" else _item_reader(
            plan, owner)
        batch_size = int(layer.cos_data_param.batch_size if layer.type == "CoSData"
                         else layer.memory_data_param.batch_size)
        main = _Engine(plan, batch_size)
        tail: _Engine | None = None
        sums: dict[str, np.ndarray] = {}
        count = 0
        held: list[tuple[tuple[np.ndarray, ...], pa.Array | None]] = []
        held_rows = 0
        try:
            for record_batch in batches:
                if record_batch.num_rows == 0:
                    continue
                ids = record_batch.column(plan.id_column) if plan.id_column else None
                held.append((read(record_batch, count + held_rows), ids))
                held_rows += record_batch.num_rows
                while held_rows >= batch_size:
                    arrays, ids, held = _take(held, batch_size)
                    held_rows -= batch_size
                    out = self._step(main, arrays, ids, sums)
                    count += batch_size
                    if out is not None:
                        yield out
            if held_rows:
                arrays, ids, held = _take(held, held_rows)
                tail = _Engine(plan, held_rows, weights_from=main)
                out = self._step(tail, arrays, ids, sums)
                count += held_rows
                if out is not None:
                    yield out
        finally:
            main.close()
            if tail is not None:
                tail.close()
        if not plan.features and count:
            yield pa.RecordBatch.from_pydict(
                {
                    "name": list(sums),
                    "sums": pa.array([s.tolist() for s in sums.values()], pa.list_(pa.float64())),
                    "samples": pa.array([count] * len(sums), pa.int64()),
                }
            )

    def _step(self, eng: _Engine, arrays, ids, sums) -> pa.RecordBatch | None:
        rows = len(arrays[0])
        outputs = eng.run(arrays)
        if not self.plan.features:
            for name, value in outputs.items():
                value = np.asarray(value, dtype=np.float64)
                if value.ndim >= 2 and value.shape[0] == rows:
                    total = value.reshape(rows, -1).sum(axis=0)
                else:
                    total = value.reshape(-1) * rows
                sums[name] = sums.get(name, 0) + total
            return None
        columns: list[pa.Array] = [ids]
        names = ["SampleID"]
        blobs = eng.net.blobs
        if self.plan.label:
            values = blobs[self.plan.label].data.reshape(rows, -1)
            if values.shape[1] != 1:
                raise ConfigError(
                    f"-label: blob '{self.plan.label}' holds {values.shape[1]} values per "
                    "sample; name a blob with one (the label)"
                )
            columns.append(pa.array(values[:, 0].astype(np.float64)))
            names.append(self.plan.label)
        for name in self.plan.features:
            data = blobs[name].data
            if name in self.plan.repeated:
                # A batch output (an accuracy, a loss): each row gets all of it.
                flat = np.broadcast_to(data.reshape(1, -1).astype(np.float32), (rows, data.size))
            elif data.ndim == 0 or data.shape[0] != rows:
                raise ConfigError(
                    f"-features: blob '{name}' has shape {tuple(data.shape)}, not one entry "
                    f"per sample of the batch of {rows}"
                )
            else:
                flat = np.ascontiguousarray(data.reshape(rows, -1), dtype=np.float32)
            offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * flat.shape[1])
            columns.append(pa.ListArray.from_arrays(offsets, pa.array(flat.reshape(-1))))
            names.append(name)
        return pa.RecordBatch.from_arrays(columns, names)


def _item_reader(plan: InferPlan, owner: str):
    """A record batch -> (data, labels) through ArrowSource (MemoryData nets)."""
    from caffeonspark.data.sources import ArrowSource

    def read(record_batch: pa.RecordBatch, first_row: int) -> tuple[np.ndarray, ...]:
        source = ArrowSource(record_batch, chunk_size=record_batch.num_rows, owner=owner,
                             **plan.reader.source_options())
        with source:
            (chunk,) = list(source.epoch(0))
        return chunk.data, chunk.labels

    return read


def _cos_reader(layer: caffe_pb2.LayerParameter, plan: InferPlan, owner: str):
    """A record batch -> one (k, C, H, W) array per top (CoSData nets, data/cos_tops.py);
    rows are numbered within the task's partition in error messages."""
    from caffeonspark.data.cos_tops import top_arrays, top_specs

    tops = top_specs(layer, owner)
    where = f"{owner}layer '{layer.name}' (CoSData)"

    def read(record_batch: pa.RecordBatch, first_row: int) -> tuple[np.ndarray, ...]:
        rows = np.arange(first_row, first_row + record_batch.num_rows)
        table = pa.Table.from_batches([record_batch])
        return top_arrays(table, tops, rows, where, resize=plan.reader.resize_tops)

    return read


def _take(held, n: int):
    """The first n held rows (one array per input, ids) and what is left."""
    parts: list[tuple[np.ndarray, ...]] = []
    parts_i = []
    need = n
    rest = list(held)
    while need:
        arrays, ids = rest[0]
        k = len(arrays[0])
        if k <= need:
            parts.append(arrays)
            parts_i.append(ids)
            rest.pop(0)
            need -= k
        else:
            parts.append(tuple(a[:need] for a in arrays))
            parts_i.append(None if ids is None else ids.slice(0, need))
            rest[0] = (tuple(a[need:] for a in arrays), None if ids is None else ids.slice(need))
            need = 0
    if len(parts) == 1:
        arrays = parts[0]
    else:
        arrays = tuple(np.concatenate(column) for column in zip(*parts, strict=True))
    ids = None
    if parts_i[0] is not None:
        ids = parts_i[0] if len(parts_i) == 1 else pa.concat_arrays(parts_i)
    return arrays, ids, rest
