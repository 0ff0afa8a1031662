"""LSTMUnit, LSTM and RNN (cpp/layers/recurrent.cc): forward against float64 NumPy
references of Caffe's unrolled nets, gradients by finite differences (inputs, static input,
exposed initial states, every parameter blob), sequence restarts where cont is 0, the state
carried between Forward calls, expose_hidden, Caffe's blob order and shapes, shape errors,
and real Caffe's LSTM probe."""

from __future__ import annotations

import numpy as np
import pytest
from caffe_ref import check_probe
from layer_check import build_probe, check_layer

from caffeonspark import engine
from caffeonspark.errors import ConfigError, ShapeError
from caffeonspark.proto import caffe_pb2

UNIFORM = 'weight_filler { type: "uniform" min: -0.5 max: 0.5 } bias_filler { type: "uniform" min: -0.5 max: 0.5 }'


def _normal(shape, seed):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _cont(T, N, restarts=()):
    """(T, N) continuation flags: 0 at t = 0 and at every (t, n) in `restarts`."""
    cont = np.ones((T, N), np.float32)
    cont[0] = 0
    for t, n in restarts:
        cont[t, n] = 0
    return cont


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lstm_reference(x, cont, params, H, x_static=None, h0=None, c0=None):
    """Caffe's unrolled LSTM in float64; returns h (T, N, H), h_T and c_T (1, N, H)."""
    T, N = cont.shape
    xs = x.reshape(T, N, -1)
    w_x, b = params[0], params[1]
    w_static = params[2] if x_static is not None else None
    w_h = params[3 if x_static is not None else 2]
    h = np.zeros((N, H)) if h0 is None else h0.reshape(N, H)
    c = np.zeros((N, H)) if c0 is None else c0.reshape(N, H)
    out = []
    for t in range(T):
        k = cont[t][:, None]
        a = xs[t] @ w_x.T + b + (k * h) @ w_h.T
        if x_static is not None:
            a = a + x_static.reshape(N, -1) @ w_static.T
        i, f, o, g = (_sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), _sigmoid(a[:, 2 * H:3 * H]),
                      np.tanh(a[:, 3 * H:]))
        c = k * f * c + i * g
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out), h[None], c[None]


def rnn_reference(x, cont, params, H, x_static=None, h0=None):
    """Caffe's unrolled RNN in float64; returns o (T, N, H) and h_T (1, N, H)."""
    T, N = cont.shape
    xs = x.reshape(T, N, -1)
    w_x, b_h = params[0], params[1]
    rest = params[2:]
    w_static = None
    if x_static is not None:
        w_static, rest = rest[0], rest[1:]
    w_hh, w_ho, b_o = rest
    h = np.zeros((N, H)) if h0 is None else h0.reshape(N, H)
    out = []
    for t in range(T):
        a = xs[t] @ w_x.T + b_h + (cont[t][:, None] * h) @ w_hh.T
        if x_static is not None:
            a = a + x_static.reshape(N, -1) @ w_static.T
        h = np.tanh(a)
        out.append(np.tanh(h @ w_ho.T + b_o))
    return np.stack(out), h[None]


# ---- LSTMUnit ------------------------------------------------------------------------------


def lstm_unit_reference(inp, _params):
    c_prev, a, cont = inp["c_prev"][0], inp["gates"][0], inp["cont"][0][:, None]
    H = c_prev.shape[1]
    i, f, o, g = (_sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), _sigmoid(a[:, 2 * H:3 * H]),
                  np.tanh(a[:, 3 * H:]))
    c = cont * f * c_prev + i * g
    return [c[None], (o * np.tanh(c))[None]]


def test_lstm_unit_forward_and_gradient():
    N, H = 3, 4
    inputs = {
        "c_prev": _normal((1, N, H), 1),
        "gates": _normal((1, N, 4 * H), 2),
        "cont": np.array([[1, 0, 1]], np.float32),
    }
    check_layer('type: "LSTMUnit"', inputs, lstm_unit_reference, num_tops=2,
                check_bottoms=["c_prev", "gates"])


def test_lstm_unit_shape_errors():
    good = {"c_prev": _normal((1, 2, 3), 1), "gates": _normal((1, 2, 12), 2),
            "cont": np.ones((1, 2), np.float32)}
    with pytest.raises(ShapeError, match="gate input"):
        build_probe('type: "LSTMUnit"', {**good, "gates": _normal((1, 2, 11), 2)}, num_tops=2)
    with pytest.raises(ShapeError, match="continuation"):
        build_probe('type: "LSTMUnit"', {**good, "cont": np.ones((2, 1), np.float32)}, num_tops=2)
    with pytest.raises(ShapeError, match="previous cell state"):
        build_probe('type: "LSTMUnit"', {**good, "c_prev": _normal((2, 1, 3), 1)}, num_tops=2)


# ---- LSTM ----------------------------------------------------------------------------------


def test_lstm_forward_and_gradient_with_restarts():
    T, N, H = 4, 2, 3
    inputs = {"x": _normal((T, N, 2, 2), 3), "cont": _cont(T, N, restarts=[(2, 1)])}
    net = check_layer(
        f'type: "LSTM" recurrent_param {{ num_output: {H} {UNIFORM} }}',
        inputs,
        lambda inp, p: [lstm_reference(inp["x"], inp["cont"], p, H)[0]],
        check_bottoms=["x"],
    )
    shapes = [p.shape for p in net.params["probe"]]
    assert shapes == [(4 * H, 4), (4 * H,), (4 * H, H)]  # W_xc, b_c, W_hc


def test_lstm_static_input_forward_and_gradient():
    T, N, H = 3, 2, 2
    inputs = {"x": _normal((T, N, 3), 4), "cont": _cont(T, N), "x_static": _normal((N, 2, 2), 5)}
    net = check_layer(
        f'type: "LSTM" recurrent_param {{ num_output: {H} {UNIFORM} }}',
        inputs,
        lambda inp, p: [lstm_reference(inp["x"], inp["cont"], p, H, x_static=inp["x_static"])[0]],
        check_bottoms=["x", "x_static"],
    )
    shapes = [p.shape for p in net.params["probe"]]
    assert shapes == [(4 * H, 3), (4 * H,), (4 * H, 4), (4 * H, H)]  # W_xc, b_c, W_xc_static, W_hc


def test_lstm_expose_hidden_forward_and_gradient():
    T, N, H = 3, 2, 2
    inputs = {
        "x": _normal((T, N, 3), 6),
        "cont": np.array([[1, 0], [1, 1], [0, 1]], np.float32),  # h0/c0 matter for stream 0
        "h0": _normal((1, N, H), 7),
        "c0": _normal((1, N, H), 8),
    }

    def reference(inp, p):
        return list(lstm_reference(inp["x"], inp["cont"], p, H, h0=inp["h0"], c0=inp["c0"]))

    check_layer(
        f'type: "LSTM" recurrent_param {{ num_output: {H} expose_hidden: true {UNIFORM} }}',
        inputs, reference, num_tops=3, check_bottoms=["x", "h0", "c0"],
    )


def test_lstm_expose_hidden_with_static_input():
    T, N, H = 2, 2, 2
    inputs = {
        "x": _normal((T, N, 2), 9),
        "cont": np.ones((T, N), np.float32),
        "x_static": _normal((N, 3), 10),
        "h0": _normal((1, N, H), 11),
        "c0": _normal((1, N, H), 12),
    }

    def reference(inp, p):
        return list(lstm_reference(inp["x"], inp["cont"], p, H, x_static=inp["x_static"],
                                   h0=inp["h0"], c0=inp["c0"]))

    check_layer(
        f'type: "LSTM" recurrent_param {{ num_output: {H} expose_hidden: true {UNIFORM} }}',
        inputs, reference, num_tops=3, check_bottoms=["x", "x_static", "h0", "c0"],
    )


def test_lstm_restart_equals_a_fresh_sequence():
    """Where cont is 0 the stream starts over: its outputs from there on equal a run of that
    tail alone."""
    T, N, H = 5, 2, 3
    x = _normal((T, N, 4), 13)
    cont = _cont(T, N, restarts=[(3, 0)])
    net = build_probe(f'type: "LSTM" recurrent_param {{ num_output: {H} {UNIFORM} }}',
                      {"x": x, "cont": cont})
    net.forward()
    whole = net.blobs["top0"].data.copy()
    tail = build_probe(f'type: "LSTM" recurrent_param {{ num_output: {H} {UNIFORM} }}',
                       {"x": x[3:], "cont": _cont(2, N)})
    for mine, theirs in zip(tail.params["probe"], net.params["probe"], strict=True):
        mine.data[...] = theirs.data
    tail.forward()
    np.testing.assert_allclose(whole[3:, 0], tail.blobs["top0"].data[:, 0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(whole[3:, 1], tail.blobs["top0"].data[:, 1])


def test_lstm_state_carries_between_forwards():
    """Without expose_hidden the final (h, c) of one Forward start the next (Caffe's rule):
    two forwards of halves equal one forward of the whole sequence."""
    T, N, H = 6, 3, 4
    x = _normal((T, N, 2), 14)
    cont = _cont(T, N, restarts=[(4, 2)])
    layer = f'type: "LSTM" recurrent_param {{ num_output: {H} {UNIFORM} }}'
    whole = build_probe(layer, {"x": x, "cont": cont})
    whole.forward()
    halves = build_probe(layer, {"x": x[:3], "cont": cont[:3]})
    for mine, theirs in zip(halves.params["probe"], whole.params["probe"], strict=True):
        mine.data[...] = theirs.data
    first = halves.forward(x=x[:3], cont=cont[:3])["top0"]
    second = halves.forward(x=x[3:], cont=cont[3:])["top0"]
    np.testing.assert_allclose(np.concatenate([first, second]), whole.blobs["top0"].data,
                               rtol=1e-5, atol=1e-6)
    params = [p.data.astype(np.float64) for p in whole.params["probe"]]
    np.testing.assert_allclose(second, lstm_reference(x, cont, params, H)[0][3:], rtol=1e-4,
                               atol=1e-5)
    # A new batch size starts from zeros again.
    fresh = halves.forward(x=x[:2, :2], cont=np.ones((2, 2), np.float32))["top0"]
    expected = lstm_reference(x[:2, :2], np.ones((2, 2)), params, H)[0]
    np.testing.assert_allclose(fresh, expected, rtol=1e-4, atol=1e-5)


def test_lstm_large_batch_runs_the_parallel_path():
    T, N, D, H = 3, 64, 5, 160
    x = _normal((T, N, D), 15)
    cont = _cont(T, N, restarts=[(1, 5), (2, 9)])
    net = build_probe(f'type: "LSTM" recurrent_param {{ num_output: {H} {UNIFORM} }}',
                      {"x": x, "cont": cont})
    net.forward()
    params = [p.data.astype(np.float64) for p in net.params["probe"]]
    want = lstm_reference(x.astype(np.float64), cont, params, H)[0]
    np.testing.assert_allclose(net.blobs["top0"].data, want, rtol=1e-4, atol=1e-5)


def test_lstm_weights_round_trip_through_a_caffemodel(tmp_path):
    T, N, H = 2, 2, 3
    inputs = {"x": _normal((T, N, 3), 16), "cont": _cont(T, N), "x_static": _normal((N, 2), 17)}
    layer = f'type: "LSTM" recurrent_param {{ num_output: {H} {UNIFORM} }}'
    engine.set_random_seed(3)
    source = build_probe(layer, inputs)
    source.forward()
    path = tmp_path / "lstm.caffemodel"
    source.save(path)
    engine.set_random_seed(4)
    loaded = build_probe(layer, inputs)
    loaded.copy_from(path)
    loaded.forward()
    np.testing.assert_array_equal(loaded.blobs["top0"].data, source.blobs["top0"].data)


def test_lstm_matches_caffe_probe():
    check_probe("lstm")


# ---- RNN -----------------------------------------------------------------------------------


def test_rnn_forward_and_gradient_with_restarts():
    T, N, H = 4, 2, 3
    inputs = {"x": _normal((T, N, 3), 18), "cont": _cont(T, N, restarts=[(2, 0)])}
    net = check_layer(
        f'type: "RNN" recurrent_param {{ num_output: {H} {UNIFORM} }}',
        inputs,
        lambda inp, p: [rnn_reference(inp["x"], inp["cont"], p, H)[0]],
        check_bottoms=["x"],
    )
    shapes = [p.shape for p in net.params["probe"]]
    assert shapes == [(H, 3), (H,), (H, H), (H, H), (H,)]  # W_xh, b_h, W_hh, W_ho, b_o


def test_rnn_static_input_and_expose_hidden():
    T, N, H = 3, 2, 2
    inputs = {
        "x": _normal((T, N, 2), 19),
        "cont": np.array([[1, 0], [1, 1], [1, 0]], np.float32),
        "x_static": _normal((N, 3), 20),
        "h0": _normal((1, N, H), 21),
    }

    def reference(inp, p):
        return list(rnn_reference(inp["x"], inp["cont"], p, H, x_static=inp["x_static"],
                                  h0=inp["h0"]))

    net = check_layer(
        f'type: "RNN" recurrent_param {{ num_output: {H} expose_hidden: true {UNIFORM} }}',
        inputs, reference, num_tops=2, check_bottoms=["x", "x_static", "h0"],
    )
    shapes = [p.shape for p in net.params["probe"]]
    # W_xh, b_h, W_xh_static, W_hh, W_ho, b_o
    assert shapes == [(H, 2), (H,), (H, 3), (H, H), (H, H), (H,)]


def test_rnn_state_carries_between_forwards():
    T, N, H = 4, 2, 3
    x = _normal((T, N, 2), 22)
    cont = np.ones((T, N), np.float32)
    layer = f'type: "RNN" recurrent_param {{ num_output: {H} {UNIFORM} }}'
    net = build_probe(layer, {"x": x[:2], "cont": cont[:2]})
    first = net.forward(x=x[:2], cont=cont[:2])["top0"]
    second = net.forward(x=x[2:], cont=cont[2:])["top0"]
    params = [p.data.astype(np.float64) for p in net.params["probe"]]
    want = rnn_reference(x, cont, params, H)[0]
    np.testing.assert_allclose(np.concatenate([first, second]), want, rtol=1e-4, atol=1e-5)


# ---- defaults, errors and the gradient contract --------------------------------------------


@pytest.mark.parametrize("kind", ["LSTM", "RNN"])
def test_default_fillers_are_zero_and_no_gradient_reaches_cont(kind):
    T, N, H = 2, 2, 2
    net = build_probe(f'type: "{kind}" recurrent_param {{ num_output: {H} }}',
                      {"x": _normal((T, N, 2), 23), "cont": _cont(T, N)})
    for blob in net.params["probe"]:
        np.testing.assert_array_equal(blob.data, 0)
    net.blobs["cont"].diff[...] = 7
    net.forward()
    net.blobs["top0"].diff[...] = 1
    net.backward()
    # force_backward skips cont (AllowForceBackward is false for it), so it is untouched.
    np.testing.assert_array_equal(net.blobs["cont"].diff, 7)


def test_parameter_gradients_accumulate():
    T, N, H = 2, 2, 2
    net = build_probe(f'type: "LSTM" recurrent_param {{ num_output: {H} {UNIFORM} }}',
                      {"x": _normal((T, N, 2), 24), "cont": _cont(T, N)})
    net.forward()
    net.blobs["top0"].diff[...] = _normal((T, N, H), 25)
    for p in net.params["probe"]:
        p.diff[...] = 0
    net.backward()
    once = [p.diff.copy() for p in net.params["probe"]]
    net.backward()
    for p, d in zip(net.params["probe"], once, strict=True):
        np.testing.assert_allclose(p.diff, 2 * d, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("layer", "inputs", "error", "match"),
    [
        ('type: "LSTM" recurrent_param { num_output: 0 }',
         {"x": np.zeros((2, 1, 3)), "cont": np.zeros((2, 1))}, ConfigError, "num_output"),
        ('type: "LSTM" recurrent_param { num_output: 2 }',
         {"x": np.zeros((2, 1, 3)), "cont": np.zeros((2, 2))}, ShapeError, "cont"),
        ('type: "RNN" recurrent_param { num_output: 2 }',
         {"x": np.zeros((2,)), "cont": np.zeros((2, 1))}, ShapeError, "at least 2 axes"),
        ('type: "LSTM" recurrent_param { num_output: 2 }',
         {"x": np.zeros((2, 3, 1)), "cont": np.zeros((2, 3)), "s": np.zeros((2, 4))},
         ShapeError, "static input"),
        ('type: "LSTM" recurrent_param { num_output: 2 expose_hidden: true }',
         {"x": np.zeros((2, 1, 3)), "cont": np.zeros((2, 1)), "h0": np.zeros((1, 1, 2))},
         ConfigError, "initial states h0, c0"),
        ('type: "RNN" recurrent_param { num_output: 2 expose_hidden: true }',
         {"x": np.zeros((2, 1, 3)), "cont": np.zeros((2, 1)), "h0": np.zeros((1, 2, 2))},
         ShapeError, "initial state"),
        ('type: "RNN" recurrent_param { num_output: 2 }',
         {"x": np.zeros((2, 1, 3)), "cont": np.zeros((2, 1)), "a": np.zeros((1, 3)),
          "b": np.zeros((1, 3))}, ConfigError, "bottoms"),
    ],
)
def test_bad_configurations_name_the_layer(layer, inputs, error, match):
    tops = 2 if "RNN" in layer and "expose_hidden" in layer else 1
    with pytest.raises(error, match=match) as info:
        build_probe(layer, inputs, num_tops=tops)
    assert "probe" in str(info.value)


def test_expose_hidden_needs_the_final_state_tops():
    with pytest.raises(ConfigError, match="final states hT, cT"):
        build_probe('type: "LSTM" recurrent_param { num_output: 2 expose_hidden: true }',
                    {"x": np.zeros((2, 1, 3)), "cont": np.zeros((2, 1)),
                     "h0": np.zeros((1, 1, 2)), "c0": np.zeros((1, 1, 2))})


def test_lstm_input_feature_count_must_match_the_weights():
    net = build_probe('type: "LSTM" recurrent_param { num_output: 2 }',
                      {"x": np.zeros((2, 1, 3)), "cont": np.zeros((2, 1))})
    with pytest.raises(ShapeError, match="features per step"):
        net.forward(x=np.zeros((2, 1, 4)))


def test_lstm_unit_refuses_a_gradient_for_cont():
    net = caffe_pb2.NetParameter(name="unit", force_backward=True)
    feeder = net.layer.add(name="input", type="Input", top=["c", "a", "k"])
    for shape in [(1, 1, 2), (1, 1, 8), (1, 1)]:
        feeder.input_param.shape.add().dim.extend(shape)
    unit = net.layer.add(name="unit", type="LSTMUnit", bottom=["c", "a", "k"], top=["c1", "h1"],
                         loss_weight=[0, 1])
    unit.propagate_down.extend([True, True, True])
    built = engine.Net(net, phase=engine.TRAIN)
    built.forward()
    with pytest.raises(ConfigError, match="sequence-continuation"):
        built.backward()
