"""A feeder thread from a data source (data/sources/) into one MemoryData layer: what a
MemoryData layer naming `source_class` + `memory_data_param.source` gets when engine.Net
builds it (feeders.NetFeeds starts one per such layer).

The thread iterates `source.batches(batch_size, remainder=...)` — the source's partition,
epoch after epoch, with its shuffle and the batching rule of sources/base.py — and pushes
each batch: uint8 images go to the layer, whose prefetch thread applies transform_param
natively; float items (numeric Parquet columns, float_data Datums, float NumPy arrays) get
the layer's transform_param here, from the same native DataTransformer (GIL released), when
it is not the identity. A failure (corrupt record, size mismatch) closes the layer's queue
with the error, which Forward raises in the solver's thread, naming the source and key/row.
Tests: tests/layers/test_memory_data_source.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from caffeonspark._native import _engine
from caffeonspark.data.feeder_thread import FeederThread
from caffeonspark.data.native_queue import MemoryDataFeeder
from caffeonspark.data.sources import Source

__all__ = ["SourceFeeder"]


class SourceFeeder(FeederThread):
    def __init__(
        self,
        source: Source,
        feeder: MemoryDataFeeder,
        *,
        remainder: str = "drop",
        transform_param: dict[str, Any] | None = None,
        train: bool = True,
        seed: int = 0,
    ) -> None:
        self.source = source
        self.feeder = feeder
        self.remainder = remainder
        self._transform_param = transform_param or {}
        self._train = train
        self._seed = seed
        self._transformer: Any = None

    def _floats(self, data: np.ndarray) -> np.ndarray:
        if self._transformer is None:
            self._transformer = _engine.DataTransformer(
                self._transform_param, self._train, seed=self._seed
            )
        return self._transformer.transform(data)[0]

    def push(self, data: np.ndarray, labels: np.ndarray) -> bool:
        """One batch into the layer: uint8 images as they are (transformed by the layer),
        float items through the layer's transform here. False once the layer is closed."""
        if data.dtype == np.uint8 or self.feeder.identity_transform:
            return self.feeder.push(data, labels)
        return self.feeder.push_transformed(self._floats(data), labels)

    def run(self) -> None:
        try:
            for batch in self.source.batches(self.feeder.batch_size, remainder=self.remainder):
                if not self.push(batch.data, batch.labels):
                    return
        except BaseException as err:  # surfaces in Forward, on the solver's thread
            self.feeder.close(err)
        finally:
            self.source.close()

    def thread_name(self) -> str:
        return f"source-feeder {self.source.path}"

    def end_stream(self) -> None:
        self.feeder.close()
