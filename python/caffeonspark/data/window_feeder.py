"""R-CNN window sampler thread feeding the engine's WindowData layer
(cpp/layers/window_data.h). Caffe's WindowData rules, in our words (docs/DATA.md
"WindowData"):

Window file (window_data_param.source), whitespace-separated, repeated per image:
    # <image index, 0, 1, 2, ... in order>
    <image path>            (read as root_folder + path)
    <channels> <height> <width>
    <number of windows>
    <class> <overlap> <x1> <y1> <x2> <y2>      (one line per window, inclusive pixel box)
A window with overlap >= fg_threshold is foreground (its class must be > 0); one with
overlap < bg_threshold is background (its label becomes 0); others are not used.

A batch: the first batch_size - floor(batch_size * fg_fraction) items are background
windows, the rest foreground, each drawn uniformly with replacement; per item the window is
drawn first, then (with transform_param.mirror) a coin for the flip. The image is read in
colour (BGR). Cropping (`window_crop`): with context_pad > 0 or crop_mode "square", the box
is grown about its centre by crop_size / (crop_size - 2 * context_pad) (and first made
square, its longer side kept, in "square" mode), rounded half away from zero; the part
outside the image is clipped off and becomes zero padding, whose width and the clipped
region's warped size are scaled by crop_size / grown size and rounded; the warped region
is placed after the top/left padding (right padding when mirrored) and cut to fit
crop_size. The region is resized bilinearly (OpenCV INTER_LINEAR) to that size, flipped when
mirrored, then value = (pixel - mean) * scale, the mean_file's centre crop_size window
(offset (mean size - crop_size) / 2) at the same place, or mean_value per channel. Pixels
outside the placed region stay 0. Arithmetic is in float32, as Caffe's.

Random draws come from default_rng([seed, rank]). Errors (a malformed window file, a
missing image) name the window file and its line or the image.
Tests: tests/layers/test_window_data.py.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from caffeonspark.data.feeder_thread import FeederThread
from caffeonspark.data.image_codec import decode_image
from caffeonspark.data.native_queue import push_until_closed
from caffeonspark.errors import ConfigError, FormatError, IoError

__all__ = ["Window", "WindowFile", "read_window_file", "window_crop", "WindowSampler",
           "WindowFeeder"]


@dataclass(frozen=True)
class Window:
    image: int  # index into WindowFile.images
    label: int
    overlap: float
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass
class WindowFile:
    images: list[tuple[str, tuple[int, int, int]]]  # (path with root_folder, (C, H, W))
    fg: list[Window]
    bg: list[Window]


def read_window_file(
    source: str,
    root_folder: str = "",
    fg_threshold: float = 0.5,
    bg_threshold: float = 0.5,
    owner: str = "",
) -> WindowFile:
    """Parse an R-CNN window file and split its windows into foreground and background."""
    try:
        with open(source, encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read()
    except OSError as err:
        raise IoError(f"{owner}cannot read the window file '{source}': {err.strerror}") from None
    tokens: list[tuple[str, int]] = [
        (token, number)
        for number, line in enumerate(text.splitlines(), start=1)
        for token in line.split()
    ]
    position = 0

    def take(what: str, kind: type = str) -> Any:
        nonlocal position
        if position >= len(tokens):
            raise FormatError(f"{owner}window file '{source}' ends early: expected {what}")
        token, number = tokens[position]
        position += 1
        try:
            return kind(token)
        except ValueError:
            raise FormatError(
                f"{owner}window file '{source}' line {number}: expected {what}, got {token!r}"
            ) from None

    out = WindowFile([], [], [])
    fg_t, bg_t = np.float32(fg_threshold), np.float32(bg_threshold)
    while position < len(tokens):
        line = tokens[position][1]
        if take("'#'") != "#":
            raise FormatError(f"{owner}window file '{source}' line {line}: expected '# <index>'")
        index = take("an image index", int)
        if index != len(out.images):
            raise FormatError(
                f"{owner}window file '{source}' line {line}: image index {index}, expected "
                f"{len(out.images)} (images are numbered 0, 1, 2, ... in order)"
            )
        path = root_folder + take("an image path")
        size = (take("channels", int), take("height", int), take("width", int))
        if size[0] != 3:
            raise FormatError(
                f"{owner}window file '{source}' line {line}: image '{path}' has {size[0]} "
                "channels; WindowData reads images in colour (3 channels)"
            )
        out.images.append((path, size))
        for _ in range(take("the number of windows", int)):
            label = take("a window's class", int)
            overlap = np.float32(take("a window's overlap", float))
            box = [take("a window coordinate", int) for _ in range(4)]
            window = Window(index, label, float(overlap), *box)
            if overlap >= fg_t:
                if label <= 0:
                    raise FormatError(
                        f"{owner}window file '{source}' image {index}: a foreground window "
                        f"(overlap {float(overlap)}) has class {label}; it must be > 0"
                    )
                out.fg.append(window)
            elif overlap < bg_t:
                out.bg.append(Window(index, 0, 0.0, *box))
    if not out.images:
        raise FormatError(f"{owner}window file '{source}' is empty")
    return out


def _round(x: np.float32) -> int:
    """C's round(): halves away from zero."""
    return int(math.copysign(math.floor(abs(float(x)) + 0.5), float(x)))


def window_crop(
    image: np.ndarray,
    box: tuple[int, int, int, int],
    *,
    crop_size: int,
    context_pad: int = 0,
    square: bool = False,
    mirror: bool = False,
    scale: float = 1.0,
    mean: np.ndarray | None = None,
    mean_values: np.ndarray | None = None,
) -> np.ndarray:
    """One window of a (C, H, W) uint8 image as the (C, crop, crop) float32 item (module doc).
    `mean` is the full (C, Hm, Wm) mean image, `mean_values` one value per channel."""
    f32 = np.float32
    channels, rows, cols = image.shape
    x1, y1, x2, y2 = box
    pad_w = pad_h = 0
    out_w = out_h = crop_size
    if context_pad > 0 or square:
        context_scale = f32(crop_size) / f32(crop_size - 2 * context_pad)
        half_h = f32(y2 - y1 + 1) / f32(2.0)
        half_w = f32(x2 - x1 + 1) / f32(2.0)
        center_x = f32(x1) + half_w
        center_y = f32(y1) + half_h
        if square:
            half_h = half_w = max(half_h, half_w)
        x1 = _round(center_x - half_w * context_scale)
        x2 = _round(center_x + half_w * context_scale)
        y1 = _round(center_y - half_h * context_scale)
        y2 = _round(center_y + half_h * context_scale)
        unclipped_h, unclipped_w = y2 - y1 + 1, x2 - x1 + 1
        pad_x1, pad_y1 = max(0, -x1), max(0, -y1)
        pad_x2, pad_y2 = max(0, x2 - cols + 1), max(0, y2 - rows + 1)
        x1, x2, y1, y2 = x1 + pad_x1, x2 - pad_x2, y1 + pad_y1, y2 - pad_y2
        scale_x = f32(crop_size) / f32(unclipped_w)
        scale_y = f32(crop_size) / f32(unclipped_h)
        out_w = _round(f32(x2 - x1 + 1) * scale_x)
        out_h = _round(f32(y2 - y1 + 1) * scale_y)
        pad_x1, pad_x2 = _round(f32(pad_x1) * scale_x), _round(f32(pad_x2) * scale_x)
        pad_y1 = _round(f32(pad_y1) * scale_y)
        pad_h = pad_y1
        pad_w = pad_x2 if mirror else pad_x1
        out_h = min(out_h, crop_size - pad_h)
        out_w = min(out_w, crop_size - pad_w)
    if not (0 <= x1 <= x2 < cols and 0 <= y1 <= y2 < rows) or out_w <= 0 or out_h <= 0:
        raise FormatError(
            f"window ({box}) does not lie inside the {rows} x {cols} image"
        )
    region = np.ascontiguousarray(image[:, y1 : y2 + 1, x1 : x2 + 1].transpose(1, 2, 0))
    warped = cv2.resize(region, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    warped = warped.reshape(out_h, out_w, channels).transpose(2, 0, 1).astype(f32)
    if mirror:
        warped = warped[:, :, ::-1]
    if mean is not None:
        off_h = (mean.shape[1] - crop_size) // 2
        off_w = (mean.shape[2] - crop_size) // 2
        top, left = off_h + pad_h, off_w + pad_w
        warped = warped - mean[:, top : top + out_h, left : left + out_w].astype(f32)
    elif mean_values is not None:
        warped = warped - mean_values.astype(f32)[:, None, None]
    out = np.zeros((channels, crop_size, crop_size), dtype=f32)
    out[:, pad_h : pad_h + out_h, pad_w : pad_w + out_w] = warped * f32(scale)
    return out


class WindowSampler:
    """Draws WindowData batches (module doc); `batch(rng)` -> (data, labels, choices)."""

    def __init__(self, layer: Any, params: dict[str, Any], owner: str = "") -> None:
        p = layer.window_data_param
        t = layer.transform_param
        self.owner = owner
        self.source = p.source
        self.file = read_window_file(
            p.source, p.root_folder, p.fg_threshold, p.bg_threshold, owner
        )
        self.batch_size = int(p.batch_size)
        self.num_fg = int(np.float32(self.batch_size) * np.float32(p.fg_fraction))
        if self.num_fg and not self.file.fg:
            raise FormatError(f"{owner}window file '{p.source}' has no foreground windows")
        if self.batch_size - self.num_fg and not self.file.bg:
            raise FormatError(f"{owner}window file '{p.source}' has no background windows")
        if p.crop_mode not in ("warp", "square"):
            raise ConfigError(f"{owner}crop_mode must be 'warp' or 'square', got {p.crop_mode!r}")
        self.square = p.crop_mode == "square"
        self.context_pad = int(p.context_pad)
        self.crop_size = int(t.crop_size)
        self.mirror = bool(t.mirror)
        self.scale = float(t.scale)
        self.cache: dict[int, np.ndarray] | None = {} if p.cache_images else None
        channels = self.file.images[0][1][0]
        self.mean: np.ndarray | None = None
        self.mean_values: np.ndarray | None = None
        mean_data = params.get("transform_param", {}).get("mean_file_data")
        if mean_data is not None:
            if t.mean_value:
                raise ConfigError(f"{owner}transform_param has both mean_file and mean_value")
            shape = tuple(mean_data["shape"])
            self.mean = np.frombuffer(mean_data["data"], dtype="<f4").reshape(shape)
            if shape[0] != channels or shape[1] != shape[2] or shape[1] < self.crop_size:
                raise ConfigError(
                    f"{owner}mean_file must be square, at least crop_size ({self.crop_size}) "
                    f"on a side, with {channels} channels; got {shape}"
                )
        elif t.mean_value:
            values = np.array(list(t.mean_value), dtype=np.float32)
            if values.size not in (1, channels):
                raise ConfigError(
                    f"{owner}transform_param.mean_value needs 1 or {channels} values, got "
                    f"{values.size}"
                )
            self.mean_values = np.broadcast_to(values, (channels,)).copy()

    def image(self, index: int) -> np.ndarray:
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        path, size = self.file.images[index]
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as err:
            raise IoError(
                f"{self.owner}window file '{self.source}' image {index}: cannot read "
                f"'{path}': {err.strerror}"
            ) from None
        image = decode_image(data, "color", f"{self.owner}image '{path}': ")
        if self.cache is not None:
            self.cache[index] = image
        return image

    def batch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[Any]]:
        """(data (N, C, crop, crop) float32, labels (N,), [(window, mirrored)] per item)."""
        n, crop = self.batch_size, self.crop_size
        data = np.zeros((n, 3, crop, crop), dtype=np.float32)
        labels = np.zeros(n, dtype=np.float32)
        choices = []
        item = 0
        for pool, count in ((self.file.bg, n - self.num_fg), (self.file.fg, self.num_fg)):
            for _ in range(count):
                window = pool[int(rng.integers(len(pool)))]
                mirrored = bool(self.mirror and rng.integers(2))
                image = self.image(window.image)
                box = (window.x1, window.y1, window.x2, window.y2)
                try:
                    data[item] = window_crop(
                        image, box, crop_size=crop, context_pad=self.context_pad,
                        square=self.square, mirror=mirrored, scale=self.scale, mean=self.mean,
                        mean_values=self.mean_values,
                    )
                except FormatError as err:
                    path = self.file.images[window.image][0]
                    raise FormatError(
                        f"{self.owner}window file '{self.source}' image {window.image} "
                        f"('{path}'): {err}"
                    ) from None
                labels[item] = window.label
                choices.append((window, mirrored))
                item += 1
        return data, labels, choices


class WindowFeeder(FeederThread):
    def __init__(self, sampler: WindowSampler, queue: Any, seed: int = 0, rank: int = 0) -> None:
        self.sampler = sampler
        self.queue = queue
        self.rng = np.random.default_rng([int(seed), int(rank)])

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            data, labels, _ = self.sampler.batch(self.rng)
            yield data, labels

    def run(self) -> None:
        push_until_closed(self.queue, self.batches(), self.sampler.owner)

    def thread_name(self) -> str:
        return f"window-feeder {os.path.basename(self.sampler.source)}"

    def end_stream(self) -> None:
        self.queue.close()
