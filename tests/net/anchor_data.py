"""Small generated data for Caffe's own nets (shared/anchors/caffe): a net is read unmodified,
then only its data layers are pointed at files made here (an LMDB of Datums, an image list,
HDF5 files, an R-CNN window file, a mean file) and their batch sizes shrunk, so every net in
the fixture folder builds and runs without ImageNet on disk.

    net = redirected_net(anchors / "caffe" / name, tmp_path)
"""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np

from caffeonspark import model_io
from caffeonspark.data.convert_mnist import datum_bytes
from caffeonspark.data.lmdb_writer import write_lmdb
from caffeonspark.proto import caffe_pb2

BATCH = 4  # every data layer's batch size after redirection
IMAGE_SIDE = 256  # generated images and mean files of the ImageNet-size nets
RECORDS = 12  # records per generated source
HDF5_FEATURES = 4  # the hdf5_classification example's feature count

DATA_TYPES = ("Data", "ImageData", "HDF5Data", "WindowData")


def datum_shape(name: str) -> tuple[int, int, int]:
    """(C, H, W) of the Datums a net's Data layer expects, from the net's family."""
    if name.startswith("siamese"):
        return (2, 28, 28)
    if "mnist" in name:
        return (1, 28, 28)
    if name.startswith("cifar10"):
        return (3, 32, 32)
    return (3, IMAGE_SIDE, IMAGE_SIDE)


def _rng(seed: int = 7) -> np.random.Generator:
    return np.random.default_rng(seed)


def make_lmdb(path: Path, shape: tuple[int, int, int], count: int = RECORDS) -> Path:
    rng = _rng()
    images = rng.integers(0, 256, size=(count, *shape), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count)
    write_lmdb(path, ((f"{i:08d}".encode(), datum_bytes(images[i], int(labels[i])))
                      for i in range(count)))
    return path


def make_images(folder: Path, count: int = RECORDS) -> list[Path]:
    """JPEG files of varying sizes (the layers resize or crop them)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = _rng(8)
    paths = []
    for i in range(count):
        height, width = 240 + 8 * i, 300 - 4 * i
        path = folder / f"img{i:02d}.jpg"
        cv2.imwrite(str(path), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def make_image_list(folder: Path) -> Path:
    listing = folder / "images.txt"
    lines = [f"{path.name} {i % 5}" for i, path in enumerate(make_images(folder / "images"))]
    listing.write_text("\n".join(lines) + "\n")
    return listing


def make_hdf5_list(folder: Path) -> Path:
    rng = _rng(9)
    files = []
    for part in range(2):
        path = folder / f"part{part}.h5"
        with h5py.File(path, "w") as f:
            f["data"] = rng.normal(size=(RECORDS, HDF5_FEATURES)).astype(np.float32)
            f["label"] = rng.integers(0, 2, RECORDS).astype(np.float32)
        files.append(str(path))
    listing = folder / "hdf5.txt"
    listing.write_text("\n".join(files) + "\n")
    return listing


def make_window_file(folder: Path) -> Path:
    """R-CNN's window file: per image its index, path, channels, height, width, then one
    `class overlap x1 y1 x2 y2` line per window (foreground and background overlaps)."""
    lines = []
    for index, path in enumerate(make_images(folder / "windows", count=3)):
        height, width = cv2.imread(str(path)).shape[:2]
        windows = [(1 + index, 0.8, 10, 12, 150, 160), (0, 0.1, 40, 30, 200, 220),
                   (2, 0.6, 0, 0, width - 1, height - 1), (0, 0.2, 5, 5, 60, 90)]
        lines += [f"# {index}", str(path), "3", str(height), str(width), str(len(windows))]
        lines += [" ".join(str(v) for v in window) for window in windows]
    listing = folder / "windows.txt"
    listing.write_text("\n".join(lines) + "\n")
    return listing


def make_mean(path: Path, shape: tuple[int, int, int]) -> Path:
    model_io.write_binaryproto(path, np.full((1, *shape), 100.0, np.float32), legacy_4d=True)
    return path


def redirected_net(path: Path, tmp_path: Path) -> caffe_pb2.NetParameter:
    """The net at `path` with every data layer reading generated data in tmp_path."""
    net = model_io.read_net_prototxt(path)
    redirect_layers(net, path.name, tmp_path)
    return net


def redirect_layers(net: caffe_pb2.NetParameter, name: str, tmp_path: Path) -> None:
    """Points the data layers of `net` (from the fixture file `name`) at generated data."""
    shape = datum_shape(name)
    made: dict[str, Path] = {}

    def once(key: str, make) -> str:
        if key not in made:
            made[key] = make()
        return str(made[key])

    for layer in net.layer:
        if layer.type not in DATA_TYPES:
            continue
        if layer.type == "Data":
            layer.data_param.source = once("lmdb", lambda: make_lmdb(tmp_path / "db", shape))
            layer.data_param.backend = caffe_pb2.DataParameter.LMDB
            layer.data_param.batch_size = min(layer.data_param.batch_size, BATCH)
        elif layer.type == "ImageData":
            layer.image_data_param.source = once("list", lambda: make_image_list(tmp_path))
            layer.image_data_param.root_folder = str(tmp_path / "images") + "/"
            layer.image_data_param.batch_size = min(layer.image_data_param.batch_size, BATCH)
        elif layer.type == "HDF5Data":
            layer.hdf5_data_param.source = once("hdf5", lambda: make_hdf5_list(tmp_path))
            layer.hdf5_data_param.batch_size = min(layer.hdf5_data_param.batch_size, BATCH)
        elif layer.type == "WindowData":
            layer.window_data_param.source = once("windows", lambda: make_window_file(tmp_path))
            layer.window_data_param.batch_size = min(layer.window_data_param.batch_size, BATCH)
        if layer.transform_param.mean_file:
            mean_shape = shape if layer.type == "Data" else (3, IMAGE_SIDE, IMAGE_SIDE)
            layer.transform_param.mean_file = once(
                "mean", lambda s=mean_shape: make_mean(tmp_path / "mean.binaryproto", s))


def declared_states(net: caffe_pb2.NetParameter) -> list[tuple[int, tuple[str, ...]]]:
    """The (phase, stages) pairs a net's include/exclude rules name (mnist_autoencoder's
    TEST data layers, for instance, need a stage); a net without any is a deploy net, built
    in TEST."""
    states = set()
    for layer in net.layer:
        for rule in list(layer.include) + list(layer.exclude):
            if rule.HasField("phase"):
                states.add((rule.phase, tuple(rule.stage) if rule in layer.include else ()))
    return sorted(states) or [(caffe_pb2.TEST, ())]
