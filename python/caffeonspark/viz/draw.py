"""A diagram of a net: layers as boxes, blobs as octagons, drawn by graphviz through pydot.

    graph = net_graph(read_net_prototxt("lenet_train_test.prototxt"), phase="TRAIN")
    write_graph(graph, "lenet.png")            # format from the suffix (.png, .svg, .pdf)

Each layer box reads "name", "(type)" and its key parameters (num_output, kernel, stride,
pad, pooling method); each blob octagon its name. An in-place layer (a top that is also
its bottom) gets a fresh octagon of the same name for what it writes, so the picture stays
a chain instead of a loop. phase TRAIN or TEST keeps the layers Caffe would build in that
phase (netspec.filter_net with the net's own state); ALL draws every layer.
Tests: tests/viz/test_draw.py.
"""

from __future__ import annotations

import os
from typing import Any

from caffeonspark import netspec
from caffeonspark.atomic_file import atomic_write
from caffeonspark.proto import caffe_pb2

__all__ = ["net_graph", "write_graph", "layer_label", "RANKDIRS", "PHASES"]

RANKDIRS = ("LR", "TB", "BT", "RL")
PHASES = ("TRAIN", "TEST", "ALL")

_FILL = {
    "Convolution": "#9ecae1", "Deconvolution": "#9ecae1", "Pooling": "#a1d99b",
    "InnerProduct": "#fdae6b", "ReLU": "#dadaeb", "Data": "#fee391",
    "MemoryData": "#fee391", "CoSData": "#fee391", "Input": "#fee391",
}
_POOL_NAMES = {v: k for k, v in caffe_pb2.PoolingParameter.PoolMethod.items()}


def _spatial(name: str, values: list[int], h: int = 0, w: int = 0) -> str | None:
    if h or w:
        return f"{name} {h}x{w}"
    if values:
        return f"{name} " + "x".join(str(v) for v in values)
    return None


def _conv_lines(p: caffe_pb2.ConvolutionParameter) -> list[str | None]:
    return [
        f"num_output {p.num_output}",
        _spatial("kernel", list(p.kernel_size), p.kernel_h, p.kernel_w),
        _spatial("stride", list(p.stride), p.stride_h, p.stride_w),
        _spatial("pad", list(p.pad), p.pad_h, p.pad_w),
    ]


def layer_label(layer: caffe_pb2.LayerParameter) -> str:
    """"name", "(type)" and one line per key parameter, joined by dot's "\\n"."""
    lines: list[str | None] = [layer.name, f"({layer.type})"]
    if layer.type in ("Convolution", "Deconvolution"):
        lines += _conv_lines(layer.convolution_param)
    elif layer.type == "Pooling":
        p = layer.pooling_param
        lines.append(f"{_POOL_NAMES[p.pool]}" + (" global" if p.global_pooling else ""))
        lines.append(_spatial("kernel", [p.kernel_size] if p.kernel_size else [],
                              p.kernel_h, p.kernel_w))
        lines.append(_spatial("stride", [p.stride], p.stride_h, p.stride_w))
        if p.pad or p.pad_h or p.pad_w:
            lines.append(_spatial("pad", [p.pad], p.pad_h, p.pad_w))
    elif layer.type == "InnerProduct":
        lines.append(f"num_output {layer.inner_product_param.num_output}")
    elif layer.type == "LRN":
        lines.append(f"local_size {layer.lrn_param.local_size}")
    return "\\n".join(line for line in lines if line)  # dot's own line break escape


def _select(net: caffe_pb2.NetParameter, phase: str) -> caffe_pb2.NetParameter:
    if phase.upper() == "ALL":
        return net
    return netspec.filter_net(net, netspec.net_state_for(net, phase))


def net_graph(net: caffe_pb2.NetParameter, phase: str = "ALL", rankdir: str = "LR") -> Any:
    """A pydot.Dot of `net`'s layers of `phase` (TRAIN, TEST or ALL)."""
    import pydot

    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    if phase.upper() not in PHASES:
        raise ValueError(f"phase must be one of {', '.join(PHASES)}, got {phase!r}")
    selected = _select(net, phase)
    graph = pydot.Dot(graph_name="net", graph_type="digraph", rankdir=rankdir,
                      label=f"{net.name or 'net'} ({phase.upper()})", labelloc="t")
    current: dict[str, str] = {}  # blob name -> node id of its latest version
    count = 0

    def blob_node(name: str) -> str:
        nonlocal count
        count += 1
        node_id = f"blob{count}"
        graph.add_node(pydot.Node(node_id, label=name, shape="octagon", style="filled",
                                  fillcolor="#f0f0f0"))
        current[name] = node_id
        return node_id

    for index, layer in enumerate(selected.layer):
        layer_id = f"layer{index}"
        graph.add_node(pydot.Node(layer_id, label=layer_label(layer), shape="box",
                                  style="filled", fillcolor=_FILL.get(layer.type, "#e5e5e5")))
        for bottom in layer.bottom:
            source = current.get(bottom) or blob_node(bottom)  # a net input: no producer
            graph.add_edge(pydot.Edge(source, layer_id))
        for top in layer.top:
            graph.add_edge(pydot.Edge(layer_id, blob_node(top)))
    return graph


def write_graph(graph: Any, out: str) -> None:
    """Render with dot into `out` (format from its suffix, png by default)."""
    suffix = os.path.splitext(out)[1].lstrip(".").lower() or "png"
    data = graph.create(prog="dot", format=suffix)
    with atomic_write(out) as handle:
        handle.write(data)
