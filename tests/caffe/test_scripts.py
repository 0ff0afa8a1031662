"""pycaffe-style scripts (tests/caffe/scripts/, each starting with install_as_caffe so that
`import caffe` is ours) run unchanged in subprocesses; their printed results are checked
against NumPy references."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import caffeonspark
from caffeonspark.data.digits import generate_digits

SCRIPTS = Path(__file__).parent / "scripts"
# The caffeonspark under test (the checkout in development, site-packages after pip install).
PYTHON_DIR = Path(caffeonspark.__file__).resolve().parents[1]


def run_script(name, work):
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
    done = subprocess.run([sys.executable, str(SCRIPTS / name), str(work)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("pycaffe_scripts")


@pytest.fixture(scope="module")
def lenet(work):
    return run_script("lenet_netspec.py", work)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_lenet_netspec_trains(lenet):
    losses = np.array(lenet["losses"])
    assert lenet["iter"] == 30 and lenet["conv1_shape"] == [20, 1, 5, 5]
    assert abs(losses[0] - np.log(10)) < 0.3  # starts near chance
    assert losses[-5:].mean() < 0.75 * losses[:5].mean()
    # 30 batches of 64 are three passes over 640 records: the next batch is records 0..63
    np.testing.assert_array_equal(lenet["labels"], generate_digits(640, seed=1)[1][:64])
    scores = np.array(lenet["scores"])
    labels = np.array(lenet["labels"], dtype=int)
    loss = -np.log(softmax(scores)[np.arange(64), labels]).mean()
    assert lenet["final_loss"] == pytest.approx(loss, rel=1e-4)


def test_classify(lenet, work):
    out = run_script("classify.py", work)
    images, labels = generate_digits(8, seed=5)
    np.testing.assert_allclose(out["data"], images[0].ravel() / 255.0, atol=1e-6)
    assert out["label"] == int(np.argmax(out["prob"])) and sum(out["prob"]) == pytest.approx(1)
    np.testing.assert_allclose(out["prob"], out["batch_prob0"], rtol=1e-5, atol=1e-6)
    correct = (np.array(out["batch_labels"]) == labels).mean()
    assert correct >= 0.75, out


def test_finetune_and_surgery(lenet, work):
    out = run_script("finetune.py", work)
    assert out["same_conv1"]
    losses = np.array(out["losses"])
    assert losses[-3:].mean() < losses[:3].mean() - 0.2
    assert out["fc1_sum"] == pytest.approx(out["trained_fc1_sum"], rel=1e-6)
    assert out["conv1_differs"]  # only fc1 and score were transplanted


def test_classifier_on_images(lenet, work):
    run_script("classify.py", work)  # writes deploy.prototxt
    out = run_script("classifier_images.py", work)
    images, _ = generate_digits(8, seed=5)
    ten, centre = np.array(out["ten"]), np.array(out["centre"])
    assert ten.shape == centre.shape == (8, 10) and out["ms"] > 0
    np.testing.assert_allclose(ten.sum(axis=1), 1, rtol=1e-5)
    # The centre crop of a 32 x 32 resize, scored by the same net through caffe.Net
    net = caffe_net(work)
    for i, image in enumerate(images):
        big = cv2.resize(image, (32, 32)).astype(np.float32) / 255
        prob = net.forward(data=big[np.newaxis, np.newaxis, 2:30, 2:30])["prob"][0]
        np.testing.assert_allclose(centre[i], prob, rtol=1e-4, atol=1e-6)
        # ten crops: corners and centre of the 32 x 32 image, then their mirrors
        five = [big[y:y + 28, x:x + 28] for y, x in [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]]
        crops = np.array(five + [c[:, ::-1] for c in five])[:, np.newaxis]
        mean = np.mean([net.forward(data=c[np.newaxis])["prob"][0] for c in crops], axis=0)
        np.testing.assert_allclose(ten[i], mean, rtol=1e-4, atol=1e-6)
    assert out["ten_labels"] == ten.argmax(axis=1).tolist()


def caffe_net(work):
    import caffeonspark.caffe as caffe

    return caffe.Net(str(work / "deploy.prototxt"), str(work / "lenet.caffemodel"), caffe.TEST)
