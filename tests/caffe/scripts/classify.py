# ruff: noqa: E402, I001  (install_as_caffe must run before `import caffe`)
"""A pycaffe-style script: a deploy LeNet (NetSpec, Input) with trained weights classifies
a PNG through caffe.io.load_image and a Transformer; prints JSON.
Usage: classify.py WORKDIR (after lenet_netspec.py). Run by tests/caffe/test_scripts.py."""
import caffeonspark.caffe; caffeonspark.caffe.install_as_caffe()  # noqa: E702

import json
import os
import sys

import cv2
import numpy as np

import caffe
from caffe import layers as L, params as P
from caffeonspark.data.digits import generate_digits

work = sys.argv[1]
n = caffe.NetSpec()
n.data = L.Input(shape=dict(dim=[1, 1, 28, 28]))
n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20)
n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50)
n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
n.fc1 = L.InnerProduct(n.pool2, num_output=500)
n.relu1 = L.ReLU(n.fc1, in_place=True)
n.score = L.InnerProduct(n.relu1, num_output=10)
n.prob = L.Softmax(n.score)
with open(os.path.join(work, "deploy.prototxt"), "w") as f:
    f.write(str(n.to_proto()))

net = caffe.Net(os.path.join(work, "deploy.prototxt"), os.path.join(work, "lenet.caffemodel"),
                caffe.TEST)
images, labels = generate_digits(8, seed=5)
cv2.imwrite(os.path.join(work, "digit.png"), images[0])
image = caffe.io.load_image(os.path.join(work, "digit.png"), color=False)

transformer = caffe.io.Transformer({'data': net.blobs['data'].data.shape})
transformer.set_transpose('data', (2, 0, 1))
net.blobs['data'].data[...] = transformer.preprocess('data', image)
out = net.forward()
fed = net.blobs['data'].data.ravel().tolist()
batch = net.forward_all(data=images[:, np.newaxis] / 255.0)
print(json.dumps({"prob": out['prob'][0].tolist(), "label": int(out['prob'][0].argmax()),
                  "data": fed,
                  "batch_labels": batch['prob'].argmax(axis=1).tolist(),
                  "batch_prob0": batch['prob'][0].tolist(), "true": labels.tolist()}))
