"""`caffeonspark draw`: the example LeNet per phase, checked through pydot's dot text, and
rendered to a PNG that is not blank."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import pydot

from caffeonspark import cli, model_io
from caffeonspark.viz.draw import layer_label, net_graph

NET = Path(__file__).resolve().parents[2] / "examples" / "mnist" / "lenet_train_test.prototxt"
COMMON = ["conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "loss"]


def _drawn(phase: str) -> tuple[list[str], list[str]]:
    """(layer names, blob names) read back from the dot text of the drawing."""
    dot = net_graph(model_io.read_net_prototxt(NET), phase=phase).to_string()
    (graph,) = pydot.graph_from_dot_data(dot)
    layers, blobs = [], []
    for node in graph.get_nodes():
        label = (node.get_label() or "").strip('"')
        if node.get_shape() == "box":
            layers.append(label.split("\\n")[0])
        elif node.get_shape() == "octagon":
            blobs.append(label)
    return layers, blobs


def test_phases_keep_their_own_layers():
    train_layers, train_blobs = _drawn("TRAIN")
    assert train_layers == ["mnist"] + COMMON  # one Data layer: the TRAIN one
    assert "accuracy" not in train_layers and "accuracy" not in train_blobs
    test_layers, test_blobs = _drawn("TEST")
    assert test_layers == ["mnist", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2",
                           "accuracy", "loss"]
    assert "accuracy" in test_blobs
    all_layers, _ = _drawn("ALL")
    assert all_layers == ["mnist", "mnist"] + COMMON[:7] + ["accuracy", "loss"]
    # relu1 works in place: ip1 is drawn twice, before and after it, so no loop
    assert train_blobs.count("ip1") == 2 and train_blobs.count("data") == 1


def test_labels_carry_key_params():
    net = model_io.read_net_prototxt(NET)
    by_name = {layer.name: layer for layer in net.layer}
    assert layer_label(by_name["conv1"]).split("\\n") == [
        "conv1", "(Convolution)", "num_output 20", "kernel 5", "stride 1"]
    assert layer_label(by_name["pool1"]).split("\\n") == [
        "pool1", "(Pooling)", "MAX", "kernel 2", "stride 2"]
    assert layer_label(by_name["ip1"]).split("\\n") == ["ip1", "(InnerProduct)", "num_output 500"]


def test_draw_verb_writes_a_png(tmp_path, capsys):
    out = tmp_path / "lenet.png"
    assert cli.main(["draw", str(NET), str(out), "-rankdir", "TB", "-phase", "TEST"]) == 0
    pixels = matplotlib.image.imread(str(out))
    assert pixels.shape[0] > 400 and pixels.shape[1] > 100  # top to bottom: taller than wide
    assert pixels.shape[0] > pixels.shape[1]
    assert float(pixels[..., :3].var()) > 0.01
    capsys.readouterr()
    assert cli.main(["draw", str(NET), str(out), "-phase", "VAL"]) == 2  # a usage error
    error = capsys.readouterr().err.strip()
    assert error.startswith("caffeonspark: error: ") and "-phase" in error and "\n" not in error
