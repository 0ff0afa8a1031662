"""CaffeOnSpark's deploy nets from shared/anchors/caffeonspark load unmodified (legacy
`input` + `input_shape` fields), take random weights, run forward on set inputs, and give
finite softmax distributions of the declared shapes. lrcn_word_to_preds is driven as its
captioning loop uses it: one word per Forward, the LSTM state carried between calls."""

from __future__ import annotations

import numpy as np

from caffeonspark import engine


def fill_random(net: engine.Net, seed: int) -> None:
    """Every parameter ~ N(0, 1/fan_in) (biases small), so activations stay of order one."""
    rng = np.random.default_rng(seed)
    for blobs in net.params.values():
        for blob in blobs:
            shape = blob.shape
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            scale = 1.0 / np.sqrt(fan_in) if len(shape) > 1 else 0.1
            blob.data[...] = rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)


def assert_distributions(probs: np.ndarray, axis: int) -> None:
    assert np.all(np.isfinite(probs))
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=axis), 1.0, rtol=1e-4)


def test_lstm_deploy_caffenet_runs_forward(anchors):
    net = engine.Net(str(anchors / "caffeonspark" / "lstm_deploy.prototxt"), phase=engine.TEST)
    assert net.inputs == ["data"]
    assert net.blobs["data"].shape == (10, 3, 227, 227)
    fill_random(net, seed=1)
    images = np.random.default_rng(2).uniform(-100, 100, (10, 3, 227, 227)).astype(np.float32)
    out = net.forward(data=images)
    assert list(out) == ["prob"]
    assert out["prob"].shape == (10, 1000)
    assert net.blobs["fc7"].shape == (10, 4096)
    assert_distributions(out["prob"], axis=1)
    assert np.ptp(out["prob"], axis=1).min() > 0, "random weights give non-uniform outputs"


def test_lrcn_word_to_preds_runs_forward_word_by_word(anchors):
    net = engine.Net(str(anchors / "caffeonspark" / "lrcn_word_to_preds.deploy.prototxt"), phase=engine.TEST)
    assert sorted(net.inputs) == ["cont_sentence", "image_features", "input_sentence"]
    assert [p.shape for p in net.params["embedding"]] == [(8801, 1000)]
    # LSTM blobs in Caffe's order: W_xc, b_c, [W_xc_static], W_hc.
    assert [p.shape for p in net.params["lstm1"]] == [(4000, 1000), (4000,), (4000, 1000)]
    assert [p.shape for p in net.params["lstm2"]] == [
        (4000, 1000), (4000,), (4000, 1000), (4000, 1000)]
    fill_random(net, seed=3)
    rng = np.random.default_rng(4)
    features = rng.standard_normal((1000, 1000), dtype=np.float32)
    first = net.forward(cont_sentence=np.zeros((1, 1000), np.float32),
                        input_sentence=np.zeros((1, 1000), np.float32),
                        image_features=features)["probs"]
    assert first.shape == (1, 1000, 8801)
    assert_distributions(first, axis=2)
    assert net.blobs["lstm2"].shape == (1, 1000, 1000)

    # Fewer streams (the batch may change between calls), one word per call.
    streams = 16
    features = features[:streams]
    words = rng.integers(0, 8801, size=(1, streams)).astype(np.float32)
    starts, continues = np.zeros((1, streams), np.float32), np.ones((1, streams), np.float32)
    net.forward(cont_sentence=starts, input_sentence=np.zeros((1, streams), np.float32),
                image_features=features)
    # The next word continues the sentences: the state of the previous call is carried in.
    follow = net.forward(cont_sentence=continues, input_sentence=words,
                         image_features=features)["probs"]
    assert follow.shape == (1, streams, 8801)
    assert_distributions(follow, axis=2)
    # The same word as a sentence start (cont 0) ignores that state and differs.
    restart = net.forward(cont_sentence=starts, input_sentence=words,
                          image_features=features)["probs"]
    assert_distributions(restart, axis=2)
    assert np.abs(follow - restart).max() > 1e-6
    # A restart depends on nothing carried: repeating it gives the same distribution.
    again = net.forward(cont_sentence=starts, input_sentence=words,
                        image_features=features)["probs"]
    np.testing.assert_array_equal(again, restart)
