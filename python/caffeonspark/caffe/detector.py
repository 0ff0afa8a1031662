"""caffe.Detector: pycaffe's R-CNN style window classifier over a deploy net.

detect_windows([(image file, windows), ...]) loads each image (caffe.io.load_image), crops
every window [ymin, xmin, ymax, xmax], preprocesses the crops with the Classifier's
Transformer (which resizes them to the net input), runs forward_all and returns one dict
per window: 'window', 'prediction', 'filename'.

With context_pad p, crop() widens the window so that, once warped to the input size, it
carries p pixels of surrounding context on each side; the parts of that box outside the
image are filled with the mean (in image space), as pycaffe documents.

Tests: tests/caffe/test_detector.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from caffeonspark.caffe import io
from caffeonspark.caffe.classifier import configured_transformer
from caffeonspark.caffe.pycaffe import Net
from caffeonspark.proto import caffe_pb2


class Detector(Net):
    """Detector(model_file, pretrained_file, mean=None, input_scale=None, raw_scale=None,
    channel_swap=None, context_pad=None): a TEST-phase caffe.Net with detect_windows()."""

    def __init__(self, model_file: str, pretrained_file: str, mean: Any = None,
                 input_scale: float | None = None, raw_scale: float | None = None,
                 channel_swap: Sequence[int] | None = None,
                 context_pad: int | None = None) -> None:
        super().__init__(model_file, pretrained_file, caffe_pb2.TEST)
        self.transformer = configured_transformer(self, mean, input_scale, raw_scale,
                                                  channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows: Sequence[tuple[str, Any]]) -> list[dict[str, Any]]:
        """Predictions for every window of every image, in the order given."""
        crops, owners = [], []
        for filename, windows in images_windows:
            image = io.load_image(filename).astype(np.float32)
            for window in windows:
                crops.append(self.crop(image, window))
                owners.append((filename, window))
        name = self.inputs[0]
        batch = np.stack([self.transformer.preprocess(name, crop) for crop in crops])
        predictions = self.forward_all(**{name: batch})[self.outputs[0]]
        predictions = predictions.reshape(len(crops), -1)
        return [{"window": window, "prediction": predictions[i], "filename": filename}
                for i, (filename, window) in enumerate(owners)]

    def detect_selective_search(self, image_fnames: Sequence[str]) -> list[dict[str, Any]]:
        raise NotImplementedError(
            "caffe.Detector.detect_selective_search needs the external selective_search_ijcv_"
            "with_python package (MATLAB selective search), which is not part of caffeonspark: "
            "compute the windows yourself and call detect_windows([(filename, windows), ...])"
        )

    def crop(self, im: np.ndarray, window: Any) -> np.ndarray:
        """The window [ymin, xmin, ymax, xmax] of an H x W x K image; with context_pad, the
        widened box warped into crop_dims with the mean where it leaves the image."""
        window = np.asarray(window)
        if not self.context_pad:
            return im[int(window[0]):int(window[2]), int(window[1]):int(window[3])]
        size = float(self.blobs[self.inputs[0]].width)
        # Widen the box so that after warping `size` pixels, context_pad of them are context.
        scale = size / (size - 2 * self.context_pad)
        half = np.array([window[2] - window[0] + 1, window[3] - window[1] + 1]) / 2.0
        centre = window[:2] + half
        box = np.round(np.tile(centre, 2) + scale * np.concatenate([-half, half]))
        full = box[2:] - box[:2] + 1
        warp = size / full  # pixels of the warped crop per pixel of the box
        pad = np.round(np.maximum(0, -box[:2]) * warp)
        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0.0, [im_h, im_w, im_h, im_w])
        clipped = box[2:] - box[:2] + 1
        if np.any(clipped <= 0):
            raise ValueError(f"window {window.tolist()} lies outside the {im_h} x {im_w} image")
        inner = np.round(clipped * warp)
        inner = np.minimum(inner, size - pad)  # rounding must not run past the crop
        pad_y, pad_x = int(pad[0]), int(pad[1])
        inner_h, inner_w = int(inner[0]), int(inner[1])
        context = im[int(box[0]):int(box[2]), int(box[1]):int(box[3])]
        out = np.ones(self.crop_dims, np.float32) * self.crop_mean
        out[pad_y:pad_y + inner_h, pad_x:pad_x + inner_w] = io.resize_image(
            context, (inner_h, inner_w))
        return out

    def configure_crop(self, context_pad: int | None) -> None:
        """Set the context padding; the crop's mean is the Transformer's mean taken back to
        image space (H x W x K, channels unswapped, divided by raw_scale)."""
        name = self.inputs[0]
        back = tuple(int(a) for a in np.argsort(self.transformer.transpose[name]))
        self.crop_dims = np.array(self.blobs[name].data.shape[1:])[list(back)]
        self.context_pad = context_pad
        if not context_pad:
            return
        mean = self.transformer.mean.get(name)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, np.float32)
            return
        crop_mean = mean.copy().transpose(back)
        swap = self.transformer.channel_swap.get(name)
        if swap is not None:
            crop_mean = crop_mean[:, :, np.argsort(swap)]
        raw_scale = self.transformer.raw_scale.get(name)
        if raw_scale:
            crop_mean = crop_mean / raw_scale
        self.crop_mean = crop_mean
