"""Data-pipeline benchmark: images/s through read + decode + transform, ours against a torch
DataLoader doing the same work in the same run, and the solver's data-wait share.

    PYTHONPATH=python python tools/bench_data.py [--quick] [--parts 1,2] [--anchors shared/anchors]

Part 1, for raw and JPEG Datums of 32x32 and 227x227 colour images in an LMDB, at 1 and 2
threads:
- ours: a MemoryData layer with source_class LMDB (LmdbSource -> decode on the feeder's
  DecodePool -> native DataTransformer on the prefetch thread) popped by the net's native
  forward, as a solver step pops it (Net.forward() would add a copy of its outputs, which
  is its API, not data-pipeline work: the batch is already in the top blob, as torch's is in
  the tensor it yields);
  threads = FeedOptions(decode_threads=) + engine.set_num_threads;
- torch: a Dataset over the same LMDB (Datum parse, cv2.imdecode for JPEG, torch.from_numpy)
  with the same transform in torch ops (random mirror, minus mean_value, times scale),
  DataLoader(shuffle=True); 1 thread = num_workers 0, 2 threads = num_workers 2 (processes);
  torch.set_num_threads(1).
Ours counts the batches its pipeline produced while the clock ran (pops corrected by the
change in the queues' fill), so prefetched batches do not inflate it; the DataLoader's own
prefetch (2 batches per worker) is diluted by timing 100 (32x32) / 40 (227x227) batches.
Both check their first batch against a NumPy reference of the transform (`ok` column).
Before each image size's rows, both sides run once untimed on its raw LMDB (warm-up: module
imports, thread pools, allocator and page-cache state), so no row pays first-use costs that
the other side of the same row does not.
Part 2: LeNet (CaffeOnSpark's lenet_memory net) and CIFAR-10 quick (CaffeOnSpark's
cifar10_quick net, mean file computed with compute_image_mean) train from generated data in
LMDBs fed through source_class; data-wait share = Forward's wait on the data queue
(net.data_feeds.wait_report()) / wall time of solve().
Results: docs/BENCH_DATA.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from google.protobuf import text_format

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

from caffeonspark import engine  # noqa: E402
from caffeonspark.data.convert_cifar import convert_cifar10, write_cifar10_binaries  # noqa: E402
from caffeonspark.data.convert_mnist import convert_arrays  # noqa: E402
from caffeonspark.data.datums import encoded_datum, raw_datum  # noqa: E402
from caffeonspark.data.digits import generate_digits  # noqa: E402
from caffeonspark.data.feed_options import FeedOptions  # noqa: E402
from caffeonspark.data.image_mean import compute_image_mean  # noqa: E402
from caffeonspark.data.lmdb_writer import write_lmdb  # noqa: E402
from caffeonspark.proto import caffe_pb2  # noqa: E402

MEAN = (104.0, 117.0, 123.0)
SCALE = 0.017


def make_images(count: int, size: int, seed: int) -> np.ndarray:
    """Smooth colour pictures (blurred noise + gradients): JPEG sizes like photos'."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        noise = rng.normal(128, 60, size=(size, size, 3)).astype(np.float32)
        out[i] = np.clip(cv2.GaussianBlur(noise, (0, 0), size / 24 + 0.5), 0, 255)
    return out


def make_lmdbs(folder: Path, count: int, size: int) -> dict[str, Path]:
    images = make_images(count, size, seed=size)
    labels = np.arange(count)  # unique: each item's source image is known
    raw = [
        (b"%08d" % i, raw_datum(im.transpose(2, 0, 1), lb).SerializeToString())
        for i, (im, lb) in enumerate(zip(images, labels, strict=True))
    ]
    jpeg = [
        (b"%08d" % i, encoded_datum(cv2.imencode(".jpg", im)[1].tobytes(), lb).SerializeToString())
        for i, (im, lb) in enumerate(zip(images, labels, strict=True))
    ]
    paths = {"raw": folder / f"raw{size}", "jpeg": folder / f"jpeg{size}"}
    write_lmdb(paths["raw"], raw)
    write_lmdb(paths["jpeg"], jpeg)
    return paths


def reference(images_chw: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    out = (images_chw.astype(np.float64) - np.array(MEAN)[None, :, None, None]) * SCALE
    out[mirrored] = out[mirrored][..., ::-1]
    return out


def check(batch: np.ndarray, labels: np.ndarray, originals: dict, jpeg: bool) -> bool:
    """Each item equals the reference of its source image (for JPEG: the decoded file's
    pixels), mirrored or not."""
    for item, label in zip(batch, labels, strict=True):
        src = originals["images"][int(label)][None]
        if not any(
            np.abs(item - reference(src, np.array([m]))[0]).max() <= 1e-3 for m in (False, True)
        ):
            return False
    return True


def ours(
    db: Path, size: int, threads: int, batch: int, batches: int, originals
) -> tuple[float, bool]:
    engine.set_num_threads(threads)
    text = f"""
layer {{ name: "data" type: "MemoryData" top: "data" top: "label" source_class: "LMDB"
  transform_param {{ mirror: true scale: {SCALE} mean_value: {MEAN[0]} mean_value: {MEAN[1]}
    mean_value: {MEAN[2]} }}
  memory_data_param {{ source: "{db}" batch_size: {batch} channels: 3 height: {size}
    width: {size} }} }}"""
    net = engine.Net(
        text_format.Parse(text, caffe_pb2.NetParameter()),
        phase=caffe_pb2.TRAIN,
        feed=FeedOptions(decode_threads=threads),
    )
    net.data_feeds.set_timeout(120)
    forward = net._native.forward_from_to  # what Solver.step runs: no output copies
    forward(0, 0)
    ok = check(net.blobs["data"].data, net.blobs["label"].data, originals, "jpeg" in db.name)
    feed, ready = net.data_feeds._queues["data"]
    # Batches already buffered when the clock starts (or still buffered when it stops) were
    # not made in the timed window: count what the pipeline produced, not what was popped.
    buffered = feed.size + ready.size
    start = time.perf_counter()
    for _ in range(batches):
        forward(0, 0)
    elapsed = time.perf_counter() - start
    produced = batches + (feed.size + ready.size) - buffered
    net.close()
    return batch * produced / elapsed, ok


class LmdbDataset:
    """torch Dataset over a Datum LMDB: parse, decode, transform in torch ops."""

    def __init__(self, path: Path) -> None:
        import lmdb

        self.path = str(path)
        env = lmdb.open(self.path, readonly=True, lock=False)
        with env.begin() as txn:
            self.keys = [bytes(k) for k in txn.cursor().iternext(keys=True, values=False)]
        env.close()
        self.env = None

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int):
        import lmdb
        import torch

        if self.env is None:
            self.env = lmdb.open(self.path, readonly=True, lock=False)
        with self.env.begin() as txn:
            datum = caffe_pb2.Datum.FromString(txn.get(self.keys[index]))
        if datum.encoded:
            hwc = cv2.imdecode(np.frombuffer(datum.data, np.uint8), cv2.IMREAD_ANYCOLOR)
            image = torch.from_numpy(hwc).permute(2, 0, 1)
        else:
            image = torch.frombuffer(bytearray(datum.data), dtype=torch.uint8).view(
                datum.channels, datum.height, datum.width
            )
        x = image.float()
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        x = (x - torch.tensor(MEAN).view(3, 1, 1)) * SCALE
        return x, datum.label


def theirs(db: Path, threads: int, batch: int, batches: int, originals) -> tuple[float, bool]:
    import torch
    from torch.utils.data import DataLoader

    torch.set_num_threads(1)
    workers = 0 if threads == 1 else threads
    loader = DataLoader(
        LmdbDataset(db),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )
    it = iter(loader)
    data, labels = next(it)
    ok = check(data.numpy(), labels.numpy(), originals, "jpeg" in db.name)
    start = time.perf_counter()
    done = 0
    while done < batches:
        try:
            next(it)
        except StopIteration:
            it = iter(loader)
            continue
        done += 1
    elapsed = time.perf_counter() - start
    del it, loader
    return batch * batches / elapsed, ok


def part1(folder: Path, quick: bool) -> list[str]:
    rows = [
        "| images | format | threads | ours (img/s) | torch DataLoader (img/s) | ours/torch | ok |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for size, count, batch, batches in (
        (32, 3000, 100, 20 if quick else 100),
        (227, 300, 25, 12 if quick else 40),
    ):
        paths = make_lmdbs(folder, count, size)
        images = make_images(count, size, seed=size)
        warm = {"images": images.transpose(0, 3, 1, 2)}
        ours(paths["raw"], size, 1, batch, 4, warm)
        theirs(paths["raw"], 1, batch, 4, warm)
        for fmt, db in paths.items():
            if fmt == "jpeg":  # references are the decoded JPEGs' own pixels
                decoded = [
                    cv2.imdecode(cv2.imencode(".jpg", im)[1], cv2.IMREAD_COLOR) for im in images
                ]
                src = np.stack(decoded).transpose(0, 3, 1, 2)
            else:
                src = images.transpose(0, 3, 1, 2)
            originals = {"images": src}
            for threads in (1, 2):
                mine, ok1 = ours(db, size, threads, batch, batches, originals)
                peer, ok2 = theirs(db, threads, batch, batches, originals)
                rows.append(
                    f"| {size}x{size} | {fmt} | {threads} | {mine:,.0f} | {peer:,.0f} | "
                    f"{mine / peer:.2f} | {'yes' if ok1 and ok2 else 'NO'} |"
                )
                print(rows[-1], flush=True)
    return rows


def rewrite_sources(
    text: str, train: Path, test: Path, extra: dict[str, str]
) -> caffe_pb2.NetParameter:
    param = caffe_pb2.NetParameter()
    text_format.Parse(text, param)
    for layer in param.layer:
        if layer.type == "MemoryData":
            is_train = any(r.phase == caffe_pb2.TRAIN for r in layer.include)
            layer.memory_data_param.source = str(train if is_train else test)
            if layer.transform_param.mean_file:
                layer.transform_param.mean_file = extra["mean"]
    return param


def part2(folder: Path, anchors: Path, quick: bool) -> list[str]:
    from caffeonspark.solver import Solver

    rows = [
        "| net | iterations | batch | wall s | data wait s | data-wait share |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    engine.set_num_threads(2)
    images, labels = generate_digits(6400, 1)
    convert_arrays(images, labels, folder / "mnist_train")
    convert_arrays(images[:1000], labels[:1000], folder / "mnist_test")
    write_cifar10_binaries(folder / "cifar_bin", per_file=2000, seed=1)
    train, test = convert_cifar10(folder / "cifar_bin", folder / "cifar")
    mean = folder / "mean.binaryproto"
    compute_image_mean(train, mean)
    cases = [
        (
            "LeNet (lenet_memory)",
            "lenet_memory_train_test.prototxt",
            folder / "mnist_train",
            folder / "mnist_test",
            100 if quick else 300,
        ),
        ("CIFAR-10 quick", "cifar10_quick_train_test.prototxt", train, test, 20 if quick else 60),
    ]
    for label, name, tr, te, iters in cases:
        net = rewrite_sources(
            (anchors / "caffeonspark" / name).read_text(), tr, te, {"mean": str(mean)}
        )
        net_path = folder / f"{name}"
        net_path.write_text(text_format.MessageToString(net))
        solver = Solver(
            caffe_pb2.SolverParameter(
                net=str(net_path),
                base_lr=0.001,
                momentum=0.9,
                lr_policy="fixed",
                max_iter=iters,
                test_iter=[1],
                test_interval=100000,
                display=0,
                snapshot_after_train=False,
            ),
            feed=FeedOptions(decode_threads=2),
        )
        start = time.perf_counter()
        solver.solve()
        wall = time.perf_counter() - start
        report = solver.net.data_feeds.wait_report()["data"]
        batch = solver.net.blobs["data"].shape[0]
        rows.append(
            f"| {label} | {iters} | {batch} | {wall:.2f} | {report['wait_seconds']:.3f} | "
            f"{100 * report['wait_seconds'] / wall:.1f}% |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches and iterations")
    parser.add_argument("--parts", default="1,2", help="which parts to run (1: img/s, 2: wait)")
    parser.add_argument("--anchors", default=str(ROOT.parent / "shared" / "anchors"))
    args = parser.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        folder = Path(tmp)
        print(f"cores: {os.cpu_count()}, OpenCV {cv2.__version__}\n")
        parts = {p.strip() for p in args.parts.split(",")}
        if "1" in parts:
            rows = part1(folder, args.quick)
            print("\n" + "\n".join(rows) + "\n")
        if "2" in parts:
            rows2 = part2(folder, Path(args.anchors), args.quick)
            print("\n" + "\n".join(rows2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
