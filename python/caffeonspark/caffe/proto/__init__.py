"""caffe.proto: `from caffe.proto import caffe_pb2` gives our own caffe_pb2 (Caffe's message
and field names and numbers). Tests: tests/caffe/test_net_spec.py.
"""

import sys

from caffeonspark.proto import caffe_pb2

# `import caffe.proto.caffe_pb2` (and the caffeonspark.caffe spelling) find the same module.
sys.modules.setdefault(__name__ + ".caffe_pb2", caffe_pb2)

__all__ = ["caffe_pb2"]
