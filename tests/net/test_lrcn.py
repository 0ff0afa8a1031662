"""CaffeOnSpark's LRCN captioning net (lrcn_cos.prototxt: CaffeNet + a factored 2-layer LSTM
over an 8801-word vocabulary) trained by its own solver (lrcn_solver.prototxt: stages
freeze-convnet, factored, 2-layer; clip_gradients 10) for 20 iterations on a generated
captioning DataFrame read by the CoSData layer, without Spark. Only the paths (net, CoSData
sources, snapshot_prefix), max_iter and snapshot are changed, in copies written to tmp_path.
The convnet gets random "pretrained" weights first, as a run fine-tuning from CaffeNet would.

Checked: the stage rules pick the factored 2-layer variant; every iteration's loss is finite
and equals a float64 NumPy softmax loss of that iteration's `predict` and `target_sentence`
(axis 2, ignore_label -1, mean over the valid words, loss_weight 20); the frozen convnet
(lr_mult 0) is unchanged while fc8, the LSTMs, predict and the embedding rows of the words
seen move (the rows of unseen words stay exactly as they were); the loss over the last pass
of the 5 captions is below the first pass. The same files train through `caffeonspark
train`."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np
import pytest

from caffeonspark import cli, engine, model_io
from caffeonspark.data.cos_dataframe import write_cos_parquet
from caffeonspark.solver import Solver

T = 21  # the sentence length of the net's INT_ARRAY tops (channels: 21, transposed: T x N)
VOCAB = 8801
ROWS = 5  # one pass over the captions = 5 iterations at batch_size 1
FROZEN = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
LEARNED = ["fc8", "embedding", "lstm1", "lstm2", "predict"]


def captions() -> dict[str, np.ndarray]:
    """LRCN's sentence layout for ROWS captions built from two short word sequences:
    input = [0 (start), w1..wL, 0...], cont = [0, 1 x L, 0...], target = [w1..wL, 0 (end),
    -1 (ignored)...]."""
    rng = np.random.default_rng(11)
    sentences = [rng.integers(1, 40, size=7), rng.integers(1, 40, size=5)]
    cont = np.zeros((ROWS, T), np.int64)
    words_in = np.zeros((ROWS, T), np.int64)
    target = np.full((ROWS, T), -1, np.int64)
    for row in range(ROWS):
        words = sentences[row % 2]
        n = len(words)
        cont[row, 1 : n + 1] = 1
        words_in[row, 1 : n + 1] = words
        target[row, :n] = words
        target[row, n] = 0
    return {"cont_sentence": cont, "input_sentence": words_in, "target_sentence": target}


def write_lrcn_files(anchors: Path, tmp_path: Path, max_iter: int, name: str) -> Path:
    """The anchor net and solver with their paths pointed into tmp_path (the fixtures are
    only read); returns the solver file."""
    source = tmp_path / "coco.parquet"
    if not source.exists():
        images = np.random.default_rng(12).integers(0, 256, size=(ROWS, 3, 256, 256), dtype=np.uint8)
        columns = {
            "data": ("ENCODED_IMAGE_WITH_DIM", list(images)),
            "label": ("INT", np.zeros(ROWS)),
        }
        columns.update({k: ("INT_ARRAY", v) for k, v in captions().items()})
        write_cos_parquet(source, columns, ext=".jpg")
    root = anchors / "caffeonspark"
    net = model_io.read_net_prototxt(root / "lrcn_cos.prototxt")
    data_layers = [layer for layer in net.layer if layer.type == "CoSData"]
    assert len(data_layers) == 2  # TRAIN, and TEST under stage test-on-train
    for layer in data_layers:
        layer.cos_data_param.source = str(source)
    net_path = tmp_path / f"{name}_net.prototxt"
    model_io.write_prototxt(net_path, net)
    solver = model_io.read_solver_prototxt(root / "lrcn_solver.prototxt")
    solver.net = str(net_path)
    solver.snapshot_prefix = str(tmp_path / name)
    solver.max_iter = max_iter
    solver.snapshot = 0
    solver.snapshot_after_train = False
    solver_path = tmp_path / f"{name}_solver.prototxt"
    model_io.write_prototxt(solver_path, solver)
    return solver_path


def fill_pretrained(net: engine.Net, seed: int) -> None:
    """He-normal weights for the frozen convnet, conv1 scaled by 1/100 so that pixel-range
    input gives fc8 features of order one (as a trained CaffeNet's do), small biases."""
    rng = np.random.default_rng(seed)
    for name in FROZEN:
        weights, bias = net.params[name]
        std = math.sqrt(2.0 / np.prod(weights.shape[1:])) * (0.01 if name == "conv1" else 1.0)
        weights.data[...] = rng.standard_normal(weights.shape, dtype=np.float32) * np.float32(std)
        bias.data[...] = rng.standard_normal(bias.shape, dtype=np.float32) * np.float32(0.01)


def reference_loss(predict: np.ndarray, target: np.ndarray) -> float:
    """20 x the mean over words with target != -1 of -log softmax(predict) (float64)."""
    logits = predict.astype(np.float64).reshape(-1, VOCAB)
    labels = target.astype(np.int64).reshape(-1)
    valid = labels != -1
    logits = logits[valid]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return 20.0 * float(-log_probs[np.arange(len(logits)), labels[valid]].mean())


def test_lrcn_trains_20_iterations_with_frozen_convnet(anchors, tmp_path):
    solver_path = write_lrcn_files(anchors, tmp_path, max_iter=20, name="lrcn")
    sentences = captions()
    engine.set_num_threads(2)
    solver = Solver(solver_path)
    net = solver.net
    # stages freeze-convnet + factored + 2-layer: lstm1 sees words only, lstm2 also fc8
    # (its static input, the 4th blob), predict reads lstm2; one test net (test-on-train).
    assert [p.shape for p in net.params["lstm1"]] == [(4000, 1000), (4000,), (4000, 1000)]
    assert [p.shape for p in net.params["lstm2"]] == [
        (4000, 1000), (4000,), (4000, 1000), (4000, 1000)]
    assert net.blobs["input_sentence"].shape == (T, 1)
    assert net.blobs["predict"].shape == (T, 1, VOCAB)
    assert "accuracy" not in net.blobs
    assert len(solver.test_nets) == 1 and "accuracy" in solver.test_nets[0].blobs

    fill_pretrained(net, seed=7)
    before = {name: [p.data.copy() for p in net.params[name]] for name in FROZEN + LEARNED}
    losses = []
    for it in range(20):
        solver.step(1)
        loss = solver.native.last_loss
        assert math.isfinite(loss), f"iteration {it}: loss {loss}"
        row = it % ROWS  # the source is read in order (cos_data_param has no shuffle)
        target = net.blobs["target_sentence"].data
        np.testing.assert_array_equal(target[:, 0], sentences["target_sentence"][row])
        want = reference_loss(net.blobs["predict"].data, target)
        assert loss == pytest.approx(want, rel=1e-5), f"iteration {it}"
        losses.append(loss)
    assert solver.iter == 20

    for name in FROZEN:  # lr_mult 0 under freeze-convnet
        for i, blob in enumerate(net.params[name]):
            np.testing.assert_array_equal(blob.data, before[name][i], err_msg=f"{name}[{i}]")
    for name in LEARNED:
        for i, blob in enumerate(net.params[name]):
            assert not np.array_equal(blob.data, before[name][i]), f"{name}[{i}] did not train"
    # Embed's gradient reaches only the rows of the words fed in (weight_decay is 0).
    seen = np.unique(sentences["input_sentence"])
    unseen = np.setdiff1d(np.arange(VOCAB), seen)
    embedding = net.params["embedding"][0].data
    np.testing.assert_array_equal(embedding[unseen], before["embedding"][0][unseen])
    assert np.all(np.any(embedding[seen] != before["embedding"][0][seen], axis=1))
    # The test net shares the trained weights.
    test_net = solver.test_nets[0]
    for name in ("conv1", "predict"):
        np.testing.assert_array_equal(test_net.params[name][0].data, net.params[name][0].data)

    first, last = np.mean(losses[:ROWS]), np.mean(losses[-ROWS:])
    assert last < 0.95 * first, f"loss over the first pass {first:.2f}, last pass {last:.2f}"


def test_lrcn_trains_through_the_cli(anchors, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="caffeonspark")
    solver_path = write_lrcn_files(anchors, tmp_path, max_iter=2, name="lrcn_cli")
    assert cli.main(["train", "-solver", str(solver_path), "-threads", "2"]) == 0
    final = re.findall(r"Iteration 2, loss = (\S+)", caplog.text)
    assert final and math.isfinite(float(final[-1]))
    assert "cross_entropy_loss" in caplog.text and "Optimization Done." in caplog.text
