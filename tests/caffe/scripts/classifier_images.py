# ruff: noqa: E402, I001  (install_as_caffe must run before `import caffe`)
"""A pycaffe-style script: caffe.Classifier over the trained deploy LeNet classifies
generated digit PNGs (load_image, predict with and without oversampling); prints JSON.
Usage: classifier_images.py WORKDIR (after lenet_netspec.py and classify.py, which writes
deploy.prototxt). Run by tests/caffe/test_scripts.py."""
import caffeonspark.caffe; caffeonspark.caffe.install_as_caffe()  # noqa: E702

import json
import os
import sys

import cv2

import caffe
from caffeonspark.data.digits import generate_digits

work = sys.argv[1]
images, labels = generate_digits(8, seed=5)
inputs = []
for i, image in enumerate(images):
    path = os.path.join(work, f"digit{i}.png")
    cv2.imwrite(path, cv2.resize(image, (32, 32)))  # bigger than the net's 28 x 28
    inputs.append(caffe.io.load_image(path, color=False))

net = caffe.Classifier(os.path.join(work, "deploy.prototxt"),
                       os.path.join(work, "lenet.caffemodel"), image_dims=(32, 32))
timer = caffe.Timer()
timer.start()
ten = net.predict(inputs)
timer.stop()
centre = net.predict(inputs, oversample=False)
print(json.dumps({"ten": ten.tolist(), "centre": centre.tolist(),
                  "ten_labels": ten.argmax(axis=1).tolist(), "ms": timer.ms}))
