"""The "Python" layer type (cpp/bindings/python_layer.h, caffeonspark/python_layer.py):
user layers from tests/layers/python_layers/cos_pylayers.py against float64 NumPy, native
layers and finite differences; a learned blob trained, snapshotted and restored by the
solver; in-place views; reshape; loss weights; errors (traceback text, layer name, kinds);
missing module/class; the prototxt's folder on the import path; param_str and phase;
CaffeOnSpark's lenet_memory "_py" net trained on the generated digits."""

from __future__ import annotations

import gc
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from layer_check import build_probe, check_layer

from caffeonspark import engine, errors, model_io
from caffeonspark.proto import caffe_pb2
from caffeonspark.solver import Solver

FIXTURES = Path(__file__).resolve().parent / "python_layers"
rng = np.random.default_rng(11)


@pytest.fixture(autouse=True)
def fixture_modules(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))


def python_layer(layer: str, param_str: str = "", module: str = "cos_pylayers") -> str:
    return (f'type: "Python" python_param {{ module: "{module}" layer: "{layer}" '
            f"param_str: '{param_str}' }}")


def net_from_text(text: str, tmp_path: Path | None = None, phase=engine.TRAIN,
                  name: str = "net.prototxt") -> engine.Net:
    if tmp_path is None:
        param = caffe_pb2.NetParameter()
        text_format.Parse(text, param)
        return engine.Net(param, phase=phase)
    path = tmp_path / name
    path.write_text(text)
    return engine.Net(str(path), phase=phase)


INPUT_2 = ('layer { name: "in" type: "Input" top: "a" top: "b" '
           'input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 3 } } }\n')
INPUT_1 = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'


# -- forward and backward against NumPy, finite differences and the native layers ----------


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2)])
def test_euclidean_loss_in_python_against_numpy_and_finite_differences(shape):
    a = rng.normal(size=shape).astype(np.float32)
    b = rng.normal(size=shape).astype(np.float32)
    check_layer(
        python_layer("EuclideanLoss"),
        {"a": a, "b": b},
        lambda x, p: [np.array(np.sum((x["a"] - x["b"]) ** 2) / shape[0] / 2)],
    )


def test_euclidean_loss_in_python_equals_the_native_layer():
    a = rng.normal(size=(4, 3)).astype(np.float32)
    b = rng.normal(size=(4, 3)).astype(np.float32)
    results = []
    for layer in ('type: "EuclideanLoss"', python_layer("EuclideanLoss") + " loss_weight: 1"):
        net = build_probe(layer, {"a": a, "b": b}, tops=["loss"])
        loss = net.native.forward()
        net.native.backward()
        results.append((loss, net.blobs["loss"].data.copy(), net.blobs["a"].diff.copy(),
                        net.blobs["b"].diff.copy()))
    (native_loss, *native), (python_loss, *python) = results
    assert python_loss == pytest.approx(native_loss, rel=1e-6)
    assert python_loss == pytest.approx(np.sum((a.astype(np.float64) - b) ** 2) / 8, rel=1e-6)
    for mine, theirs in zip(python, native, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-7)


def test_softmax_loss_in_python_equals_softmax_with_loss():
    x = rng.normal(size=(5, 4)).astype(np.float32)
    label = np.array([0, 3, 1, 1, 2], np.float32)
    results = []
    for layer in ('type: "SoftmaxWithLoss"', python_layer("SoftmaxLoss") + " loss_weight: 1"):
        net = build_probe(layer, {"x": x, "label": label}, tops=["loss"])
        loss = net.native.forward()
        net.native.backward()
        results.append((loss, net.blobs["x"].diff.copy()))
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-5)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-4, atol=1e-7)


def test_learned_blob_gradients_against_finite_differences():
    x = rng.normal(size=(3, 2)).astype(np.float32)
    net = check_layer(
        python_layer("LearnedScale", '{"init": 1.5}'),
        {"x": x},
        lambda inputs, params: [params[0][0] * inputs["x"]],
    )
    (blob,) = net.params["probe"]
    assert blob.shape == (1,) and blob.data[0] == np.float32(1.5)


# -- loss weights ---------------------------------------------------------------------------


def test_loss_weight_on_a_python_top_counts_and_scales_the_gradient():
    a = rng.normal(size=(4, 3)).astype(np.float32)
    b = rng.normal(size=(4, 3)).astype(np.float32)
    plain = build_probe(python_layer("EuclideanLoss"), {"a": a, "b": b}, tops=["loss"])
    assert plain.native.forward() == 0  # a Python top is no loss unless loss_weight says so
    assert plain.native.blob_loss_weights[plain.native.blob_names.index("loss")] == 0
    weighted = build_probe(python_layer("EuclideanLoss") + " loss_weight: 2.5", {"a": a, "b": b},
                           tops=["loss"])
    value = float(np.sum((a.astype(np.float64) - b) ** 2) / 8)
    assert weighted.native.forward() == pytest.approx(2.5 * value, rel=1e-6)
    weighted.native.backward()
    np.testing.assert_allclose(weighted.blobs["a"].diff, 2.5 * (a - b) / 4, rtol=1e-5)


# -- views, in place, reshape ---------------------------------------------------------------


def test_in_place_writes_land_in_the_engine():
    net = net_from_text(INPUT_1 + 'layer { name: "add" bottom: "x" top: "x" '
                        + python_layer("InPlaceAddOne") + ' }\n')
    x = rng.normal(size=(2, 3)).astype(np.float32)
    net.blobs["x"].data[...] = x
    net.native.forward_from_to(1, 1)
    np.testing.assert_array_equal(net.blobs["x"].data, x + 1)
    assert list(net.blobs) == ["x"]


def test_reshape_follows_the_bottom_every_forward():
    net = net_from_text(INPUT_1 + 'layer { name: "scale" bottom: "x" top: "y" '
                        + python_layer("LearnedScale", '{"init": -2}') + ' }\n')
    assert net.blobs["y"].shape == (2, 3)
    x = rng.normal(size=(5, 1, 2)).astype(np.float32)
    out = net.forward(x=x)["y"]
    assert out.shape == (5, 1, 2)
    np.testing.assert_allclose(out, -2 * x)


# -- param_str, phase, construction -----------------------------------------------------------


@pytest.mark.parametrize("phase", [engine.TRAIN, engine.TEST])
def test_param_str_phase_and_layer_param(phase):
    text = (INPUT_1 + 'layer { name: "probe" bottom: "x" top: "p" '
            + python_layer("Probe", "seven c") + " }\n")
    net = net_from_text(text, phase=phase)
    net.native.forward()
    # [phase, len(param_str), times setup ran]
    np.testing.assert_array_equal(net.blobs["p"].data, [phase, 7, 1])


def test_module_is_imported_from_the_prototxts_folder(tmp_path):
    (tmp_path / "beside_prototxt_layer.py").write_text(
        "from caffeonspark.caffe import Layer\n"
        "class Negate(Layer):\n"
        "    def reshape(self, bottom, top):\n"
        "        top[0].reshape(*bottom[0].shape)\n"
        "    def forward(self, bottom, top):\n"
        "        top[0].data[...] = -bottom[0].data\n"
        "    def backward(self, top, propagate_down, bottom):\n"
        "        bottom[0].diff[...] = -top[0].diff\n")
    text = (INPUT_1 + 'layer { name: "neg" bottom: "x" top: "y" '
            + python_layer("Negate", module="beside_prototxt_layer") + " }\n")
    net = net_from_text(text, tmp_path)
    np.testing.assert_array_equal(net.forward(x=np.ones((2, 3)))["y"], -np.ones((2, 3)))
    assert str(tmp_path) not in sys.path  # on the path only while the module loaded
    with pytest.raises(errors.ConfigError, match="'elsewhere_prototxt_layer' was found neither"):
        net_from_text(text.replace("beside_prototxt", "elsewhere_prototxt"), tmp_path)


def test_missing_module_class_or_methods_is_a_config_error(tmp_path):
    def build(layer, module="cos_pylayers"):
        text = (INPUT_1 + 'layer { name: "mine" bottom: "x" top: "y" '
                + python_layer(layer, module=module) + " }\n")
        return net_from_text(text, tmp_path)

    with pytest.raises(errors.ConfigError, match=r"layer 'mine' \(Python\) at .*net.prototxt:2: "
                       r"python_param.module 'no_such_module_xyz' was found neither on sys.path "
                       r"or in the prototxt's folder"):
        build("X", module="no_such_module_xyz")
    with pytest.raises(errors.ConfigError, match=r"layer 'mine'.*module 'cos_pylayers' "
                       r"\(.*cos_pylayers.py\) has no class 'Missing'"):
        build("Missing")
    with pytest.raises(errors.ConfigError, match=r"'cos_pylayers.NOT_A_CLASS'.* is not a class"):
        build("NOT_A_CLASS")
    with pytest.raises(errors.ConfigError, match=r"layer 'mine'.*NoForward has no method "
                       r"reshape, forward, backward"):
        build("NoForward")
    (tmp_path / "broken_pylayer_mod.py").write_text("import no_such_dependency_xyz\n")
    with pytest.raises(errors.ConfigError, match=r"(?s)layer 'mine'.*importing python_param."
                       r"module 'broken_pylayer_mod' failed:\nTraceback.*broken_pylayer_mod.py"
                       r".*No module named 'no_such_dependency_xyz'"):
        build("X", module="broken_pylayer_mod")
    text = INPUT_1 + 'layer { name: "mine" type: "Python" bottom: "x" top: "y" }\n'
    with pytest.raises(errors.ConfigError, match="must name both module and layer"):
        net_from_text(text)


# -- errors from the user's code --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "kind"),
    [("setup", errors.ConfigError), ("reshape", errors.ShapeError),
     ("forward", errors.InternalError), ("backward", errors.InternalError)],
)
def test_exceptions_keep_the_traceback_and_name_the_layer(tmp_path, method, kind):
    text = ('force_backward: true\n' + INPUT_1 + 'layer { name: "failing" bottom: "x" top: "y" '
            + python_layer("Fail", method) + " }\n")
    pattern = (rf"(?s)layer 'failing' \(Python\) at .*net.prototxt:3: "
               rf"cos_pylayers.Fail.{method} raised ZeroDivisionError: division by zero\n"
               r"Traceback \(most recent call last\):.*cos_pylayers.py.*_maybe_fail.*1 / 0")
    with pytest.raises(kind, match=pattern):
        net = net_from_text(text, tmp_path)
        net.native.forward()
        net.native.backward()


def test_keyboard_interrupt_passes_through():
    net = net_from_text(INPUT_1 + 'layer { name: "stop" bottom: "x" top: "y" '
                        + python_layer("Fail", "interrupt forward") + " }\n")
    with pytest.raises(KeyboardInterrupt):
        net.native.forward()


def test_caffeonspark_errors_keep_their_kind():
    text = ('layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 } '
            'shape { dim: 3 } } }\nlayer { name: "loss" bottom: "a" bottom: "b" top: "l" '
            + python_layer("EuclideanLoss") + " }\n")
    # The layer's ValueError in reshape is a ShapeError (the reshape fallback) ...
    with pytest.raises(errors.ShapeError, match=r"(?s)layer 'loss'.*ValueError: bottoms differ"):
        net_from_text(text)
    # ... and an engine error raised inside user code keeps its own kind.
    bad_reshape = INPUT_1 + ('layer { name: "late" bottom: "x" top: "y" '
                             + python_layer("AddBlobLate") + " }\n")
    net = net_from_text(bad_reshape)
    with pytest.raises(errors.ConfigError, match=r"(?s)layer 'late'.*AddBlobLate.forward raised "
                       r"ConfigError: .*parameter blobs can only be added in setup"):
        net.native.forward()


def test_blobs_kept_by_a_layer_refuse_use_after_the_net_is_gone():
    import cos_pylayers

    net = net_from_text(INPUT_1 + 'layer { name: "keep" bottom: "x" top: "y" '
                        + python_layer("KeepBlobs") + " }\n")
    kept = cos_pylayers.KEPT[-1]
    assert kept[0].shape == (2, 3) and kept[1].shape == (2, 3)
    net.close()
    del net
    gc.collect()
    with pytest.raises(errors.ConfigError, match="used after its net was destroyed"):
        kept[0].data.sum()


# -- solver: a learned Python blob, snapshots, threads ----------------------------------------


SCALE_NET = """
name: "fit_scale"
layer { name: "in" type: "Input" top: "x" top: "t"
        input_param { shape { dim: 8 dim: 2 } shape { dim: 8 dim: 2 } } }
layer { name: "scale" type: "Python" bottom: "x" top: "y"
        python_param { module: "cos_pylayers" layer: "LearnedScale" param_str: '{"init": 0.5}' } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""


def test_solver_trains_snapshots_and_restores_a_python_blob(tmp_path):
    (tmp_path / "fit.prototxt").write_text(SCALE_NET)
    solver_param = caffe_pb2.SolverParameter(
        net=str(tmp_path / "fit.prototxt"), base_lr=0.1, lr_policy="fixed", momentum=0.5,
        max_iter=60, display=0, snapshot_after_train=True,
        snapshot_prefix=str(tmp_path / "fit"),
    )
    solver = Solver(solver_param)
    data = np.random.default_rng(5)

    def feed(net, index):
        x = data.normal(size=(8, 2)).astype(np.float32)
        net.blobs["x"].data[...] = x
        net.blobs["t"].data[...] = 3 * x

    solver.set_forward_hook(feed)
    solver.solve()
    learned = float(solver.net.params["scale"][0].data[0])
    assert learned == pytest.approx(3.0, abs=1e-3)
    weights = model_io.read_caffemodel(tmp_path / "fit_iter_60.caffemodel")
    saved = {layer.name: layer for layer in weights.layer}
    assert model_io.blob_to_array(saved["scale"].blobs[0])[0] == pytest.approx(learned)
    fresh = engine.Net(str(tmp_path / "fit.prototxt"), phase=engine.TEST)
    assert fresh.params["scale"][0].data[0] == np.float32(0.5)
    fresh.copy_from(tmp_path / "fit_iter_60.caffemodel")
    assert fresh.params["scale"][0].data[0] == np.float32(learned)


def test_nets_with_python_layers_run_in_threads_at_once():
    nets = [net_from_text(INPUT_1 + 'layer { name: "s" bottom: "x" top: "y" '
                          + python_layer("LearnedScale", f'{{"init": {k}}}') + " }\n")
            for k in (2, 3)]
    failures: list[BaseException] = []

    def run(net, factor):
        try:
            for _ in range(200):
                net.blobs["x"].data[...] = 1
                net.native.forward()  # releases the GIL; the layer takes it per call
                assert np.all(net.blobs["y"].data == factor)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(n, k)) for n, k in zip(nets, (2, 3), strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads) and failures == []


# -- CaffeOnSpark's lenet_memory "_py" net and solver ----------------------------------------


@pytest.fixture(scope="module")
def digits_lmdb(tmp_path_factory):
    from caffeonspark.data.convert_mnist import prepare_mnist_lmdb

    return prepare_mnist_lmdb(tmp_path_factory.mktemp("digits"), n_train=3000, n_test=500)


def lenet_py_solver(anchors, digits_lmdb, tmp_path, loss_layer=None):
    """CaffeOnSpark's test_lenet_memory_{solver,train_test}_py files beside each other, the
    MemoryData sources pointed at the generated digits; `loss_layer` replaces the loss."""
    net = model_io.read_net_prototxt(anchors / "caffeonspark"
                                     / "test_lenet_memory_train_test_py.prototxt")
    for layer in net.layer:
        if layer.type == "MemoryData":
            train = layer.include[0].phase == caffe_pb2.TRAIN
            layer.memory_data_param.source = str(digits_lmdb.train if train else digits_lmdb.test)
        if layer.name == "loss" and loss_layer is not None:
            layer.type = "Python"
            layer.loss_weight.append(1)
            layer.python_param.module, layer.python_param.layer = "cos_pylayers", loss_layer
    solver_text = (anchors / "caffeonspark" / "test_lenet_memory_solver_py.prototxt").read_text()
    (tmp_path / "lenet_memory_train_test_py.prototxt").write_text(text_format.MessageToString(net))
    (tmp_path / "solver.prototxt").write_text(solver_text)
    return tmp_path / "solver.prototxt"


def test_caffeonspark_lenet_memory_py_solver_trains(anchors, digits_lmdb, tmp_path):
    path = lenet_py_solver(anchors, digits_lmdb, tmp_path)
    assert "engine: CAFFE" in path.with_name("lenet_memory_train_test_py.prototxt").read_text()

    def edit(param):
        param.max_iter, param.test_interval, param.test_iter[0] = 300, 300, 5
        param.snapshot_prefix = str(tmp_path / "lenet")

    solver = Solver(str(path), edit)
    first = solver.test(0)
    losses = []
    for _ in range(300):
        solver.step(1)
        losses.append(solver.native.last_loss)
    last = solver.test(0)
    assert np.mean(losses[-20:]) < 0.25 * np.mean(losses[:20])
    assert first["accuracy"][0] < 0.3 and last["accuracy"][0] >= 0.85, (first, last)
    solver.net.close()
    for net in solver.test_nets:
        net.close()


def test_lenet_memory_py_trains_with_a_python_loss_layer(anchors, digits_lmdb, tmp_path):
    path = lenet_py_solver(anchors, digits_lmdb, tmp_path, loss_layer="SoftmaxLoss")

    def edit(param):
        param.max_iter, param.test_interval, param.test_iter[0] = 200, 200, 5
        param.snapshot_prefix = str(tmp_path / "lenet")

    solver = Solver(str(path), edit)
    assert solver.net.layer_types[-1] == "Python"
    losses = []
    for _ in range(200):
        solver.step(1)
        losses.append(solver.native.last_loss)
    assert np.mean(losses[-20:]) < 0.25 * np.mean(losses[:20]) and np.isfinite(losses).all()
    assert solver.test(0)["accuracy"][0] >= 0.8
    solver.net.close()
    for net in solver.test_nets:
        net.close()


def test_two_data_parallel_ranks_train_python_layers(anchors, digits_lmdb, tmp_path, monkeypatch):
    """`caffeonspark train -world_size 2`: each rank process imports the layers' module from
    the prototxt's folder, and the learned Python blob is reduced and updated like any."""
    import shutil

    import caffeonspark
    from caffeonspark import cli

    shutil.copy(FIXTURES / "cos_pylayers.py", tmp_path / "ranks_pylayers.py")
    path = lenet_py_solver(anchors, digits_lmdb, tmp_path, loss_layer="SoftmaxLoss")
    net_path = path.with_name("lenet_memory_train_test_py.prototxt")
    net = model_io.read_net_prototxt(net_path)
    loss = next(layer for layer in net.layer if layer.name == "loss")
    loss.python_param.module = "ranks_pylayers"
    loss.bottom[0] = "scaled"
    scale = caffe_pb2.LayerParameter(name="pyscale", type="Python", bottom=["ip2"],
                                     top=["scaled"])
    scale.python_param.module, scale.python_param.layer = "ranks_pylayers", "LearnedScale"
    scale.python_param.param_str = '{"init": 1.0}'
    index = [layer.name for layer in net.layer].index("loss")
    layers = list(net.layer)
    layers.insert(index, scale)
    del net.layer[:]
    net.layer.extend(layers)
    net_path.write_text(text_format.MessageToString(net))
    solver = model_io.read_solver_prototxt(path)
    solver.max_iter, solver.test_interval, solver.display = 20, 0, 0
    solver.snapshot_prefix = str(tmp_path / "snap")
    path.write_text(text_format.MessageToString(solver))
    monkeypatch.setenv("PYTHONPATH", str(Path(caffeonspark.__file__).resolve().parents[1]))
    assert cli.main(["train", "-solver", str(path), "-world_size", "2", "-threads", "1"]) == 0
    saved = {layer.name: layer for layer in
             model_io.read_caffemodel(tmp_path / "snap_iter_20.caffemodel").layer}
    learned = model_io.blob_to_array(saved["pyscale"].blobs[0])
    assert learned.shape == (1,) and learned[0] != np.float32(1.0) and np.isfinite(learned[0])
