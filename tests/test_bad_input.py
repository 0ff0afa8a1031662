"""The issue's bad-input list, end to end: each raises a caffeonspark.errors exception that
names the file / line / layer at fault, and nothing crashes the interpreter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from caffeonspark import engine, model_io
from caffeonspark.errors import ConfigError, FormatError, IoError, ShapeError

TINY = """name: "tiny"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 4 } }
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_malformed_prototxt_names_file_line_and_column(tmp_path):
    bad = write(tmp_path / "bad.prototxt", TINY.replace("num_output: 4", "num_output: four"))
    with pytest.raises(FormatError, match=r"bad\.prototxt:4:\d+"):
        engine.Net(str(bad))


def test_unknown_layer_type_names_layer_file_line_and_known_types(tmp_path):
    bad = write(tmp_path / "unknown.prototxt", TINY.replace('type: "InnerProduct"', 'type: "Warp"'))
    with pytest.raises(ConfigError, match=r"'fc'.*unknown\.prototxt:3.*Warp.*InnerProduct"):
        engine.Net(str(bad))


def test_weights_of_the_wrong_shape_name_layer_and_both_shapes(tmp_path):
    net = engine.Net(str(write(tmp_path / "a.prototxt", TINY)))
    model = tmp_path / "a.caffemodel"
    net.save(model)
    other = engine.Net(str(write(tmp_path / "b.prototxt", TINY.replace("num_output: 4",
                                                                        "num_output: 5"))))
    with pytest.raises(ShapeError, match=r"'fc'.*\(4, 3\).*\(5, 3\)"):
        other.copy_from(model)


def test_mismatched_bottom_shapes_name_the_layer(tmp_path):
    text = TINY + """layer { name: "in2" type: "Input" top: "z" input_param { shape { dim: 3 } } }
layer { name: "cat" type: "Concat" bottom: "y" bottom: "z" top: "c" }
"""
    with pytest.raises(ShapeError, match="'cat'"):
        engine.Net(str(write(tmp_path / "cat.prototxt", text)))


def test_truncated_caffemodel_is_a_format_error_naming_the_file(tmp_path):
    net = engine.Net(str(write(tmp_path / "a.prototxt", TINY)))
    model = tmp_path / "a.caffemodel"
    net.save(model)
    data = model.read_bytes()
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="cut.caffemodel"):
        net.copy_from(cut)
    assert np.all(np.isfinite(net.params["fc"][0].data))


def test_missing_lmdb_names_the_layer_and_path(tmp_path):
    text = """layer { name: "mnist" type: "Data" top: "data" top: "label"
  data_param { source: "/nonexistent/mnist_lmdb" batch_size: 4 backend: LMDB } }"""
    with pytest.raises(IoError, match=r"mnist.*/nonexistent/mnist_lmdb"):
        engine.Net(str(write(tmp_path / "data.prototxt", text)), phase=engine.TRAIN)


def test_failed_snapshot_write_keeps_the_previous_file(tmp_path, monkeypatch):
    net = engine.Net(str(write(tmp_path / "a.prototxt", TINY)))
    model = tmp_path / "keep.caffemodel"
    net.save(model)
    before = model.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(model_io.os, "replace", explode)
    with pytest.raises(Exception, match="disk full"):
        net.save(model)
    assert model.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
