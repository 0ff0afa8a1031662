"""Tests of python/caffeonspark/proto/caffe.proto and its generated caffe_pb2: field numbers,
defaults, enum values and packing against docs/CAFFE.md §4.5, §5, §6, §8; the generated
module matches the .proto and the installed protobuf runtime; Caffe-written files decode and
re-encode byte for byte.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import google.protobuf
import pytest
from google.protobuf import descriptor_pb2

from caffeonspark.proto import caffe_pb2

PROTO_DIR = Path(caffe_pb2.__file__).resolve().parent

# (message, field, number, default or None when the default is not checked)
FIELDS = [
    ("BlobShape", "dim", 1, None),
    ("BlobProto", "shape", 7, None),
    ("BlobProto", "data", 5, None),
    ("BlobProto", "diff", 6, None),
    ("BlobProto", "double_data", 8, None),
    ("BlobProto", "double_diff", 9, None),
    ("BlobProto", "num", 1, 0),
    ("BlobProto", "channels", 2, 0),
    ("BlobProto", "height", 3, 0),
    ("BlobProto", "width", 4, 0),
    ("BlobProtoVector", "blobs", 1, None),
    ("Datum", "channels", 1, None),
    ("Datum", "height", 2, None),
    ("Datum", "width", 3, None),
    ("Datum", "data", 4, None),
    ("Datum", "label", 5, None),
    ("Datum", "float_data", 6, None),
    ("Datum", "encoded", 7, False),
    ("FillerParameter", "type", 1, "constant"),
    ("FillerParameter", "value", 2, 0.0),
    ("FillerParameter", "min", 3, 0.0),
    ("FillerParameter", "max", 4, 1.0),
    ("FillerParameter", "mean", 5, 0.0),
    ("FillerParameter", "std", 6, 1.0),
    ("FillerParameter", "sparse", 7, -1),
    ("FillerParameter", "variance_norm", 8, caffe_pb2.FillerParameter.FAN_IN),
    ("NetParameter", "name", 1, None),
    ("NetParameter", "layers", 2, None),
    ("NetParameter", "input", 3, None),
    ("NetParameter", "input_dim", 4, None),
    ("NetParameter", "force_backward", 5, False),
    ("NetParameter", "state", 6, None),
    ("NetParameter", "debug_info", 7, False),
    ("NetParameter", "input_shape", 8, None),
    ("NetParameter", "layer", 100, None),
    ("NetState", "phase", 1, caffe_pb2.TEST),
    ("NetState", "level", 2, 0),
    ("NetState", "stage", 3, None),
    ("NetStateRule", "phase", 1, None),
    ("NetStateRule", "min_level", 2, None),
    ("NetStateRule", "max_level", 3, None),
    ("NetStateRule", "stage", 4, None),
    ("NetStateRule", "not_stage", 5, None),
    ("ParamSpec", "name", 1, None),
    ("ParamSpec", "share_mode", 2, caffe_pb2.ParamSpec.STRICT),
    ("ParamSpec", "lr_mult", 3, 1.0),
    ("ParamSpec", "decay_mult", 4, 1.0),
    ("LayerParameter", "name", 1, None),
    ("LayerParameter", "type", 2, None),
    ("LayerParameter", "bottom", 3, None),
    ("LayerParameter", "top", 4, None),
    ("LayerParameter", "loss_weight", 5, None),
    ("LayerParameter", "param", 6, None),
    ("LayerParameter", "blobs", 7, None),
    ("LayerParameter", "include", 8, None),
    ("LayerParameter", "exclude", 9, None),
    ("LayerParameter", "phase", 10, None),
    ("LayerParameter", "propagate_down", 11, None),
    ("LayerParameter", "transform_param", 100, None),
    ("LayerParameter", "loss_param", 101, None),
    ("LayerParameter", "source_class", 10001, None),
    ("LayerParameter", "cos_data_param", 10010, None),
    ("TransformationParameter", "scale", 1, 1.0),
    ("TransformationParameter", "mirror", 2, False),
    ("TransformationParameter", "crop_size", 3, 0),
    ("TransformationParameter", "mean_file", 4, None),
    ("TransformationParameter", "mean_value", 5, None),
    ("TransformationParameter", "force_color", 6, False),
    ("TransformationParameter", "force_gray", 7, False),
    ("LossParameter", "ignore_label", 1, None),
    ("LossParameter", "normalize", 2, None),
    ("LossParameter", "normalization", 3, caffe_pb2.LossParameter.VALID),
    ("AccuracyParameter", "top_k", 1, 1),
    ("AccuracyParameter", "axis", 2, 1),
    ("AccuracyParameter", "ignore_label", 3, None),
    ("ArgMaxParameter", "out_max_val", 1, False),
    ("ArgMaxParameter", "top_k", 2, 1),
    ("ArgMaxParameter", "axis", 3, None),
    ("BatchNormParameter", "use_global_stats", 1, None),
    ("BatchNormParameter", "moving_average_fraction", 2, pytest.approx(0.999)),
    ("BatchNormParameter", "eps", 3, pytest.approx(1e-5)),
    ("BiasParameter", "axis", 1, 1),
    ("BiasParameter", "num_axes", 2, 1),
    ("BiasParameter", "filler", 3, None),
    ("ClipParameter", "min", 1, None),
    ("ClipParameter", "max", 2, None),
    ("ConcatParameter", "axis", 2, 1),
    ("ConcatParameter", "concat_dim", 1, 1),
    ("ContrastiveLossParameter", "margin", 1, 1.0),
    ("ContrastiveLossParameter", "legacy_version", 2, False),
    ("ConvolutionParameter", "num_output", 1, None),
    ("ConvolutionParameter", "bias_term", 2, True),
    ("ConvolutionParameter", "pad", 3, None),
    ("ConvolutionParameter", "kernel_size", 4, None),
    ("ConvolutionParameter", "group", 5, 1),
    ("ConvolutionParameter", "stride", 6, None),
    ("ConvolutionParameter", "weight_filler", 7, None),
    ("ConvolutionParameter", "bias_filler", 8, None),
    ("ConvolutionParameter", "pad_h", 9, 0),
    ("ConvolutionParameter", "pad_w", 10, 0),
    ("ConvolutionParameter", "kernel_h", 11, None),
    ("ConvolutionParameter", "kernel_w", 12, None),
    ("ConvolutionParameter", "stride_h", 13, None),
    ("ConvolutionParameter", "stride_w", 14, None),
    ("ConvolutionParameter", "engine", 15, caffe_pb2.ConvolutionParameter.DEFAULT),
    ("ConvolutionParameter", "axis", 16, 1),
    ("ConvolutionParameter", "force_nd_im2col", 17, False),
    ("ConvolutionParameter", "dilation", 18, None),
    ("CropParameter", "axis", 1, 2),
    ("CropParameter", "offset", 2, None),
    ("DataParameter", "source", 1, None),
    ("DataParameter", "scale", 2, 1.0),
    ("DataParameter", "mean_file", 3, None),
    ("DataParameter", "batch_size", 4, None),
    ("DataParameter", "crop_size", 5, 0),
    ("DataParameter", "mirror", 6, False),
    ("DataParameter", "rand_skip", 7, 0),
    ("DataParameter", "backend", 8, caffe_pb2.DataParameter.LEVELDB),
    ("DataParameter", "force_encoded_color", 9, False),
    ("DataParameter", "prefetch", 10, 4),
    ("DropoutParameter", "dropout_ratio", 1, 0.5),
    ("DummyDataParameter", "data_filler", 1, None),
    ("DummyDataParameter", "num", 2, None),
    ("DummyDataParameter", "channels", 3, None),
    ("DummyDataParameter", "height", 4, None),
    ("DummyDataParameter", "width", 5, None),
    ("DummyDataParameter", "shape", 6, None),
    ("EltwiseParameter", "operation", 1, caffe_pb2.EltwiseParameter.SUM),
    ("EltwiseParameter", "coeff", 2, None),
    ("EltwiseParameter", "stable_prod_grad", 3, True),
    ("ELUParameter", "alpha", 1, 1.0),
    ("EmbedParameter", "num_output", 1, None),
    ("EmbedParameter", "input_dim", 2, None),
    ("EmbedParameter", "bias_term", 3, True),
    ("EmbedParameter", "weight_filler", 4, None),
    ("EmbedParameter", "bias_filler", 5, None),
    ("ExpParameter", "base", 1, -1.0),
    ("ExpParameter", "scale", 2, 1.0),
    ("ExpParameter", "shift", 3, 0.0),
    ("LogParameter", "base", 1, -1.0),
    ("LogParameter", "scale", 2, 1.0),
    ("LogParameter", "shift", 3, 0.0),
    ("PowerParameter", "power", 1, 1.0),
    ("PowerParameter", "scale", 2, 1.0),
    ("PowerParameter", "shift", 3, 0.0),
    ("FlattenParameter", "axis", 1, 1),
    ("FlattenParameter", "end_axis", 2, -1),
    ("HDF5DataParameter", "source", 1, None),
    ("HDF5DataParameter", "batch_size", 2, None),
    ("HDF5DataParameter", "shuffle", 3, False),
    ("HDF5OutputParameter", "file_name", 1, None),
    ("HingeLossParameter", "norm", 1, caffe_pb2.HingeLossParameter.L1),
    ("ImageDataParameter", "source", 1, None),
    ("ImageDataParameter", "scale", 2, 1.0),
    ("ImageDataParameter", "mean_file", 3, None),
    ("ImageDataParameter", "batch_size", 4, 1),
    ("ImageDataParameter", "crop_size", 5, 0),
    ("ImageDataParameter", "mirror", 6, False),
    ("ImageDataParameter", "rand_skip", 7, 0),
    ("ImageDataParameter", "shuffle", 8, False),
    ("ImageDataParameter", "new_height", 9, 0),
    ("ImageDataParameter", "new_width", 10, 0),
    ("ImageDataParameter", "is_color", 11, True),
    ("ImageDataParameter", "root_folder", 12, ""),
    ("InfogainLossParameter", "source", 1, None),
    ("InfogainLossParameter", "axis", 2, 1),
    ("InnerProductParameter", "num_output", 1, None),
    ("InnerProductParameter", "bias_term", 2, True),
    ("InnerProductParameter", "weight_filler", 3, None),
    ("InnerProductParameter", "bias_filler", 4, None),
    ("InnerProductParameter", "axis", 5, 1),
    ("InnerProductParameter", "transpose", 6, False),
    ("InputParameter", "shape", 1, None),
    ("LRNParameter", "local_size", 1, 5),
    ("LRNParameter", "alpha", 2, 1.0),
    ("LRNParameter", "beta", 3, 0.75),
    ("LRNParameter", "norm_region", 4, caffe_pb2.LRNParameter.ACROSS_CHANNELS),
    ("LRNParameter", "k", 5, 1.0),
    ("LRNParameter", "engine", 6, caffe_pb2.LRNParameter.DEFAULT),
    ("MemoryDataParameter", "batch_size", 1, None),
    ("MemoryDataParameter", "channels", 2, None),
    ("MemoryDataParameter", "height", 3, None),
    ("MemoryDataParameter", "width", 4, None),
    ("MemoryDataParameter", "share_in_parallel", 10000, True),
    ("MemoryDataParameter", "source", 10001, None),
    ("MemoryDataParameter", "dataframe_column_select", 10002, None),
    ("MemoryDataParameter", "image_encoded", 10003, False),
    ("MemoryDataParameter", "dataframe_format", 10004, "parquet"),
    ("MVNParameter", "normalize_variance", 1, True),
    ("MVNParameter", "across_channels", 2, False),
    ("MVNParameter", "eps", 3, pytest.approx(1e-9)),
    ("ParameterParameter", "shape", 1, None),
    ("PoolingParameter", "pool", 1, caffe_pb2.PoolingParameter.MAX),
    ("PoolingParameter", "kernel_size", 2, None),
    ("PoolingParameter", "stride", 3, 1),
    ("PoolingParameter", "pad", 4, 0),
    ("PoolingParameter", "kernel_h", 5, None),
    ("PoolingParameter", "kernel_w", 6, None),
    ("PoolingParameter", "stride_h", 7, None),
    ("PoolingParameter", "stride_w", 8, None),
    ("PoolingParameter", "pad_h", 9, 0),
    ("PoolingParameter", "pad_w", 10, 0),
    ("PoolingParameter", "engine", 11, caffe_pb2.PoolingParameter.DEFAULT),
    ("PoolingParameter", "global_pooling", 12, False),
    ("PoolingParameter", "round_mode", 13, caffe_pb2.PoolingParameter.CEIL),
    ("PReLUParameter", "filler", 1, None),
    ("PReLUParameter", "channel_shared", 2, False),
    ("PythonParameter", "module", 1, None),
    ("PythonParameter", "layer", 2, None),
    ("PythonParameter", "param_str", 3, ""),
    ("PythonParameter", "share_in_parallel", 4, False),
    ("RecurrentParameter", "num_output", 1, 0),
    ("RecurrentParameter", "weight_filler", 2, None),
    ("RecurrentParameter", "bias_filler", 3, None),
    ("RecurrentParameter", "debug_info", 4, False),
    ("RecurrentParameter", "expose_hidden", 5, False),
    ("ReductionParameter", "operation", 1, caffe_pb2.ReductionParameter.SUM),
    ("ReductionParameter", "axis", 2, 0),
    ("ReductionParameter", "coeff", 3, 1.0),
    ("ReLUParameter", "negative_slope", 1, 0.0),
    ("ReLUParameter", "engine", 2, caffe_pb2.ReLUParameter.DEFAULT),
    ("SigmoidParameter", "engine", 1, caffe_pb2.SigmoidParameter.DEFAULT),
    ("TanHParameter", "engine", 1, caffe_pb2.TanHParameter.DEFAULT),
    ("SoftmaxParameter", "engine", 1, caffe_pb2.SoftmaxParameter.DEFAULT),
    ("SoftmaxParameter", "axis", 2, 1),
    ("ReshapeParameter", "shape", 1, None),
    ("ReshapeParameter", "axis", 2, 0),
    ("ReshapeParameter", "num_axes", 3, -1),
    ("ScaleParameter", "axis", 1, 1),
    ("ScaleParameter", "num_axes", 2, 1),
    ("ScaleParameter", "filler", 3, None),
    ("ScaleParameter", "bias_term", 4, False),
    ("ScaleParameter", "bias_filler", 5, None),
    ("SliceParameter", "slice_dim", 1, 1),
    ("SliceParameter", "slice_point", 2, None),
    ("SliceParameter", "axis", 3, 1),
    ("SPPParameter", "pyramid_height", 1, None),
    ("SPPParameter", "pool", 2, caffe_pb2.SPPParameter.MAX),
    ("SPPParameter", "engine", 6, caffe_pb2.SPPParameter.DEFAULT),
    ("SwishParameter", "beta", 1, 1.0),
    ("ThresholdParameter", "threshold", 1, 0.0),
    ("TileParameter", "axis", 1, 1),
    ("TileParameter", "tiles", 2, None),
    ("WindowDataParameter", "source", 1, None),
    ("WindowDataParameter", "scale", 2, 1.0),
    ("WindowDataParameter", "mean_file", 3, None),
    ("WindowDataParameter", "batch_size", 4, None),
    ("WindowDataParameter", "crop_size", 5, 0),
    ("WindowDataParameter", "mirror", 6, False),
    ("WindowDataParameter", "fg_threshold", 7, 0.5),
    ("WindowDataParameter", "bg_threshold", 8, 0.5),
    ("WindowDataParameter", "fg_fraction", 9, 0.25),
    ("WindowDataParameter", "context_pad", 10, 0),
    ("WindowDataParameter", "crop_mode", 11, "warp"),
    ("WindowDataParameter", "cache_images", 12, False),
    ("WindowDataParameter", "root_folder", 13, ""),
    ("CoSDataParameter", "source", 1, None),
    ("CoSDataParameter", "batch_size", 2, None),
    ("CoSDataParameter", "shuffle", 3, False),
    ("CoSDataParameter", "dataframe_format", 4, "parquet"),
    ("CoSDataParameter", "top", 5, None),
    ("CoSDataParameter.TopBlob", "name", 1, None),
    ("CoSDataParameter.TopBlob", "type", 2, None),
    ("CoSDataParameter.TopBlob", "channels", 3, None),
    ("CoSDataParameter.TopBlob", "height", 4, None),
    ("CoSDataParameter.TopBlob", "width", 5, None),
    ("CoSDataParameter.TopBlob", "sample_num_axes", 6, 3),
    ("CoSDataParameter.TopBlob", "transform_param", 7, None),
    ("CoSDataParameter.TopBlob", "out_channels", 8, None),
    ("CoSDataParameter.TopBlob", "out_height", 9, None),
    ("CoSDataParameter.TopBlob", "out_width", 10, None),
    ("CoSDataParameter.TopBlob", "transpose", 11, False),
    ("SolverState", "iter", 1, None),
    ("SolverState", "learned_net", 2, None),
    ("SolverState", "history", 3, None),
    ("SolverState", "current_step", 4, 0),
    ("V1LayerParameter", "layer", 1, None),
    ("V1LayerParameter", "bottom", 2, None),
    ("V1LayerParameter", "top", 3, None),
    ("V1LayerParameter", "name", 4, None),
    ("V1LayerParameter", "type", 5, None),
    ("V1LayerParameter", "blobs", 6, None),
    ("V1LayerParameter", "blobs_lr", 7, None),
    ("V1LayerParameter", "weight_decay", 8, None),
    ("V1LayerParameter", "include", 32, None),
    ("V1LayerParameter", "exclude", 33, None),
    ("V1LayerParameter", "loss_weight", 35, None),
    ("V1LayerParameter", "transform_param", 36, None),
    ("V1LayerParameter", "loss_param", 42, None),
    ("V1LayerParameter", "param", 1001, None),
    ("V1LayerParameter", "blob_share_mode", 1002, None),
]

SOLVER_FIELDS = {
    "train_net": (1, None),
    "test_net": (2, None),
    "test_iter": (3, None),
    "test_interval": (4, 0),
    "base_lr": (5, None),
    "display": (6, None),
    "max_iter": (7, None),
    "lr_policy": (8, None),
    "gamma": (9, None),
    "power": (10, None),
    "momentum": (11, None),
    "weight_decay": (12, None),
    "stepsize": (13, None),
    "snapshot": (14, 0),
    "snapshot_prefix": (15, None),
    "snapshot_diff": (16, False),
    "solver_mode": (17, caffe_pb2.SolverParameter.GPU),
    "device_id": (18, 0),
    "test_compute_loss": (19, False),
    "random_seed": (20, -1),
    "train_net_param": (21, None),
    "test_net_param": (22, None),
    "debug_info": (23, False),
    "net": (24, None),
    "net_param": (25, None),
    "train_state": (26, None),
    "test_state": (27, None),
    "snapshot_after_train": (28, True),
    "regularization_type": (29, "L2"),
    "solver_type": (30, caffe_pb2.SolverParameter.SGD),
    "delta": (31, pytest.approx(1e-8)),
    "test_initialization": (32, True),
    "average_loss": (33, 1),
    "stepvalue": (34, None),
    "clip_gradients": (35, -1.0),
    "iter_size": (36, 1),
    "snapshot_format": (37, caffe_pb2.SolverParameter.BINARYPROTO),
    "rms_decay": (38, pytest.approx(0.99)),
    "momentum2": (39, pytest.approx(0.999)),
    "type": (40, "SGD"),
    "layer_wise_reduce": (41, True),
    "weights": (42, None),
}

# LayerParameter per-type parameter field numbers (§5).
LAYER_PARAM_NUMBERS = {
    "accuracy": 102, "argmax": 103, "concat": 104, "contrastive_loss": 105, "convolution": 106,
    "data": 107, "dropout": 108, "dummy_data": 109, "eltwise": 110, "exp": 111, "hdf5_data": 112,
    "hdf5_output": 113, "hinge_loss": 114, "image_data": 115, "infogain_loss": 116,
    "inner_product": 117, "lrn": 118, "memory_data": 119, "mvn": 120, "pooling": 121,
    "power": 122, "relu": 123, "sigmoid": 124, "softmax": 125, "slice": 126, "tanh": 127,
    "threshold": 128, "window_data": 129, "python": 130, "prelu": 131, "spp": 132,
    "reshape": 133, "log": 134, "flatten": 135, "reduction": 136, "embed": 137, "tile": 138,
    "batch_norm": 139, "elu": 140, "bias": 141, "scale": 142, "input": 143, "crop": 144,
    "parameter": 145, "recurrent": 146, "swish": 147, "clip": 148,
}  # fmt: skip

# V1LayerParameter per-type parameter field numbers (§8).
V1_PARAM_NUMBERS = {
    "concat": 9, "convolution": 10, "data": 11, "dropout": 12, "hdf5_data": 13,
    "hdf5_output": 14, "image_data": 15, "infogain_loss": 16, "inner_product": 17, "lrn": 18,
    "pooling": 19, "window_data": 20, "power": 21, "memory_data": 22, "argmax": 23,
    "eltwise": 24, "threshold": 25, "dummy_data": 26, "accuracy": 27, "hinge_loss": 29,
    "relu": 30, "slice": 31, "mvn": 34, "tanh": 37, "sigmoid": 38, "softmax": 39,
    "contrastive_loss": 40, "exp": 41,
}  # fmt: skip

V1_TYPES = {
    "NONE": 0, "ACCURACY": 1, "BNLL": 2, "CONCAT": 3, "CONVOLUTION": 4, "DATA": 5,
    "DROPOUT": 6, "EUCLIDEAN_LOSS": 7, "FLATTEN": 8, "HDF5_DATA": 9, "HDF5_OUTPUT": 10,
    "IM2COL": 11, "IMAGE_DATA": 12, "INFOGAIN_LOSS": 13, "INNER_PRODUCT": 14, "LRN": 15,
    "MULTINOMIAL_LOGISTIC_LOSS": 16, "POOLING": 17, "RELU": 18, "SIGMOID": 19, "SOFTMAX": 20,
    "SOFTMAX_LOSS": 21, "SPLIT": 22, "TANH": 23, "WINDOW_DATA": 24, "ELTWISE": 25, "POWER": 26,
    "SIGMOID_CROSS_ENTROPY_LOSS": 27, "HINGE_LOSS": 28, "MEMORY_DATA": 29, "ARGMAX": 30,
    "THRESHOLD": 31, "DUMMY_DATA": 32, "SLICE": 33, "MVN": 34, "ABSVAL": 35, "SILENCE": 36,
    "CONTRASTIVE_LOSS": 37, "EXP": 38, "DECONVOLUTION": 39,
}  # fmt: skip

# The only packed repeated fields (§5 [p]).
PACKED = {
    ("BlobShape", "dim"),
    ("BlobProto", "data"),
    ("BlobProto", "diff"),
    ("BlobProto", "double_data"),
    ("BlobProto", "double_diff"),
}


def _message(path: str):
    cls = caffe_pb2
    for part in path.split("."):
        cls = getattr(cls, part)
    return cls


def _file_proto() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    caffe_pb2.DESCRIPTOR.CopyToProto(proto)
    return proto


def _message_protos(messages):
    for message in messages:
        yield message
        yield from _message_protos(message.nested_type)


def _without_json_names(proto: descriptor_pb2.FileDescriptorProto):
    for message in _message_protos(proto.message_type):
        for field in message.field:
            field.ClearField("json_name")
    return proto


@pytest.mark.parametrize(("message", "field", "number", "default"), FIELDS)
def test_field_number_and_default(message, field, number, default):
    cls = _message(message)
    desc = cls.DESCRIPTOR.fields_by_name[field]
    assert desc.number == number
    if default is not None:
        assert getattr(cls(), field) == default


@pytest.mark.parametrize("field", sorted(SOLVER_FIELDS))
def test_solver_fields(field):
    number, default = SOLVER_FIELDS[field]
    assert caffe_pb2.SolverParameter.DESCRIPTOR.fields_by_name[field].number == number
    if default is not None:
        assert getattr(caffe_pb2.SolverParameter(), field) == default


def test_solver_has_no_unlisted_fields():
    names = {f.name for f in caffe_pb2.SolverParameter.DESCRIPTOR.fields}
    assert names == set(SOLVER_FIELDS)


def test_layer_param_numbers():
    fields = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
    for stem, number in LAYER_PARAM_NUMBERS.items():
        assert fields[f"{stem}_param"].number == number, stem
    per_type = {n for n in fields if n.endswith("_param")}
    assert per_type == {f"{s}_param" for s in LAYER_PARAM_NUMBERS} | {
        "transform_param",
        "loss_param",
        "cos_data_param",
    }


def test_v1_param_numbers():
    fields = caffe_pb2.V1LayerParameter.DESCRIPTOR.fields_by_name
    for stem, number in V1_PARAM_NUMBERS.items():
        assert fields[f"{stem}_param"].number == number, stem


def test_v1_layer_type_enum():
    enum = caffe_pb2.V1LayerParameter.LayerType
    assert {name: enum.Value(name) for name in enum.keys()} == V1_TYPES


@pytest.mark.parametrize(
    ("enum", "values"),
    [
        (caffe_pb2.Phase, {"TRAIN": 0, "TEST": 1}),
        (caffe_pb2.FillerParameter.VarianceNorm, {"FAN_IN": 0, "FAN_OUT": 1, "AVERAGE": 2}),
        (caffe_pb2.ParamSpec.DimCheckMode, {"STRICT": 0, "PERMISSIVE": 1}),
        (
            caffe_pb2.LossParameter.NormalizationMode,
            {"FULL": 0, "VALID": 1, "BATCH_SIZE": 2, "NONE": 3},
        ),
        (caffe_pb2.ConvolutionParameter.Engine, {"DEFAULT": 0, "CAFFE": 1, "CUDNN": 2}),
        (caffe_pb2.DataParameter.DB, {"LEVELDB": 0, "LMDB": 1}),
        (caffe_pb2.EltwiseParameter.EltwiseOp, {"PROD": 0, "SUM": 1, "MAX": 2}),
        (caffe_pb2.HingeLossParameter.Norm, {"L1": 1, "L2": 2}),
        (
            caffe_pb2.LRNParameter.NormRegion,
            {"ACROSS_CHANNELS": 0, "WITHIN_CHANNEL": 1},
        ),
        (caffe_pb2.PoolingParameter.PoolMethod, {"MAX": 0, "AVE": 1, "STOCHASTIC": 2}),
        (caffe_pb2.PoolingParameter.RoundMode, {"CEIL": 0, "FLOOR": 1}),
        (
            caffe_pb2.ReductionParameter.ReductionOp,
            {"SUM": 1, "ASUM": 2, "SUMSQ": 3, "MEAN": 4},
        ),
        (caffe_pb2.SolverParameter.SnapshotFormat, {"HDF5": 0, "BINARYPROTO": 1}),
        (caffe_pb2.SolverParameter.SolverMode, {"CPU": 0, "GPU": 1}),
        (
            caffe_pb2.SolverParameter.SolverType,
            {"SGD": 0, "NESTEROV": 1, "ADAGRAD": 2, "RMSPROP": 3, "ADADELTA": 4, "ADAM": 5},
        ),
        (
            caffe_pb2.CoSDataParameter.TopBlob.DataType,
            {
                "STRING": 0,
                "INT": 1,
                "FLOAT": 2,
                "INT_ARRAY": 3,
                "FLOAT_ARRAY": 4,
                "ENCODED_IMAGE": 5,
                "RAW_IMAGE": 6,
                "ENCODED_IMAGE_WITH_DIM": 7,
            },
        ),
    ],
)
def test_enum_values(enum, values):
    assert {name: enum.Value(name) for name in enum.keys()} == values


def test_only_caffes_packed_fields_are_packed():
    packed = {
        (message.name, field.name)
        for message in _message_protos(_file_proto().message_type)
        for field in message.field
        if field.options.packed
    }
    assert packed == PACKED


def test_clip_bounds_are_required():
    layer = caffe_pb2.LayerParameter(type="Clip")
    layer.clip_param.min = -1
    assert not layer.IsInitialized()
    layer.clip_param.max = 1
    assert layer.IsInitialized()


def test_packed_and_unpacked_encodings():
    # BlobShape.dim packed: tag (1<<3)|2 = 0x0a, then a length; ConvolutionParameter.pad
    # unpacked: one (3<<3)|0 = 0x18 tag per value.
    assert caffe_pb2.BlobShape(dim=[2, 3]).SerializeToString() == b"\x0a\x02\x02\x03"
    conv = caffe_pb2.ConvolutionParameter(pad=[1, 2])
    assert conv.SerializeToString() == b"\x18\x01\x18\x02"
    # Readers accept both encodings of a repeated scalar.
    conv2 = caffe_pb2.ConvolutionParameter()
    conv2.ParseFromString(b"\x1a\x02\x01\x02")
    assert list(conv2.pad) == [1, 2]


def test_generated_module_matches_installed_runtime():
    text = (PROTO_DIR / "caffe_pb2.py").read_text()
    match = re.search(
        r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*"
        r"(\d+),\s*(\d+),\s*(\d+),",
        text,
    )
    assert match, "caffe_pb2.py lacks its runtime version check"
    needed = tuple(int(x) for x in match.groups())
    installed = tuple(int(x) for x in re.findall(r"\d+", google.protobuf.__version__)[:3])
    assert installed >= needed


def test_generated_module_is_up_to_date(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools is needed to run protoc")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={PROTO_DIR}",
            f"--python_out={tmp_path}",
            str(PROTO_DIR / "caffe.proto"),
        ],
        check=True,
    )
    fresh = (tmp_path / "caffe_pb2.py").read_text()
    current = (PROTO_DIR / "caffe_pb2.py").read_text()
    assert _descriptor_bytes(fresh) == _descriptor_bytes(current), (
        "caffe_pb2.py is stale: run tools/regen_proto.sh"
    )


def _descriptor_bytes(module_text: str) -> bytes:
    """The serialized FileDescriptorProto embedded in a generated _pb2 module."""
    match = re.search(r"AddSerializedFile\((b'.*?')\)\n", module_text, re.S)
    assert match, "no serialized descriptor found"
    return ast.literal_eval(match.group(1))


@pytest.mark.parametrize(
    "name", ["lenet.caffemodel", "cifar10_quick.caffemodel", "solver_SGD_iter_10.caffemodel"]
)
def test_caffe_written_caffemodel_round_trips_byte_exact(anchors, name):
    data = (anchors / "caffe-ref" / name).read_bytes()
    net = caffe_pb2.NetParameter()
    net.ParseFromString(data)
    assert net.layer and not net.layers
    assert net.SerializeToString() == data


def test_caffe_written_solverstate_round_trips_byte_exact(anchors):
    data = (anchors / "caffe-ref" / "solver_SGD_iter_10.solverstate").read_bytes()
    state = caffe_pb2.SolverState()
    state.ParseFromString(data)
    assert state.iter == 10
    assert state.SerializeToString() == data
