# ruff: noqa: E402, I001  (install_as_caffe must run before `import caffe`)
"""A pycaffe-style fine-tuning script: LeNet's train net with a new 10-way classifier
(renamed, so it starts from scratch) takes the other layers' weights from lenet.caffemodel,
then trains with SGDSolver.step; prints JSON. Also net surgery: copies fc1's weights into a
second net by hand and saves it.
Usage: finetune.py WORKDIR (after lenet_netspec.py). Run by tests/caffe/test_scripts.py."""
import caffeonspark.caffe; caffeonspark.caffe.install_as_caffe()  # noqa: E702

import json
import os
import sys

import caffe
from caffe.proto import caffe_pb2
from google.protobuf import text_format

work = sys.argv[1]
net_param = caffe_pb2.NetParameter()
with open(os.path.join(work, "lenet_train.prototxt")) as f:
    text_format.Merge(f.read(), net_param)
for layer in net_param.layer:
    if layer.name == "score":
        layer.name = "score_new"
with open(os.path.join(work, "finetune_train.prototxt"), "w") as f:
    f.write(str(net_param))

solver_param = caffe_pb2.SolverParameter()
solver_param.train_net = os.path.join(work, "finetune_train.prototxt")
solver_param.base_lr = 0.005
solver_param.momentum = 0.9
solver_param.lr_policy = "fixed"
solver_param.random_seed = 11
with open(os.path.join(work, "finetune_solver.prototxt"), "w") as f:
    f.write(str(solver_param))

solver = caffe.SGDSolver(os.path.join(work, "finetune_solver.prototxt"))
solver.net.copy_from(os.path.join(work, "lenet.caffemodel"))
trained = caffe.Net(os.path.join(work, "lenet_train.prototxt"),
                    os.path.join(work, "lenet.caffemodel"), caffe.TEST)
same_conv1 = bool((solver.net.params['conv1'][0].data == trained.params['conv1'][0].data).all())
losses = []
for _ in range(15):
    solver.step(1)
    losses.append(float(solver.net.blobs['loss'].data))

# Net surgery: fc1's weights into a fresh net, by hand, then saved and read back.
fresh = caffe.Net(os.path.join(work, "lenet_train.prototxt"), caffe.TEST)
for name in ("fc1", "score"):
    for target, source in zip(fresh.params[name], trained.params[name], strict=True):
        target.data[...] = source.data
fresh.save(os.path.join(work, "surgery.caffemodel"))
back = caffe.Net(os.path.join(work, "lenet_train.prototxt"),
                 os.path.join(work, "surgery.caffemodel"), caffe.TEST)
print(json.dumps({
    "same_conv1": same_conv1, "losses": losses,
    "fc1_sum": float(back.params['fc1'][0].data.sum()),
    "trained_fc1_sum": float(trained.params['fc1'][0].data.sum()),
    "conv1_differs": bool((back.params['conv1'][0].data != trained.params['conv1'][0].data).any()),
}))
