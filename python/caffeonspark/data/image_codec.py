"""Image decoding, resizing and encoding with OpenCV's semantics (docs/CAFFE.md §5.2, §5.4).

- `decode_mode(force_color, force_gray)`: how an encoded image is read, as Caffe's
  DataTransformer chooses it: "color" (3 channels, BGR; a gray file is expanded),
  "gray" (1 channel) or, with neither flag, "native" (the file's own channels: 1 for a gray
  image, 3 BGR for a colour one; an alpha channel is dropped). Both flags together are a
  ConfigError, as in Caffe.
- `decode_image(data, mode)`: encoded bytes (JPEG, PNG, BMP, ... anything cv2.imdecode
  reads) to a planar (C, H, W) uint8 array; undecodable bytes, and PNG/JPEG/BMP/GIF headers
  declaring more than image_header.MAX_IMAGE_PIXELS pixels, raise FormatError.
  `decode_hwc(buffer, mode)` is its first half: OpenCV's own (H, W[, C]) result, alpha
  dropped, or None when undecodable (for callers that write the planes into a batch).
- `resize_image(image, height, width)`: cv2.resize with bilinear interpolation (INTER_LINEAR,
  OpenCV's half-pixel-centre rule, edge pixels replicated), as convert_imageset's
  resize_height/resize_width and CaffeOnSpark's `-resize` do; (C, H, W) in and out.
- `encode_image(image, ext)`: (C, H, W) uint8 to file bytes (".jpg", ".png", ...).
- `DecodePool(threads)`: maps a function over a batch of records with `threads` worker
  threads; cv2's decode and resize release the GIL, so several threads decode in parallel.
  Results keep the input order, so a batch is the same whatever the thread count.

The decoder is opencv-python-headless (a dependency of the package): the same libjpeg /
libpng code paths Caffe's OpenCV build uses, hence Caffe's exact pixels.
Tests: tests/data/test_image_codec.py, tests/hostile/test_data_files.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import cv2
import numpy as np

from caffeonspark.data.image_header import oversize_reason
from caffeonspark.errors import ConfigError, FormatError

__all__ = [
    "DECODE_MODES",
    "decode_mode",
    "decode_image",
    "decode_hwc",
    "resize_image",
    "encode_image",
    "DecodePool",
]

DECODE_MODES = ("native", "color", "gray")
_IMREAD_FLAGS = {
    "native": cv2.IMREAD_ANYCOLOR,
    "color": cv2.IMREAD_COLOR,
    "gray": cv2.IMREAD_GRAYSCALE,
}

T = TypeVar("T")
R = TypeVar("R")


def decode_mode(force_color: bool = False, force_gray: bool = False, owner: str = "") -> str:
    """The decode mode transform_param's force_color / force_gray select."""
    if force_color and force_gray:
        raise ConfigError(f"{owner}transform_param cannot set both force_color and force_gray")
    return "color" if force_color else "gray" if force_gray else "native"


def _to_chw(image: np.ndarray) -> np.ndarray:
    """OpenCV's (H, W) or (H, W, C) to planar (C, H, W), contiguous."""
    if image.ndim == 2:
        return np.ascontiguousarray(image[np.newaxis])
    return np.ascontiguousarray(image.transpose(2, 0, 1))


def _to_hwc(image: np.ndarray) -> np.ndarray:
    return image[0] if image.shape[0] == 1 else np.ascontiguousarray(image.transpose(1, 2, 0))


def decode_image(
    data: bytes | memoryview | np.ndarray, mode: str = "native", where: str = ""
) -> np.ndarray:
    """Decode encoded image bytes into (C, H, W) uint8, BGR for colour (see the module doc)."""
    flag = _IMREAD_FLAGS.get(mode)
    if flag is None:
        raise ConfigError(f"{where}unknown decode mode {mode!r} (known: {DECODE_MODES})")
    buffer = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    reason = oversize_reason(_header_view(buffer))
    if reason is not None:
        raise FormatError(f"{where}cannot decode the encoded image: {reason}")
    image = decode_hwc(buffer, mode)
    if image is None:
        head = bytes(buffer[:8])
        raise FormatError(
            f"{where}cannot decode the encoded image ({buffer.size} bytes, starting {head!r})"
        )
    return _to_chw(image)


def decode_hwc(buffer: np.ndarray, mode: str) -> np.ndarray | None:
    """cv2.imdecode of a uint8 buffer in `mode` (a known mode), alpha dropped; None when
    OpenCV cannot decode it or its header declares more than MAX_IMAGE_PIXELS pixels
    (decode_image then says why)."""
    if not buffer.size or oversize_reason(_header_view(buffer)) is not None:
        return None
    image = cv2.imdecode(buffer, _IMREAD_FLAGS[mode])
    if image is not None and image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)  # alpha is never a Caffe channel
    return image


def _header_view(buffer: np.ndarray) -> memoryview:
    """The bytes image_header reads, without copying the image."""
    return memoryview(np.ascontiguousarray(buffer).reshape(-1)).cast("B")


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a (C, H, W) image to (C, height, width) (cv2.INTER_LINEAR)."""
    if image.shape[1] == height and image.shape[2] == width:
        return image
    if height <= 0 or width <= 0:
        raise ConfigError(f"resize target must be positive, got {height} x {width}")
    channels = image.shape[0]
    if channels <= 4:
        out = cv2.resize(_to_hwc(image), (width, height), interpolation=cv2.INTER_LINEAR)
        return _to_chw(out.reshape(height, width, channels) if channels > 1 else out)
    planes = [
        cv2.resize(np.ascontiguousarray(plane), (width, height), interpolation=cv2.INTER_LINEAR)
        for plane in image
    ]
    return np.stack(planes)


def encode_image(image: np.ndarray, ext: str = ".png") -> bytes:
    """(C, H, W) uint8 (1 or 3 channels, BGR) to the bytes of an image file of type `ext`."""
    ext = ext if ext.startswith(".") else "." + ext
    ok, buffer = cv2.imencode(ext, _to_hwc(np.asarray(image, dtype=np.uint8)))
    if not ok:
        raise FormatError(f"OpenCV cannot encode a {image.shape} image as {ext}")
    return buffer.tobytes()


class DecodePool:
    """Order-preserving parallel map over records, for decoding batches in feeder threads.

    threads <= 1 maps in the calling thread. The pool's threads are daemons started lazily
    and shut down by close(); one pool may serve several feeders (map is thread-safe).
    """

    def __init__(self, threads: int = 1, name: str = "decode") -> None:
        self.threads = max(1, int(threads))
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def map(self, fn: Callable[[T], R], items: Sequence[T] | Iterable[T]) -> list[R]:
        items = list(items)
        if self.threads == 1 or len(items) < 2:
            return [fn(item) for item in items]
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix=self._name)
            executor = self._executor
        # Contiguous slices per worker: fewer futures than items, same order as the input.
        step = -(-len(items) // self.threads)
        parts = [items[i : i + step] for i in range(0, len(items), step)]
        futures = [executor.submit(_map_list, fn, part) for part in parts]
        out: list[R] = []
        for future in futures:
            out.extend(future.result())
        return out

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _map_list(fn: Callable[[T], R], items: list[T]) -> list[R]:
    return [fn(item) for item in items]
