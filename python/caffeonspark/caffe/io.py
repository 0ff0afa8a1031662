"""caffe.io: pycaffe's image and proto helpers.

- Transformer: an image (H x W x K float, as load_image gives) to a net input (K x H x W,
  resized, channels swapped, scaled, mean subtracted) and back.
- load_image / resize_image / oversample, with pycaffe's conventions (float32 in [0, 1],
  H x W x 3 RGB or H x W x 1 gray) but decoded and resized with OpenCV. Gray from a colour
  file is skimage's luminance (0.2125 R + 0.7154 G + 0.0721 B); resize_image interpolates
  with OpenCV, so values differ from skimage's at the last decimals.
- blobproto_to_array / array_to_blobproto, arraylist_to_blobprotovector_str /
  blobprotovector_str_to_arraylist, array_to_datum / datum_to_array.

Tests: tests/caffe/test_io.py.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from caffeonspark import model_io
from caffeonspark.proto import caffe_pb2

_GRAY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721], np.float32)  # R, G, B
_INTERPOLATION = {0: cv2.INTER_NEAREST, 1: cv2.INTER_LINEAR, 2: cv2.INTER_CUBIC,
                  3: cv2.INTER_CUBIC}

# -- protos ---------------------------------------------------------------------------------


def blobproto_to_array(blob: caffe_pb2.BlobProto, return_diff: bool = False) -> np.ndarray:
    """The blob's data (or diff); legacy blobs come back num x channels x height x width."""
    return model_io.blob_to_array(blob, diff=return_diff)


def array_to_blobproto(arr: np.ndarray, diff: np.ndarray | None = None) -> caffe_pb2.BlobProto:
    return model_io.array_to_blob(np.asarray(arr), diff)


def arraylist_to_blobprotovector_str(arraylist: list[np.ndarray]) -> bytes:
    vector = caffe_pb2.BlobProtoVector()
    vector.blobs.extend(array_to_blobproto(a) for a in arraylist)
    return vector.SerializeToString()


def blobprotovector_str_to_arraylist(text: bytes) -> list[np.ndarray]:
    vector = caffe_pb2.BlobProtoVector()
    vector.ParseFromString(text)
    return [blobproto_to_array(b) for b in vector.blobs]


def array_to_datum(arr: np.ndarray, label: int | None = None) -> caffe_pb2.Datum:
    """A C x H x W array as a Datum: uint8 into `data`, anything else into `float_data`."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError(f"Incorrect array shape: a Datum holds C x H x W, not {arr.shape}")
    datum = caffe_pb2.Datum(channels=arr.shape[0], height=arr.shape[1], width=arr.shape[2])
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(float).ravel())
    if label is not None:
        datum.label = int(label)
    return datum


def datum_to_array(datum: caffe_pb2.Datum) -> np.ndarray:
    """A raw Datum as C x H x W: uint8 from `data`, else float64 from `float_data`."""
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
    return np.asarray(datum.float_data, dtype=float).reshape(shape)


# -- images ---------------------------------------------------------------------------------


def load_image(filename: str | os.PathLike[str], color: bool = True) -> np.ndarray:
    """An image file as float32 in [0, 1]: H x W x 3 RGB (color) or H x W x 1 gray."""
    raw = cv2.imread(os.fspath(filename), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise OSError(f"{os.fspath(filename)}: cannot read it as an image")
    scale = float(np.iinfo(raw.dtype).max) if raw.dtype.kind in "ui" else 1.0
    img = raw.astype(np.float32) / scale
    if img.ndim == 3:
        img = img[:, :, 2::-1] if img.shape[2] >= 3 else img[:, :, :1]  # BGR(A) -> RGB
        if img.shape[2] == 1:
            img = img[:, :, 0]
    if img.ndim == 3 and not color:
        img = np.tensordot(img, _GRAY_WEIGHTS, axes=([2], [0])).astype(np.float32)
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
        if color:
            img = np.tile(img, (1, 1, 3))
    return np.ascontiguousarray(img)


def resize_image(im: np.ndarray, new_dims: tuple[int, int], interp_order: int = 1) -> np.ndarray:
    """H x W x K to new_dims[0] x new_dims[1] x K (float32); interp_order 0 nearest,
    1 bilinear, 2-3 bicubic."""
    im = np.asarray(im, dtype=np.float32)
    height, width = int(new_dims[0]), int(new_dims[1])
    if im.shape[:2] == (height, width):
        return im.copy()
    flag = _INTERPOLATION.get(int(interp_order), cv2.INTER_CUBIC)
    channels = im.shape[2]
    # OpenCV resizes at most 512 channels at once and drops a trailing axis of one.
    parts = [cv2.resize(np.ascontiguousarray(im[:, :, c:c + 512]), (width, height),
                        interpolation=flag) for c in range(0, channels, 512)]
    parts = [p[:, :, np.newaxis] if p.ndim == 2 else p for p in parts]
    return np.concatenate(parts, axis=2).astype(np.float32)


def oversample(images: list[np.ndarray] | np.ndarray,
               crop_dims: tuple[int, int]) -> np.ndarray:
    """Ten crops of each H x W x K image: the four corners and the centre, then the same
    five mirrored left-right; returns (10 N) x crop_h x crop_w x K."""
    crop_h, crop_w = int(crop_dims[0]), int(crop_dims[1])
    crops = []
    for image in images:
        image = np.asarray(image, dtype=np.float32)
        height, width = image.shape[:2]
        corners = [(y, x) for y in (0, height - crop_h) for x in (0, width - crop_w)]
        corners.append(((height - crop_h) // 2, (width - crop_w) // 2))
        five = [image[y:y + crop_h, x:x + crop_w] for y, x in corners]
        crops += five + [c[:, ::-1] for c in five]
    return np.asarray(crops, dtype=np.float32)


# -- the Transformer ------------------------------------------------------------------------


class Transformer:
    """Prepares images for the net inputs `inputs` (name -> N x K x H x W shape).

    preprocess(name, image): resize to H x W, transpose, swap channels, multiply by
    raw_scale, subtract the mean, multiply by input_scale, in that order; deprocess undoes
    them in reverse.
    """

    def __init__(self, inputs: dict[str, tuple[int, ...]]) -> None:
        self.inputs = {name: tuple(shape) for name, shape in inputs.items()}
        self.transpose: dict[str, tuple[int, ...]] = {}
        self.channel_swap: dict[str, tuple[int, ...]] = {}
        self.raw_scale: dict[str, float] = {}
        self.mean: dict[str, np.ndarray] = {}
        self.input_scale: dict[str, float] = {}

    def _check_input(self, in_: str) -> None:
        if in_ not in self.inputs:
            raise KeyError(f"{in_} is not one of the net inputs: {list(self.inputs)}")

    def set_transpose(self, in_: str, order: tuple[int, ...]) -> None:
        """Axis order from the image's H x W x K to the net's K x H x W, e.g. (2, 0, 1)."""
        self._check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise ValueError("Transpose order needs to have the same number of dimensions "
                             "as the input.")
        self.transpose[in_] = tuple(order)

    def set_channel_swap(self, in_: str, order: tuple[int, ...]) -> None:
        """Channel order after transposing, e.g. (2, 1, 0) for RGB -> BGR."""
        self._check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise ValueError("Channel swap needs to have the same number of dimensions as "
                             "the input channels.")
        self.channel_swap[in_] = tuple(order)

    def set_raw_scale(self, in_: str, scale: float) -> None:
        """Multiply the image by this first (255 turns load_image's [0, 1] into [0, 255])."""
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_: str, mean: np.ndarray) -> None:
        """Subtract a per-channel mean (K values) or a K x H x W mean image."""
        self._check_input(in_)
        mean = np.asarray(mean, dtype=np.float32)
        shape = self.inputs[in_]
        if mean.ndim == 1:
            if mean.shape[0] != shape[1]:
                raise ValueError("Mean channels incompatible with input.")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if mean.ndim == 2:
                mean = mean[np.newaxis]
            if mean.ndim != 3:
                raise ValueError("Mean shape invalid")
            if mean.shape != shape[1:]:
                raise ValueError("Mean shape incompatible with input shape.")
        self.mean[in_] = mean

    def set_input_scale(self, in_: str, scale: float) -> None:
        """Multiply by this last, after the mean is subtracted."""
        self._check_input(in_)
        self.input_scale[in_] = scale

    def preprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        self._check_input(in_)
        out = np.asarray(data, dtype=np.float32)
        size = self.inputs[in_][2:]
        if out.shape[:2] != size:
            out = resize_image(out, size)
        if in_ in self.transpose:
            out = out.transpose(self.transpose[in_])
        if in_ in self.channel_swap:
            out = out[list(self.channel_swap[in_]), :, :]
        if in_ in self.raw_scale:
            out = out * self.raw_scale[in_]
        if in_ in self.mean:
            out = out - self.mean[in_]
        if in_ in self.input_scale:
            out = out * self.input_scale[in_]
        return np.ascontiguousarray(out, dtype=np.float32)

    def deprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        self._check_input(in_)
        out = np.asarray(data, dtype=np.float32).copy().squeeze()
        if in_ in self.input_scale:
            out = out / self.input_scale[in_]
        if in_ in self.mean:
            out = out + self.mean[in_]
        if in_ in self.raw_scale:
            out = out / self.raw_scale[in_]
        if in_ in self.channel_swap:
            out = out[list(np.argsort(self.channel_swap[in_])), :, :]
        if in_ in self.transpose:
            out = out.transpose(np.argsort(self.transpose[in_]))
        return out
