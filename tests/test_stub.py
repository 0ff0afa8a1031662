"""The shipped typing stub (_engine.pyi) names exactly what the native module exports;
regenerate it with tools/regen_stub.sh after changing a binding."""

import ast
from pathlib import Path

import caffeonspark
from caffeonspark._native import _engine


def test_stub_lists_every_public_name():
    stub = Path(caffeonspark.__file__).with_name("_engine.pyi")
    tree = ast.parse(stub.read_text())
    exported = next(
        node.value for node in tree.body
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "__all__"
    )
    names = {element.value for element in exported.elts}
    public = {name for name in dir(_engine) if not name.startswith("_")}
    assert names == public, "run tools/regen_stub.sh"
