"""A tiny deploy net (Input 3 x 8 x 8, Convolution, InnerProduct, Softmax) with fixed
weights saved to a .caffemodel, and the NumPy preprocessing the Classifier and Detector
tests restate."""

import numpy as np

import caffeonspark.caffe as caffe

DEPLOY = """
name: "tiny_deploy"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 2 kernel_size: 3 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


def write_model(tmp_path):
    """(deploy path, weights path) with weights drawn from a fixed seed."""
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(DEPLOY)
    net = caffe.Net(str(deploy), caffe.TEST)
    rng = np.random.default_rng(11)
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = rng.normal(scale=0.5, size=blob.shape)
    weights = tmp_path / "tiny.caffemodel"
    net.save(str(weights))
    return str(deploy), str(weights)


def preprocess(crop, mean, raw_scale, input_scale, channel_swap):
    """H x W x K [0, 1] image -> K x H x W net input, in pycaffe's documented order."""
    x = crop.transpose(2, 0, 1)[list(channel_swap)] * raw_scale
    return (x - np.asarray(mean, np.float32)[:, None, None]) * input_scale


def probabilities(deploy, weights, inputs):
    """The net's softmax outputs for K x H x W inputs, through caffe.Net directly."""
    net = caffe.Net(deploy, weights, caffe.TEST)
    out = []
    for x in inputs:
        net.blobs["data"].reshape(1, 3, 8, 8)
        net.blobs["data"].data[0] = x
        out.append(net.forward()["prob"][0].copy())
    return np.array(out)
