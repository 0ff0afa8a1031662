"""Image-list reader thread feeding the engine's ImageData layer (cpp/layers/image_data.h).

Caffe's ImageData rules, as honoured here:
- the list file (image_data_param.source) holds one image per line, "path label": the line is
  split at its LAST space, so paths may hold spaces; the label is an integer. Blank lines are
  skipped; any other line without a label is a FormatError naming the file and line;
- each path is read as root_folder + path (plain concatenation, as Caffe does: give
  root_folder its trailing slash);
- images are decoded with OpenCV in colour (3 channels, BGR) when is_color (the default),
  else gray (1 channel), and resized bilinearly to new_height x new_width when both are set;
- order: the list order; with shuffle, a fresh permutation per pass over the list (pass p
  draws default_rng([seed, p])); with rand_skip > 0 the first default_rng([seed]).integers(
  rand_skip) lines of the first pass are skipped, once; the list wraps around forever;
- TRAIN readers of a data-parallel job keep the lines whose running index % world_size ==
  rank (the Data layer's rule, docs/CAFFE.md §5.2); TEST reads everything.
Every image must have the decoded (and resized) shape of the first one, which fixed the
layer's top shape when the net was built; a missing or undecodable image, or one of another
shape, raises IoError / FormatError naming the list file, its line and the image path. The
error closes the layer's feed queue, so Forward raises it on the solver's thread.
Tests: tests/layers/test_image_data.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from caffeonspark.data.feeder_thread import FeederThread
from caffeonspark.data.image_codec import DecodePool, decode_image, resize_image
from caffeonspark.data.native_queue import push_until_closed
from caffeonspark.errors import ConfigError, FormatError, IoError

__all__ = ["ImageLine", "read_image_list", "ImageListReader", "ImageListFeeder"]


@dataclass(frozen=True)
class ImageLine:
    path: str  # as written in the list file
    label: int
    line: int  # 1-based line number in the list file


def read_image_list(source: str, owner: str = "") -> list[ImageLine]:
    """The (path, label, line) entries of an ImageData list file."""
    try:
        with open(source, encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read()
    except OSError as err:
        raise IoError(f"{owner}cannot read the image list '{source}': {err.strerror}") from None
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        path, space, label = line.rpartition(" ")
        try:
            value = int(label)
        except ValueError:
            value = None
        if not space or not path or value is None:
            raise FormatError(
                f"{owner}image list '{source}' line {number}: expected 'path label' (an "
                f"integer label after the last space), got {line!r}"
            )
        entries.append(ImageLine(path, value, number))
    if not entries:
        raise FormatError(f"{owner}image list '{source}' names no images")
    return entries


class ImageListReader:
    """Decodes the images of one ImageData layer (image_data_param) in Caffe's order."""

    def __init__(
        self,
        param: Any,
        *,
        owner: str = "",
        shuffle_seed: int = 0,
        train: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.source = param.source
        self.root = param.root_folder
        self.color = bool(param.is_color)
        self.new_size = (int(param.new_height), int(param.new_width))
        if (self.new_size[0] > 0) != (self.new_size[1] > 0):
            raise ConfigError(
                f"{owner}image_data_param.new_height and new_width must be set together, got "
                f"{self.new_size[0]} x {self.new_size[1]}"
            )
        self.shuffle = bool(param.shuffle)
        self.rand_skip = int(param.rand_skip)
        self.seed = int(shuffle_seed)
        self.owner = owner
        self.train = bool(train)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.lines = read_image_list(self.source, owner)

    def where(self, entry: ImageLine) -> str:
        return f"{self.owner}image list '{self.source}' line {entry.line} ('{entry.path}'): "

    def image(self, entry: ImageLine) -> np.ndarray:
        """The (C, H, W) uint8 image of one list entry, decoded and resized."""
        path = self.root + entry.path
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as err:
            raise IoError(
                f"{self.where(entry)}cannot read image '{path}': {err.strerror}"
            ) from None
        image = decode_image(data, "color" if self.color else "gray", self.where(entry))
        if self.new_size[0] > 0:
            image = resize_image(image, *self.new_size)
        return image

    def first_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the first image read (after shuffle and rand_skip): the top's item."""
        entry = next(self.entries())
        return tuple(int(d) for d in self.image(entry).shape)  # type: ignore[return-value]

    def entries(self) -> Iterator[ImageLine]:
        """This reader's list entries, pass after pass, forever."""
        count = len(self.lines)
        skip = 0
        if self.rand_skip > 0:
            skip = int(np.random.default_rng([self.seed]).integers(self.rand_skip))
            if skip >= count:
                raise ConfigError(
                    f"{self.owner}image_data_param.rand_skip drew {skip}, but the list "
                    f"'{self.source}' has only {count} lines"
                )
        index = 0
        epoch = 0
        while True:
            order = (
                np.random.default_rng([self.seed, epoch]).permutation(count)
                if self.shuffle
                else np.arange(count)
            )
            for position in order[skip:]:
                keep = not self.train or index % self.world_size == self.rank
                index += 1
                if keep:
                    yield self.lines[int(position)]
            skip = 0
            epoch += 1


class ImageListFeeder(FeederThread):
    """Pushes (N, C, H, W) uint8 batches + labels of an ImageListReader into a feed queue."""

    def __init__(
        self,
        reader: ImageListReader,
        queue: Any,
        *,
        batch_size: int,
        shape: tuple[int, int, int],
        decode_threads: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.reader = reader
        self.queue = queue
        self.batch_size = int(batch_size)
        self.shape = tuple(shape)
        self.pool = DecodePool(decode_threads, name=f"decode {reader.source}")

    def _image(self, entry: ImageLine) -> np.ndarray:
        image = self.reader.image(entry)
        if image.shape != self.shape:
            raise FormatError(
                f"{self.reader.where(entry)}image shape {tuple(image.shape)} differs from the "
                f"first image's {self.shape} (set new_height / new_width to resize)"
            )
        return image

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        entries = self.reader.entries()
        n = self.batch_size
        while True:
            chunk = [next(entries) for _ in range(n)]
            images = self.pool.map(self._image, chunk)
            data = np.stack(images)
            labels = np.array([entry.label for entry in chunk], dtype=np.float32)
            yield data, labels

    def run(self) -> None:
        try:
            push_until_closed(self.queue, self.batches(), self.reader.owner)
        finally:
            self.pool.close()

    def thread_name(self) -> str:
        return f"image-list-feeder {os.path.basename(self.reader.source)}"

    def end_stream(self) -> None:
        self.queue.close()
