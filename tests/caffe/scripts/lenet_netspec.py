# ruff: noqa: E402, I001  (install_as_caffe must run before `import caffe`)
"""A pycaffe-style script: LeNet written with NetSpec, its digits put in an LMDB with
caffe.io.array_to_datum, trained with SGDSolver.step; prints the losses as JSON.
Usage: lenet_netspec.py WORKDIR. Run by tests/caffe/test_scripts.py."""
import caffeonspark.caffe; caffeonspark.caffe.install_as_caffe()  # noqa: E702

import json
import os
import sys

import lmdb
import numpy as np

import caffe
from caffe import layers as L, params as P
from caffeonspark.data.digits import generate_digits

work = sys.argv[1]
images, labels = generate_digits(640, seed=1)
env = lmdb.open(os.path.join(work, "digits_lmdb"), map_size=1 << 26)
with env.begin(write=True) as txn:
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        datum = caffe.io.array_to_datum(image[np.newaxis], int(label))
        txn.put(b"%08d" % i, datum.SerializeToString())
env.close()


def lenet(lmdb_path, batch_size):
    n = caffe.NetSpec()
    n.data, n.label = L.Data(batch_size=batch_size, backend=P.Data.LMDB, source=lmdb_path,
                             transform_param=dict(scale=1. / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type='xavier'))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50, weight_filler=dict(type='xavier'))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.fc1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type='xavier'))
    n.relu1 = L.ReLU(n.fc1, in_place=True)
    n.score = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type='xavier'))
    n.loss = L.SoftmaxWithLoss(n.score, n.label)
    return n.to_proto()


with open(os.path.join(work, "lenet_train.prototxt"), "w") as f:
    f.write(str(lenet(os.path.join(work, "digits_lmdb"), 64)))
with open(os.path.join(work, "lenet_solver.prototxt"), "w") as f:
    f.write('train_net: "{}"\nbase_lr: 0.01\nmomentum: 0.9\nweight_decay: 0.0005\n'
            'lr_policy: "inv"\ngamma: 0.0001\npower: 0.75\nrandom_seed: 7\n'
            'snapshot_prefix: "{}"\n'.format(os.path.join(work, "lenet_train.prototxt"),
                                              os.path.join(work, "lenet")))

caffe.set_mode_cpu()
solver = caffe.SGDSolver(os.path.join(work, "lenet_solver.prototxt"))
print("blobs", [(k, v.data.shape) for k, v in solver.net.blobs.items()], file=sys.stderr)
losses = []
for _ in range(30):
    solver.step(1)
    losses.append(float(solver.net.blobs['loss'].data))
solver.net.forward()
scores = solver.net.blobs['score'].data
batch_labels = solver.net.blobs['label'].data
solver.net.save(os.path.join(work, "lenet.caffemodel"))
print(json.dumps({"losses": losses, "iter": solver.iter,
                  "final_loss": float(solver.net.blobs['loss'].data),
                  "scores": scores.tolist(), "labels": batch_labels.tolist(),
                  "conv1_shape": list(solver.net.params['conv1'][0].data.shape)}))
