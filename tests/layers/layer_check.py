"""The one helper every layer test calls: forward against a float64 NumPy reference,
backward against central finite differences (Caffe's GradientChecker rule).

    check_layer('type: "InnerProduct" inner_product_param { num_output: 3 }',
                {"x": x}, reference=lambda inputs, params: [inputs["x"] @ params[0].T + params[1]])

The layer text is the body of a `layer { }` block without name/bottom/top: the helper
names the layer "probe", its bottoms after the keys of `inputs` and its tops `top0..`.
An Input layer feeds the bottoms; force_backward is on. Tolerances live here, in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from google.protobuf import text_format

from caffeonspark import engine
from caffeonspark.proto import caffe_pb2

FORWARD_RTOL = 1e-4  # relative to max(|reference|, 1), as Caffe's forward tests
Reference = Callable[[dict[str, np.ndarray], list[np.ndarray]], Sequence[np.ndarray]]


@dataclass(frozen=True)
class GradientSettings:
    step: float = 1e-2
    threshold: float = 1e-3
    kink: float = 0.0
    kink_range: float = -1.0
    seed: int = 1701


DEFAULT_GRADIENT = GradientSettings()


def build_probe(
    layer_text: str,
    inputs: dict[str, np.ndarray],
    num_tops: int = 1,
    phase: int = caffe_pb2.TRAIN,
    tops: Sequence[str] | None = None,
) -> engine.Net:
    """A net of Input -> the probed layer, with the given input arrays loaded."""
    net = caffe_pb2.NetParameter(name="probe_net", force_backward=True)
    feeder = net.layer.add(name="input", type="Input")
    for name, array in inputs.items():
        feeder.top.append(name)
        feeder.input_param.shape.add().dim.extend(np.shape(array))
    layer = net.layer.add()
    text_format.Parse(layer_text, layer)
    layer.name = layer.name or "probe"
    layer.bottom.extend(inputs.keys())
    layer.top.extend(tops if tops is not None else [f"top{i}" for i in range(num_tops)])
    built = engine.Net(net, phase=phase)
    for name, array in inputs.items():
        built.blobs[name].data[...] = array
    return built


def probe_tops(net: engine.Net) -> list[str]:
    last = len(net.layer_names) - 1
    return net._top_names(last)


def check_layer(
    layer_text: str,
    inputs: dict[str, np.ndarray],
    reference: Reference | None = None,
    *,
    num_tops: int = 1,
    phase: int = caffe_pb2.TRAIN,
    gradient: GradientSettings | None = DEFAULT_GRADIENT,
    check_bottoms: Sequence[str] | None = None,
    check_params: bool = True,
    forward_rtol: float = FORWARD_RTOL,
) -> engine.Net:
    """Forward against `reference` (float64), then a finite-difference gradient check.

    `check_bottoms` lists the inputs to differentiate (default: all); params are checked
    when `check_params`. Pass gradient=None for layers without a gradient (Accuracy).
    """
    seed = gradient.seed if gradient else 1701
    engine.set_random_seed(seed)
    net = build_probe(layer_text, inputs, num_tops, phase)
    last = len(net.layer_names) - 1
    engine.set_random_seed(seed)
    net.native.forward_from_to(1, last)
    tops = probe_tops(net)
    if reference is not None:
        params64 = [p.data.astype(np.float64) for p in net.params.get(net.layer_names[last], [])]
        inputs64 = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
        expected = reference(inputs64, params64)
        assert len(expected) == len(tops), f"reference gave {len(expected)} tops, layer {len(tops)}"
        for name, want in zip(tops, expected, strict=False):
            got = net.blobs[name].data
            want = np.asarray(want, dtype=np.float64)
            assert got.shape == want.shape, (
                f"top {name}: shape {got.shape} != reference {want.shape}"
            )
            scale = np.maximum(np.abs(want), 1.0)
            err = np.max(np.abs(got - want) / scale) if want.size else 0.0
            assert err < forward_rtol, f"top {name}: relative error {err:.3g} vs reference"
    if gradient is not None:
        bottoms = list(inputs) if check_bottoms is None else list(check_bottoms)
        gradient_check(net, bottoms, check_params, gradient)
    return net


def _objective(net: engine.Net, tops: list[str], last: int, seed: int) -> float:
    engine.set_random_seed(seed)
    net.native.forward_from_to(1, last)
    return sum(0.5 * float(np.sum(net.blobs[t].data.astype(np.float64) ** 2)) for t in tops)


def gradient_check(
    net: engine.Net, bottoms: list[str], check_params: bool, settings: GradientSettings
) -> None:
    """Objective 1/2 sum(top^2): top diff = top data; compare each element's analytic
    gradient with (f(x+h) - f(x-h)) / 2h, pass if |a - n| <= threshold * max(|a|, |n|, 1)."""
    last = len(net.layer_names) - 1
    tops = probe_tops(net)
    layer_name = net.layer_names[last]
    params = net.params.get(layer_name, []) if check_params else []
    for p in net.params.get(layer_name, []):
        p.diff[...] = 0
    _objective(net, tops, last, settings.seed)
    for t in tops:
        net.blobs[t].diff[...] = net.blobs[t].data
    net.native.backward_from_to(last, 1)
    targets = [(f"bottom '{b}'", net.blobs[b]) for b in bottoms]
    targets += [(f"param {i}", p) for i, p in enumerate(params)]
    analytic = {label: blob.diff.copy() for label, blob in targets}
    for label, blob in targets:
        data = blob.data.reshape(-1)
        grad = analytic[label].reshape(-1)
        for i in range(data.size):
            x = float(data[i])
            if settings.kink_range >= 0 and abs(abs(x) - settings.kink) <= settings.kink_range:
                continue
            data[i] = x + settings.step
            plus = _objective(net, tops, last, settings.seed)
            data[i] = x - settings.step
            minus = _objective(net, tops, last, settings.seed)
            data[i] = x
            numeric = (plus - minus) / (2 * settings.step)
            a = float(grad[i])
            scale = max(abs(a), abs(numeric), 1.0)
            assert abs(a - numeric) <= settings.threshold * scale, (
                f"{label} element {i}: analytic {a:.6g} vs numeric {numeric:.6g}"
            )
