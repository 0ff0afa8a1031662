"""SequenceFile source (CaffeOnSpark's `com.yahoo.ml.caffe.SeqImageDataSource`): Hadoop
SequenceFiles of (Text key, BytesWritable serialized Datum), one file or a folder of part
files (convert_seq.seq_files).

Partition i of n reads, in every file, the byte split [size*i/n, size*(i+1)/n) the Hadoop
way (seqfile.SequenceFileReader.records: from the first sync marker in the split to the
first record after a sync marker past its end), so n partitions see every record exactly
once, without coordination. The share is indexed once (keys and offsets, values unread);
epochs read values by offset. Record ids are file_index << 40 | byte offset. Errors name
the file, the key and the byte offset.
Tests: tests/data/test_sources.py.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from caffeonspark.data.convert_seq import seq_files
from caffeonspark.data.datums import datum_image, key_text, parse_datum
from caffeonspark.data.seqfile import SequenceFileReader
from caffeonspark.data.sources.base import Chunk, Source, local_path, partition_range

__all__ = ["SeqFileSource"]

_FILE_SHIFT = 40


class SeqFileSource(Source):
    kind = "SequenceFile"

    def __init__(self, path: str | os.PathLike[str], **options: Any) -> None:
        super().__init__(local_path(path, options.get("owner", "")), **options)
        self.files = seq_files(self.path)
        self._readers = [SequenceFileReader(f) for f in self.files]

    def _refs(self) -> Sequence[Any]:
        refs = []
        for index, reader in enumerate(self._readers):
            start, end = partition_range(reader.size, self.partition, self.num_partitions)
            for record in reader.records(start, end, values=False):
                refs.append((index << _FILE_SHIFT) | record.offset)
        return np.asarray(refs, dtype=np.int64)

    def _read(self, refs: Sequence[Any]) -> Chunk:
        ids = np.asarray(refs, dtype=np.int64)
        data, labels = self.stack(ids.tolist(), self._convert)
        return Chunk(ids, data, labels)

    def _convert(self, ref: int) -> tuple[np.ndarray, float]:
        reader = self._readers[ref >> _FILE_SHIFT]
        offset = ref & ((1 << _FILE_SHIFT) - 1)
        record = reader.record_at(offset)
        where = (
            f"{self.owner}SequenceFile '{reader.path}' key '{key_text(record.key)}' (byte {offset})"
        )
        datum = parse_datum(record.value, where)
        image = datum_image(datum, where, self.mode, self.resize)
        return self.check_shape(image, where), float(datum.label)

    @property
    def total(self) -> int:
        return sum(1 for reader in self._readers for _ in reader.records(values=False))

    def close(self) -> None:
        super().close()
        for reader in self._readers:
            reader.close()
