"""Shuffled reads of raw images from an Arrow table: RawImageRows.gather (what ArrowSource
and ParquetSource use for a spool of raw images) and BatchRows.take (ArrowSource's way for
other tables: encoded images, numeric columns) against pyarrow's `Table.take` (what
ArrowSource used before), the same rows, in one run.

    python tools/bench_arrow_gather.py [--rows 100000] [--chunk 256] [--repeats 200]

Tables of 28x28 one-channel images split into record batches of several sizes (Spark's Arrow
batches hold 10,000 rows); each read is --chunk distinct random rows, as a source's shuffled
epoch asks for them. Prints ms per read and the ratio Table.take / gather.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from caffeonspark.data.sources.arrow_gather import BatchRows, RawImageRows

SHAPE = (1, 28, 28)


def image_table(rows: int, per_batch: int) -> pa.Table:
    size = int(np.prod(SHAPE))
    rng = np.random.default_rng(0)
    batches = []
    for start in range(0, rows, per_batch):
        k = min(per_batch, rows - start)
        pixels = rng.integers(0, 256, (k, size), dtype=np.uint8)
        offsets = pa.array(np.arange(k + 1, dtype=np.int32) * size)
        data = pa.BinaryArray.from_buffers(
            pa.binary(), k, [None, offsets.buffers()[1], pa.py_buffer(pixels.ravel())]
        )
        batches.append(pa.RecordBatch.from_arrays([data, pa.array(np.zeros(k))], ["data", "label"]))
    return pa.Table.from_batches(batches)


def ms_per_read(read, reads: list[np.ndarray]) -> float:
    start = time.perf_counter()
    for rows in reads:
        read(rows)
    return (time.perf_counter() - start) / len(reads) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    print(f"{args.rows} rows of {SHAPE} uint8, reads of {args.chunk} random rows")
    print("| rows per record batch | gather (ms) | BatchRows.take (ms) | Table.take (ms) "
          "| Table.take / gather |")
    print("|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(1)
    for per_batch in (10_000, 256, 8):
        table = image_table(args.rows, per_batch)
        dims = np.tile(SHAPE, (args.rows, 1))
        plan = RawImageRows.plan(table, "data", "label", dims, None)
        reads = [rng.choice(args.rows, args.chunk, replace=False) for _ in range(args.repeats)]
        gather = ms_per_read(plan.gather, reads)
        batch_take = ms_per_read(BatchRows(table).take, reads)
        take = ms_per_read(lambda rows, t=table: t.take(pa.array(rows)), reads[: max(1, args.repeats // 4)])
        print(f"| {per_batch:,} | {gather:.3f} | {batch_take:.3f} | {take:.3f} "
              f"| {take / gather:.0f}x |")


if __name__ == "__main__":
    main()
