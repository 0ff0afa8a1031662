"""caffe.Classifier: pycaffe's image classifier over a deploy net.

predict(images) resizes each H x W x K image to image_dims, takes the ten oversampled crops
(caffe.io.oversample: four corners, centre, and their mirrors) or the centre crop of the
net's input size, preprocesses them with a caffe.io.Transformer (transpose to K x H x W,
channel swap, raw scale, mean, input scale), runs forward_all and, when oversampling,
averages each image's ten predictions.

Tests: tests/caffe/test_classifier.py, tests/caffe/test_scripts.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from caffeonspark.caffe import io
from caffeonspark.caffe.pycaffe import Net
from caffeonspark.proto import caffe_pb2


def configured_transformer(net: Net, mean: Any = None, input_scale: float | None = None,
                           raw_scale: float | None = None,
                           channel_swap: Sequence[int] | None = None) -> io.Transformer:
    """The Transformer Classifier and Detector share: for the net's first input, images
    transposed H x W x K -> K x H x W, then the optional settings."""
    name = net.inputs[0]
    transformer = io.Transformer({name: net.blobs[name].data.shape})
    transformer.set_transpose(name, (2, 0, 1))
    if mean is not None:
        transformer.set_mean(name, mean)
    if input_scale is not None:
        transformer.set_input_scale(name, input_scale)
    if raw_scale is not None:
        transformer.set_raw_scale(name, raw_scale)
    if channel_swap is not None:
        transformer.set_channel_swap(name, tuple(channel_swap))
    return transformer


class Classifier(Net):
    """Classifier(model_file, pretrained_file, image_dims=None, mean=None, input_scale=None,
    raw_scale=None, channel_swap=None): a TEST-phase caffe.Net with predict()."""

    def __init__(self, model_file: str, pretrained_file: str,
                 image_dims: Sequence[int] | None = None, mean: Any = None,
                 input_scale: float | None = None, raw_scale: float | None = None,
                 channel_swap: Sequence[int] | None = None) -> None:
        super().__init__(model_file, pretrained_file, caffe_pb2.TEST)
        self.transformer = configured_transformer(self, mean, input_scale, raw_scale,
                                                  channel_swap)
        self.crop_dims = np.array(self.blobs[self.inputs[0]].data.shape[2:])
        self.image_dims = np.array(self.crop_dims if image_dims is None else image_dims)

    def predict(self, inputs: Sequence[np.ndarray], oversample: bool = True) -> np.ndarray:
        """Class scores (N x classes) for H x W x K images: the mean over the ten crops of
        each with `oversample`, else the centre crop's."""
        height, width = (int(d) for d in self.image_dims)
        resized = np.stack([io.resize_image(image, (height, width)) for image in inputs])
        if oversample:
            crops = io.oversample(resized, tuple(int(d) for d in self.crop_dims))
        else:
            top, left = ((self.image_dims - self.crop_dims) / 2.0).astype(int)
            crop_h, crop_w = (int(d) for d in self.crop_dims)
            crops = resized[:, top:top + crop_h, left:left + crop_w, :]
        name = self.inputs[0]
        batch = np.stack([self.transformer.preprocess(name, crop) for crop in crops])
        predictions = self.forward_all(**{name: batch})[self.outputs[0]]
        predictions = predictions.reshape(len(crops), -1)
        if oversample:
            predictions = predictions.reshape(len(inputs), 10, -1).mean(axis=1)
        return predictions
