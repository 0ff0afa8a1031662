"""pycaffe's example Python loss (module `pyloss`, class EuclideanLossLayer, named by Caffe's
pycaffe_linreg.prototxt), written here: loss = sum((a - b)^2) / (2 * batch)."""

from __future__ import annotations

import numpy as np

from caffeonspark import caffe


class EuclideanLossLayer(caffe.Layer):
    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise ValueError("EuclideanLossLayer needs two bottoms")

    def reshape(self, bottom, top):
        if bottom[0].count != bottom[1].count:
            raise ValueError("EuclideanLossLayer bottoms must have the same count")
        self.difference = np.zeros_like(bottom[0].data, dtype=np.float32)
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.difference[...] = bottom[0].data - bottom[1].data
        top[0].data[...] = np.sum(self.difference**2) / bottom[0].num / 2.0

    def backward(self, top, propagate_down, bottom):
        for index, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[index]:
                bottom[index].diff[...] = sign * self.difference / bottom[index].num
