"""HDF5 reading and writing threads for the engine's HDF5Data and HDF5Output layers
(cpp/layers/hdf5_data.h), with h5py.

HDF5Data (Caffe's rules, docs/DATA.md "HDF5Data"):
- hdf5_data_param.source is a text file naming one .h5 file per line (blank lines skipped;
  paths as written, relative ones to the working directory, as in Caffe);
- each top reads the dataset named like the top; all of a file's datasets have the same
  number of rows (first dimension), and every file has the first file's row shapes;
  numeric datasets of any type are read as float32;
- rows are read file after file and wrap around to the first file; a batch may take rows
  from two files. With shuffle, the file order is drawn anew per pass over the list and the
  row order anew each time a file is entered (both from default_rng([seed, n]), n counting
  the draws); without, files and rows keep their order;
- TRAIN readers of a data-parallel job keep the rows whose running index % world_size ==
  rank (the Data layer's rule); TEST reads everything.
A missing list or file, a missing dataset or a shape mismatch is an IoError / FormatError
naming the file (and dataset); at construction for the first file, in Forward otherwise.

HDF5Output: HDF5Writer pops the (data, label) batches the layer's Forward pushes and
appends their rows to the datasets "data" and "label" (float32, Caffe's legacy 4-D (N, C, H,
W)) of a temporary file beside hdf5_output_param.file_name; close() (engine.Net.close(),
or collection of the net) renames it to file_name (python/caffeonspark/atomic_file.py).
Caffe writes one batch and fails on the next; here every batch is appended, so one pass
gives Caffe's file and several give all rows. A failure removes the temporary file, leaves
file_name as it was, and closes the queue with the error, which the next Forward raises.
Tests: tests/layers/test_hdf5_data.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np

from caffeonspark.atomic_file import publish, remove, temp_sibling
from caffeonspark.data.feeder_thread import FeederThread
from caffeonspark.data.native_queue import close_with_error
from caffeonspark.errors import FormatError, IoError

__all__ = ["read_file_list", "read_hdf5_rows", "Hdf5Reader", "Hdf5Feeder", "HDF5Writer"]


def read_file_list(source: str, owner: str = "") -> list[str]:
    """The .h5 paths listed in an HDF5Data source file."""
    try:
        with open(source, encoding="utf-8") as handle:
            names = [line.strip() for line in handle]
    except OSError as err:
        raise IoError(f"{owner}cannot read the HDF5 file list '{source}': {err.strerror}") from None
    names = [name for name in names if name]
    if not names:
        raise FormatError(f"{owner}HDF5 file list '{source}' names no files")
    return names


def read_hdf5_rows(path: str, names: list[str], owner: str = "") -> list[np.ndarray]:
    """The float32 datasets `names` of one file, all with the same number of rows."""
    try:
        handle = h5py.File(path, "r")
    except (OSError, ValueError) as err:
        raise IoError(f"{owner}cannot open HDF5 file '{path}': {err}") from None
    arrays = []
    with handle:
        for name in names:
            dataset = handle.get(name)
            if not isinstance(dataset, h5py.Dataset):
                raise FormatError(
                    f"{owner}HDF5 file '{path}' has no dataset '{name}' (a top of the layer; "
                    f"its datasets: {sorted(handle.keys())})"
                )
            if dataset.dtype.kind not in "fiub" or dataset.ndim < 1:
                raise FormatError(
                    f"{owner}HDF5 file '{path}' dataset '{name}' must be numeric with at least "
                    f"one axis, got {dataset.dtype} of shape {dataset.shape}"
                )
            arrays.append(np.asarray(dataset[()], dtype=np.float32))
    rows = {a.shape[0] for a in arrays}
    if len(rows) != 1:
        shapes = {n: a.shape for n, a in zip(names, arrays, strict=True)}
        raise FormatError(f"{owner}HDF5 file '{path}': datasets differ in rows: {shapes}")
    if next(iter(rows)) == 0:
        raise FormatError(f"{owner}HDF5 file '{path}' holds no rows")
    return arrays


class Hdf5Reader:
    """The row stream of one HDF5Data layer (see the module doc)."""

    def __init__(
        self,
        source: str,
        tops: list[str],
        *,
        shuffle: bool = False,
        seed: int = 0,
        train: bool = True,
        rank: int = 0,
        world_size: int = 1,
        owner: str = "",
    ) -> None:
        self.source = source
        self.tops = list(tops)
        self.files = read_file_list(source, owner)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.train = bool(train)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.owner = owner
        self._draws = 0
        self.row_shapes = [a.shape[1:] for a in read_hdf5_rows(self.files[0], self.tops, owner)]

    def _permutation(self, count: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(count)
        self._draws += 1
        return np.random.default_rng([self.seed, self._draws]).permutation(count)

    def _load(self, path: str) -> list[np.ndarray]:
        arrays = read_hdf5_rows(path, self.tops, self.owner)
        for name, array, shape in zip(self.tops, arrays, self.row_shapes, strict=True):
            if array.shape[1:] != shape:
                raise FormatError(
                    f"{self.owner}HDF5 file '{path}' dataset '{name}' has rows of shape "
                    f"{array.shape[1:]}; the first file '{self.files[0]}' has {shape}"
                )
        return arrays

    def rows(self) -> Iterator[list[np.ndarray]]:
        """One row per top (views), file after file, forever."""
        index = 0
        while True:
            for f in self._permutation(len(self.files)):
                arrays = self._load(self.files[int(f)])
                for r in self._permutation(arrays[0].shape[0]):
                    keep = not self.train or index % self.world_size == self.rank
                    index += 1
                    if keep:
                        yield [a[int(r)] for a in arrays]

    def batches(self, batch_size: int) -> Iterator[list[np.ndarray]]:
        """Endless batches: one (batch_size, *row shape) float32 array per top."""
        rows = self.rows()
        while True:
            chunk = [next(rows) for _ in range(batch_size)]
            yield [np.stack([row[t] for row in chunk]) for t in range(len(self.tops))]


class Hdf5Feeder(FeederThread):
    """Pushes an Hdf5Reader's batches into a HDF5Data layer's feed queue."""

    def __init__(self, reader: Hdf5Reader, queue: Any, batch_size: int) -> None:
        self.reader = reader
        self.queue = queue
        self.batch_size = int(batch_size)

    def run(self) -> None:
        try:
            for arrays in self.reader.batches(self.batch_size):
                flat = [a.reshape(self.batch_size, -1, 1, 1) for a in arrays]
                if not self.queue.push_tops(flat):
                    return
        except BaseException as err:  # surfaces in Forward, on the solver's thread
            close_with_error(self.queue, err, self.reader.owner)

    def thread_name(self) -> str:
        return f"hdf5-feeder {os.path.basename(self.reader.source)}"

    def end_stream(self) -> None:
        self.queue.close()


class HDF5Writer(FeederThread):
    """Appends an HDF5Output layer's batches to `file_name`, published on close()."""

    _POLL_S = 0.5

    def __init__(self, file_name: str, queue: Any, owner: str = "") -> None:
        self.file_name = os.fspath(file_name)
        self.queue = queue
        self.owner = owner
        self.error: BaseException | None = None
        self.rows = 0

    def _append(self, handle: h5py.File, name: str, array: np.ndarray) -> None:
        if name not in handle:
            handle.create_dataset(
                name, data=array, maxshape=(None, *array.shape[1:]), chunks=True
            )
            return
        dataset = handle[name]
        if dataset.shape[1:] != array.shape[1:]:
            raise FormatError(
                f"{self.owner}batch '{name}' of shape {array.shape} does not continue the "
                f"earlier rows of shape {dataset.shape[1:]} in '{self.file_name}'"
            )
        start = dataset.shape[0]
        dataset.resize(start + array.shape[0], axis=0)
        dataset[start:] = array

    def _next(self) -> tuple[np.ndarray, np.ndarray] | None:
        while True:
            try:
                tops, _ = self.queue.pop(self._POLL_S)
                return tops[0], tops[1]
            except IoError:
                if self.queue.closed and self.queue.size == 0:
                    return None  # closed and drained: the net is done

    def run(self) -> None:
        temp = temp_sibling(self.file_name)
        try:
            with h5py.File(temp, "w") as handle:
                while (batch := self._next()) is not None:
                    data, label = batch
                    self._append(handle, "data", data)
                    self._append(handle, "label", label)
                    self.rows += data.shape[0]
            publish(temp, self.file_name)
        except BaseException as err:
            remove(temp)
            if not isinstance(err, (IoError, FormatError)):
                err = IoError(f"{self.owner}cannot write '{self.file_name}': {err}")
            self.error = err
            close_with_error(self.queue, err, self.owner)

    def thread_name(self) -> str:
        return f"hdf5-writer {os.path.basename(self.file_name)}"

    def end_stream(self) -> None:
        self.queue.close()
