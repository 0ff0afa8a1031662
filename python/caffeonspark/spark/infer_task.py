"""Tasks that run a trained model over a DataFrame: features and test (executor side; plain,
not barrier, stages: every task is independent).

    df.mapInArrow(InferTask(plan), output schema)

Each task builds the TEST net (its data layer rewritten by the driver to a plain MemoryData
layer), loads -model (a local copy first when it is a URI: storage.py), and streams the partition: each Arrow record batch
becomes items through caffeonspark.data.sources.ArrowSource (the layer's select, sizes,
encoded flag, decode mode and -resize), items are pushed batch_size at a time into the
MemoryData layer (uint8 transformed natively, float items through the same transform) and
the net runs forward once per batch. The partition's last rows, fewer than batch_size, run
through a second net of exactly that batch size sharing the first one's weights, so every
row is used once and nothing is padded.

- features: one output row per input row, in input order: `SampleID` (the input's id
  column), the -label blob's value (double) when asked, and each requested blob flattened
  per sample as array<float>. A blob without one entry per sample (a loss, an accuracy) is
  a ConfigError naming it: such outputs belong to test.
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

__all__ = ["InferPlan", "InferTask", "TEST_OUTPUT"]

TEST_OUTPUT = "name string, sums array<double>, samples long"


@dataclass(frozen=True)
class InferPlan:
    net: bytes  # serialized NetParameter, filtered for TEST, data layer -> plain MemoryData
    data_layer: int  # its index
    model_path: str
    reader: ReaderOptions
    features: tuple[str, ...] = ()  # empty: test mode
    label: str | None = None
    id_column: str | None = None


class _Engine:
    """The TEST net at one batch size (weights from -model, or shared with another)."""

    def __init__(self, plan: InferPlan, batch_size: int, weights_from: Any = None) -> None:
        from caffeonspark import engine, netspec
        from caffeonspark.data.source_feeder import SourceFeeder

        param = caffe_pb2.NetParameter.FromString(plan.net)
        layer = param.layer[plan.data_layer]
        layer.memory_data_param.batch_size = batch_size
        self.net = engine.Net(param, phase=engine.TEST)
        if weights_from is None:
            with storage.fetched(plan.model_path, "model", local_dir()) as model:
                self.net.copy_from(model)
        else:
            self.net.native.share_trained_layers_with(weights_from.net.native)
        transform = netspec.layer_params(layer).get("transform_param")
        self.feeder = SourceFeeder(
            None,  # type: ignore[arg-type]  # push() only: no source of its own
            self.net.memory_data_feeder(layer.name),
            transform_param=transform,
            train=False,
        )
        self.batch_size = batch_size

    def run(self, data: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
        if not self.feeder.push(data, labels):
            raise ConfigError("the net's MemoryData layer closed while features were computed")
        return self.net.forward()

    def close(self) -> None:
        self.net.close()


class InferTask:
    """mapInArrow function of the features / test stages."""

    def __init__(self, plan: InferPlan) -> None:
        self.plan = plan

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        from caffeonspark.data.sources import ArrowSource

        plan = self.plan
        ctx = TaskContext.get()
        setup_executor(plan.reader.resize is not None, ctx.cpus() if ctx else 1)
        param = caffe_pb2.NetParameter.FromString(plan.net)
        batch_size = int(param.layer[plan.data_layer].memory_data_param.batch_size)
        main = _Engine(plan, batch_size)
        tail: _Engine | None = None
        sums: dict[str, np.ndarray] = {}
        count = 0
        held: list[tuple[np.ndarray, np.ndarray, pa.Array | None]] = []
        held_rows = 0
        try:
            for record_batch in batches:
                if record_batch.num_rows == 0:
                    continue
                source = ArrowSource(
                    record_batch,
                    chunk_size=record_batch.num_rows,
                    owner=f"features/test task {ctx.partitionId() if ctx else 0}: ",
                    **plan.reader.source_options(),
                )
                with source:
                    (chunk,) = list(source.epoch(0))
                ids = record_batch.column(plan.id_column) if plan.id_column else None
                held.append((chunk.data, chunk.labels, ids))
                held_rows += len(chunk.labels)
                while held_rows >= batch_size:
                    data, labels, ids, held = _take(held, batch_size)
                    held_rows -= batch_size
                    out = self._step(main, data, labels, ids, sums)
                    count += batch_size
                    if out is not None:
                        yield out
            if held_rows:
                data, labels, ids, held = _take(held, held_rows)
                tail = _Engine(plan, held_rows, weights_from=main)
                out = self._step(tail, data, labels, ids, sums)
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

    def _step(self, eng: _Engine, data, labels, ids, sums) -> pa.RecordBatch | None:
        rows = len(labels)
        outputs = eng.run(data, labels)
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
            if data.ndim == 0 or data.shape[0] != rows:
                # A loss or an accuracy is one value per batch: no row owns it.
                raise ConfigError(
                    f"-features: blob '{name}' has shape {tuple(data.shape)}, not one entry "
                    f"per sample of the batch of {rows}; extract per-sample blobs (ip1, ip2, "
                    "...) and use -test for batch outputs such as accuracy and loss"
                )
            flat = np.ascontiguousarray(data.reshape(rows, -1), dtype=np.float32)
            offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * flat.shape[1])
            columns.append(pa.ListArray.from_arrays(offsets, pa.array(flat.reshape(-1))))
            names.append(name)
        return pa.RecordBatch.from_arrays(columns, names)


def _take(held, n: int):
    """The first n held rows (data, labels, ids) and what is left."""
    parts_d, parts_l, parts_i = [], [], []
    need = n
    rest = list(held)
    while need:
        data, labels, ids = rest[0]
        k = len(labels)
        if k <= need:
            parts_d.append(data)
            parts_l.append(labels)
            parts_i.append(ids)
            rest.pop(0)
            need -= k
        else:
            parts_d.append(data[:need])
            parts_l.append(labels[:need])
            parts_i.append(None if ids is None else ids.slice(0, need))
            rest[0] = (data[need:], labels[need:], None if ids is None else ids.slice(need))
            need = 0
    data = parts_d[0] if len(parts_d) == 1 else np.concatenate(parts_d)
    labels = parts_l[0] if len(parts_l) == 1 else np.concatenate(parts_l)
    ids = None
    if parts_i[0] is not None:
        ids = parts_i[0] if len(parts_i) == 1 else pa.concat_arrays(parts_i)
    return data, labels, ids, rest
