"""ImageData (cpp/layers/image_data.h, python/caffeonspark/data/image_list_feeder.py): list
order with wrap-around, exact pixels against NumPy re-statements of decode, resize and the
transform (crop, mirror, mean, scale), gray images, seeded shuffle and rand_skip, sharding,
and errors naming the list file and line."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from google.protobuf import text_format

from caffeonspark import engine, errors, model_io
from caffeonspark.data.feed_options import FeedOptions
from caffeonspark.proto import caffe_pb2

H, W = 6, 8


def write_images(folder: Path, count: int, size=(H, W)) -> list[np.ndarray]:
    """PNG files img<i>.png (lossless); returns their BGR (H, W, 3) pixels."""
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(5)
    images = []
    for i in range(count):
        image = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"img {i}.png"), image)  # a space in the name on purpose
        images.append(image)
    return images


@pytest.fixture
def listed(tmp_path):
    images = write_images(tmp_path / "imgs", 5)
    lines = "".join(f"img {i}.png {10 + i}\n" for i in range(5))
    (tmp_path / "list.txt").write_text(lines)
    return tmp_path / "list.txt", f"{tmp_path / 'imgs'}/", images


def image_net(source, root, batch_size=2, param="", transform="", phase=engine.TRAIN, feed=None):
    text = f"""layer {{ name: "img" type: "ImageData" top: "data" top: "label"
      image_data_param {{ source: "{source}" root_folder: "{root}" batch_size: {batch_size}
        {param} }} {transform} }}"""
    return engine.Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase=phase, feed=feed)


def chw(image: np.ndarray) -> np.ndarray:
    return image.transpose(2, 0, 1).astype(np.float64)


def labels_of(net, forwards):
    out = []
    for _ in range(forwards):
        net.forward()
        out.extend(net.blobs["label"].data.astype(int).tolist())
    return out


def test_list_order_wraps_and_pixels_are_bgr_chw(listed):
    source, root, images = listed
    net = image_net(source, root, batch_size=2)
    assert net.blobs["data"].shape == (2, 3, H, W)
    seen = []
    for _ in range(4):
        net.forward()
        batch_labels = net.blobs["label"].data.astype(int)
        seen.extend(batch_labels.tolist())
        for item, label in enumerate(batch_labels):
            np.testing.assert_array_equal(net.blobs["data"].data[item], chw(images[label - 10]))
    assert seen == [10, 11, 12, 13, 14, 10, 11, 12]
    net.close()


def test_resize_gray_and_transform_match_numpy(listed, tmp_path):
    source, root, images = listed
    mean = np.random.default_rng(1).uniform(0, 255, size=(1, 1, 4, 5)).astype(np.float32)
    model_io.write_binaryproto(tmp_path / "mean.binaryproto", mean)
    net = image_net(
        source, root, batch_size=5, phase=engine.TEST,
        param="new_height: 4 new_width: 5 is_color: false",
        transform=f'transform_param {{ crop_size: 3 scale: 0.5 mean_file: "{tmp_path}/mean.binaryproto" }}',
    )
    net.forward()
    for i in range(len(images)):
        # OpenCV's own gray decode (libpng converts: not cvtColor's rounding), as Caffe reads
        gray = cv2.imread(f"{root}img {i}.png", cv2.IMREAD_GRAYSCALE)
        resized = cv2.resize(gray, (5, 4), interpolation=cv2.INTER_LINEAR).astype(np.float64)
        h0, w0 = (4 - 3) // 2, (5 - 3) // 2  # TEST crops the centre
        want = (resized - mean[0, 0])[h0 : h0 + 3, w0 : w0 + 3] * 0.5
        np.testing.assert_allclose(net.blobs["data"].data[i, 0], want, rtol=1e-6, atol=1e-5)
    net.close()


def test_train_crop_and_mirror_pick_windows_of_the_image(listed):
    source, root, images = listed
    net = image_net(source, root, batch_size=5,
                    transform="transform_param { crop_size: 4 mirror: true }")
    net.forward()
    for i, image in enumerate(images):
        got = net.blobs["data"].data[i]
        full = chw(image)
        candidates = [
            window[:, :, ::-1] if flip else window
            for h in range(H - 3) for w in range(W - 3) for flip in (False, True)
            for window in [full[:, h : h + 4, w : w + 4]]
        ]
        assert any(np.array_equal(got, c) for c in candidates)
    net.close()


def test_shuffle_is_seeded_per_pass(listed):
    source, root, _ = listed

    def run(seed):
        net = image_net(source, root, batch_size=5, param="shuffle: true",
                        feed=FeedOptions(seed=seed))
        out = labels_of(net, 3)
        net.close()
        return out

    first = run(2)
    assert first == run(2) and first != run(3)
    for p in range(3):
        assert sorted(first[5 * p : 5 * p + 5]) == list(range(10, 15))
    assert first[:5] != list(range(10, 15)) or first[5:10] != list(range(10, 15))


def test_rand_skip_skips_once(listed):
    source, root, _ = listed
    net = image_net(source, root, batch_size=1, param="rand_skip: 5")
    got = labels_of(net, 8)
    skip = int(np.random.default_rng([0]).integers(5))  # drawn once from the feed seed
    assert skip > 0
    # the first pass starts after `skip` lines; later passes read the whole list
    assert got == [10 + (skip + i) % 5 for i in range(8)]
    net.close()


def test_train_ranks_share_the_list(listed):
    source, root, _ = listed
    seen = []
    for rank in range(2):
        net = image_net(source, root, batch_size=5, feed=FeedOptions(rank=rank, world_size=2))
        seen.append(labels_of(net, 1))
        net.close()
    assert seen == [[10, 12, 14, 11, 13], [11, 13, 10, 12, 14]]


def test_missing_image_names_the_list_file_and_line(listed, tmp_path):
    source, root, _ = listed
    source.write_text(source.read_text() + "gone.png 3\n")
    net = image_net(source, root, batch_size=3)
    net.forward()
    with pytest.raises(errors.IoError, match=r"list\.txt' line 6 \('gone\.png'\): cannot read"):
        net.forward()
    net.close()


def test_bad_line_and_size_mismatch(listed, tmp_path):
    source, root, _ = listed
    bad = tmp_path / "bad.txt"
    bad.write_text("img 0.png 1\nimg 1.png\n")
    with pytest.raises(errors.FormatError, match=r"bad\.txt' line 2: expected 'path label'"):
        image_net(bad, root)
    write_images(tmp_path / "big", 1, size=(7, 7))
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("img 0.png 0\n../big/img 0.png 1\n")  # root_folder + path, as Caffe
    net = image_net(mixed, root, batch_size=2)
    with pytest.raises(errors.FormatError, match=r"line 2 .*image shape \(3, 7, 7\) differs"):
        net.forward()
    net.close()


def test_new_height_without_new_width_is_a_config_error(listed):
    source, root, _ = listed
    with pytest.raises(errors.ConfigError, match="new_height and new_width"):
        image_net(source, root, param="new_height: 4")
