"""caffe.draw: a NetParameter as a graphviz picture (pycaffe's draw module), with pydot.

Layers are boxes labelled with their name and type, blobs are octagons, edges run from
bottoms to layers to tops; an in-place top is drawn as one more edge into the same blob.
pydot and graphviz's `dot` are needed only when a picture is made; without them
NotImplementedError says what to install. Tests: tests/caffe/test_net_spec.py.
"""

from __future__ import annotations

import os
from typing import Any

from caffeonspark import netspec
from caffeonspark.proto import caffe_pb2


def _pydot() -> Any:
    try:
        import pydot
    except ImportError:
        raise NotImplementedError(
            "caffe.draw needs pydot (pip install pydot) and graphviz's dot program"
        ) from None
    return pydot


def get_pydot_graph(caffe_net: caffe_pb2.NetParameter, rankdir: str,
                    label_edges: bool = True, phase: int | None = None) -> Any:
    """A pydot.Dot of the net's layers (filtered by `phase` when given) and blobs."""
    pydot = _pydot()
    net = caffe_net
    if phase is not None:
        net = netspec.filter_net(caffe_net, netspec.net_state_for(caffe_net, phase))
    graph = pydot.Dot(net.name or "net", graph_type="digraph", rankdir=rankdir)
    blobs: set[str] = set()

    def blob_node(name: str) -> str:
        key = f"blob_{name}"
        if name not in blobs:
            blobs.add(name)
            graph.add_node(pydot.Node(key, label=f'"{name}"', shape="octagon"))
        return key

    for index, layer in enumerate(net.layer):
        key = f"layer_{index}"
        graph.add_node(pydot.Node(key, label=f'"{layer.name}\\n({layer.type})"', shape="box"))
        for bottom in layer.bottom:
            graph.add_edge(pydot.Edge(blob_node(bottom), key))
        for top in layer.top:
            graph.add_edge(pydot.Edge(key, blob_node(top)))
    return graph


def draw_net(caffe_net: caffe_pb2.NetParameter, rankdir: str, ext: str = "png",
             phase: int | None = None) -> bytes:
    """The picture as bytes in format `ext` (png, svg, pdf, ...)."""
    graph = get_pydot_graph(caffe_net, rankdir, phase=phase)
    try:
        return graph.create(format=ext)
    except FileNotFoundError:
        raise NotImplementedError("caffe.draw needs graphviz's dot program on PATH") from None


def draw_net_to_file(caffe_net: caffe_pb2.NetParameter, filename: str | os.PathLike[str],
                     rankdir: str = "LR", phase: int | None = None) -> None:
    """Write the picture to `filename`, its format from the suffix."""
    ext = os.path.splitext(os.fspath(filename))[1].lstrip(".") or "png"
    with open(filename, "wb") as handle:
        handle.write(draw_net(caffe_net, rankdir, ext, phase))
