#!/usr/bin/env bash
# Regenerates python/caffeonspark/proto/caffe_pb2.py from caffe.proto with the protoc bundled
# in grpcio-tools (pip install grpcio-tools). Run from anywhere; commit both files together.
# The generated module checks the protobuf runtime version at import: see the
# ValidateProtobufRuntimeVersion line it contains for the minimum runtime it accepts.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
proto_dir="$repo/python/caffeonspark/proto"
python -m grpc_tools.protoc --proto_path="$proto_dir" --python_out="$proto_dir" \
    "$proto_dir/caffe.proto"
python -m grpc_tools.protoc --version
grep -n "ValidateProtobufRuntimeVersion" -A 7 "$proto_dir/caffe_pb2.py" | head -n 9
