"""A Spark standalone cluster across network namespaces (netns_hosts.py, standalone.py): the
master and the driver (cluster_driver.py) on host `head`, one 1-core worker on each of w1, w2,
w3, every host its own namespace and 10.x address behind a veth, so the training ring crosses
the veth links and the bridge. One driver process runs, on the cluster, the seed's pipeline
(-train with -clusterSize 3, then -features) twice, uninterrupted and with a link cut, then
the same pipeline on local[3] after stopping the cluster's session:

- the cluster trains the model local[3] trains from the same data and seed (the tolerance of
  tests/spark/spark_util.py assert_same_model: the same float32 code in the same order) and
  extracts the same features; each rank ran on its own host, and each worker's veth carried
  at least the ring's 2(N-1)/N share of the gradients;
- the link of the host running rank 1 taken down (`ip link set <veth> down` in the root
  namespace) once rank 0 reports iteration CUT_AFTER (after the snapshot at SNAPSHOT) is a
  PeerTimeout naming rank 1 on both other ranks within the ring timeout; the link comes back
  up once both have reported, Spark retries the barrier stage, every rank resumes from the
  newest snapshot, and the final model equals the uninterrupted one within the tolerance of
  tests/spark/test_fault.py.
Every wait is bounded; the namespaces, bridge and processes go when the module ends, also on
failure. Needs root (skipped with the reason elsewhere, failed in CI: netns_hosts.require)."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from netns_hosts import Hosts, require
from spark_util import PYTHON_DIR, params, skip_without_spark, write_lenet
from standalone import Standalone, scratch_spark_home

from caffeonspark.data.convert_mnist import prepare_mnist_lmdb

WORKERS = ["w1", "w2", "w3"]
WORLD = len(WORKERS)
N_TRAIN, N_TEST = 1500, 200
MAX_ITER, SNAPSHOT, DISPLAY, CUT_AFTER, CUT_RANK = 120, 20, 10, 30, 1
TIMEOUT = 8.0  # the ring's: a link silent this long is a PeerTimeout
RESTORE_AFTER = 4 * TIMEOUT  # the link comes back then even if the failures were not seen
DRIVER_SECONDS = 400.0
LENET_FLOATS = 431080  # conv1 520, conv2 25050, ip1 400500, ip2 5010
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def hosts():
    require()
    skip_without_spark()
    with Hosts(["head", *WORKERS]) as made:
        yield made


class Watch:
    """Reads the driver's JSON lines and cuts / restores rank 1's host link on cue."""

    def __init__(self, hosts: Hosts, hosts_root: Path) -> None:
        self.hosts = hosts
        self.root = hosts_root
        self.records: list[dict] = []
        self.run = ""
        self.rank_host: dict[str, dict[int, str]] = {}
        self.cut_host: str | None = None
        self.cut_at: float | None = None
        self.cut_iteration: int | None = None
        self.restored_at: float | None = None
        self.failed: dict[int, str] = {}  # rank -> its failure report after the cut

    def see(self, record: dict) -> None:
        self.records.append(record)
        if "run" in record:
            self.run = record["run"]
        message = record.get("log", "")
        spooled = re.match(r"\[rank (\d+)\] rank \d+: \d+ training rows spooled to (\S+)",
                           message)
        if spooled and self.cut_at is None:
            host = Path(spooled.group(2)).relative_to(self.root).parts[0]
            self.rank_host.setdefault(self.run, {})[int(spooled.group(1))] = host
        if self.run != "cut":
            return
        progress = re.match(r"progress: iteration (\d+)/", message)
        if (progress and self.cut_at is None and int(progress.group(1)) >= CUT_AFTER
                and CUT_RANK in self.rank_host.get("cut", {})):
            self.cut_host = self.rank_host["cut"][CUT_RANK]
            self.hosts.cut(self.cut_host)
            self.cut_at, self.cut_iteration = time.monotonic(), int(progress.group(1))
        failed = re.match(r"\[rank (\d+)\] rank \d+ failed: ", message)
        if failed and self.cut_at is not None and self.restored_at is None:
            self.failed.setdefault(int(failed.group(1)), message)
        self.tick()

    def tick(self) -> None:
        if self.cut_at is None or self.restored_at is not None:
            return
        others = set(range(WORLD)) - {CUT_RANK}
        if others <= set(self.failed) or time.monotonic() - self.cut_at > RESTORE_AFTER:
            self.hosts.restore(self.cut_host)
            self.restored_at = time.monotonic()


def drive(hosts: Hosts, spec_path: Path, watch: Watch, env: dict, stderr: Path) -> int:
    with open(stderr, "wb") as err:
        proc = hosts.popen("head", [sys.executable, str(HERE / "cluster_driver.py"),
                                    str(spec_path)],
                           env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + DRIVER_SECONDS
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            watch.tick()
            continue
        if line is None:
            break
        if line.startswith("{"):
            watch.see(json.loads(line))
    else:
        proc.kill()
        pytest.fail(f"the driver did not finish within {DRIVER_SECONDS:.0f} s; last records: "
                    f"{watch.records[-10:]}")
    if watch.cut_host is not None and watch.restored_at is None:
        hosts.restore(watch.cut_host)
    return proc.wait(30)


@pytest.fixture(scope="module")
def runs(hosts, anchors, tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    digits = prepare_mnist_lmdb(root / "digits", n_train=N_TRAIN, n_test=N_TEST)
    solver = write_lenet(root / "solver", anchors, "memory", f"file:{digits.train}",
                         f"file:{digits.test}", max_iter=MAX_ITER, snapshot=SNAPSHOT,
                         display=DISPLAY)
    hosts_root = root / "hosts"
    home = scratch_spark_home(root)
    cluster = Standalone(hosts, "head", WORKERS, home, hosts_root).start()
    names = ("cluster", "cut", "local")
    for name in names:
        (root / name).mkdir()
    spec = {
        "master": cluster.url, "host": hosts.address("head"), "world": WORLD,
        "timeout": TIMEOUT, "solver": str(solver),
        "runs": [{"name": n, "model": str(root / n / "lenet.caffemodel"),
                  "features": str(root / n / "features.parquet")} for n in names],
    }
    spec_path = root / "spec.json"
    spec_path.write_text(json.dumps(spec))
    env = cluster.env("head")
    env["PYTHONPATH"] = str(PYTHON_DIR)
    env["PYSPARK_PYTHON"] = sys.executable
    watch = Watch(hosts, hosts_root)
    stderr = root / "driver.stderr"
    code = drive(hosts, spec_path, watch, env, stderr)
    veth_bytes = {w: int(Path(f"/sys/class/net/{hosts.veth(w)}/statistics/rx_bytes").read_text())
                  for w in WORKERS}
    errors = [r["error"] for r in watch.records if "error" in r]
    unavailable = [r["unavailable"] for r in watch.records if "unavailable" in r]
    if unavailable:
        pytest.fail(f"the cluster's executors did not start: {unavailable[0]}\n"
                    + cluster.tails())
    done = {r["done"]: r for r in watch.records if "done" in r}
    tail = stderr.read_text(errors="replace")[-3000:]
    assert code == 0 and not errors, (code, errors, watch.records[-20:], tail)
    assert set(done) == set(names), watch.records[-20:]
    seconds = ", ".join(f"{n} {done[n]['seconds']:.1f} s" for n in names)
    print(f"\nnetns cluster: {seconds}; cut at iteration {watch.cut_iteration}, link back "
          f"after {(watch.restored_at or 0) - (watch.cut_at or 0):.1f} s")
    for rank, report in sorted(watch.failed.items()):
        print(f"rank {rank}: {report.splitlines()[-1][:300]}")
    return root, done, watch, veth_bytes


def summary(run: dict) -> list[tuple]:
    return [(s["rank"], s["iter"], s["attempt"], s["resumed_from"]) for s in run["summaries"]]


def features(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = pq.read_table(path).sort_by("SampleID")
    return (np.asarray(table["SampleID"].to_pylist()), np.asarray(table["label"].to_pylist()),
            np.asarray(table["ip2"].to_pylist(), dtype=np.float32))


def test_the_cluster_trains_the_local_model(runs):
    root, done, watch, veth_bytes = runs
    for name in ("cluster", "local"):
        assert summary(done[name]) == [(r, MAX_ITER, 0, None) for r in range(WORLD)]
    # Each rank ran on a host of its own, so every ring link crossed a veth.
    assert sorted(watch.rank_host["cluster"].values()) == WORKERS
    got = params(root / "cluster" / "lenet.caffemodel")
    want = params(root / "local" / "lenet.caffemodel")
    start = params(root / "cluster" / f"mnist_lenet_iter_{SNAPSHOT}.caffemodel")
    assert got.keys() == want.keys() == {"conv1", "conv2", "ip1", "ip2"}
    assert sum(b.size for blobs in want.values() for b in blobs) == LENET_FLOATS
    for name in want:
        for g, w, s in zip(got[name], want[name], start[name], strict=True):
            # spark_util.assert_same_model's tolerance: only last-digit rounding
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7, err_msg=name)
            assert np.abs(w - s).max() > 1e-4, f"{name} did not train after the snapshot"
    ids, labels, ip2 = features(root / "cluster" / "features.parquet")
    ids_local, labels_local, ip2_local = features(root / "local" / "features.parquet")
    assert len(ids) == N_TEST and np.array_equal(ids, ids_local)
    np.testing.assert_array_equal(labels, labels_local)
    np.testing.assert_allclose(ip2, ip2_local, rtol=1e-5, atol=1e-5)
    # What each worker's link brought in, over both cluster runs, is at least the ring's
    # share of one run's gradients: 2(N-1)/N of the parameters per iteration.
    ring_share = 2 * (WORLD - 1) / WORLD * LENET_FLOATS * 4 * MAX_ITER
    for worker, received in veth_bytes.items():
        assert received > ring_share, (worker, received, ring_share)


def test_a_cut_link_is_a_peer_timeout_and_training_resumes(runs):
    root, done, watch, _ = runs
    assert watch.cut_at is not None, "rank 0 never reported iteration CUT_AFTER"
    assert watch.cut_iteration < MAX_ITER
    assert watch.restored_at is not None
    for rank in set(range(WORLD)) - {CUT_RANK}:
        report = watch.failed.get(rank, "")
        assert "PeerTimeout" in report, (rank, report)
        assert re.search(rf"\brank {CUT_RANK}\b", report.split("PeerTimeout", 1)[1]), report
    # Both other ranks failed before the link came back, within the ring's timeout and a
    # margin for a loaded machine.
    assert watch.restored_at - watch.cut_at < RESTORE_AFTER, "the failures came too late"
    resumed = summary(done["cut"])
    assert {r[2] for r in resumed} == {1}, resumed
    assert {r[3] for r in resumed} == {resumed[0][3]} and resumed[0][3] % SNAPSHOT == 0
    assert SNAPSHOT <= resumed[0][3] <= watch.cut_iteration, (resumed, watch.cut_iteration)
    assert [r[:2] for r in resumed] == [(r, MAX_ITER) for r in range(WORLD)]
    messages = [r.get("log", "") for r in watch.records]
    assert any(re.match(rf"\[rank 0\] attempt 1: resuming from .*_iter_{resumed[0][3]}"
                        r"\.solverstate", m) for m in messages)
    got = params(root / "cut" / "lenet.caffemodel")
    want = params(root / "cluster" / "lenet.caffemodel")
    for name in want:
        for g, w in zip(got[name], want[name], strict=True):
            # tests/spark/test_fault.py's tolerance for a resumed run
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=name)

