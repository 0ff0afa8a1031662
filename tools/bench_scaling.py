"""Data-parallel training across network namespaces (the test hosts of tests/cluster/
netns_hosts.py), links shaped with tc, and a weak-scaling model built from the figures.

    python tools/bench_scaling.py measure [--nets lenet cifar10_quick caffenet] [--ranks 2 3]
                                          [--links 0 1 10 25] [--delay-us 50] [--iterations 8]
                                          [--out docs/scaling_measured.json]
    python tools/bench_scaling.py model [--measured docs/scaling_measured.json]
                                        [--plot docs/scaling.png]

measure (root; one namespace per rank, each rank a process with 1 engine thread, its eth0
shaped to the link rate in Gbit/s, 0 = unshaped veth; `--delay-us` by netem where the kernel
has it) records per net, world size and link, per iteration and as the median over ranks:
- compute: forward + backward + update with no communication, every rank at once (so on a
  2-core machine ranks share cores exactly as in the data-parallel run), and forward alone;
- iteration: the same steps data-parallel (DataParallel, the engine's default buckets);
- update waits: DataParallel.stats wait_seconds, the solver thread waiting for its buckets;
- comm alone: the same bucket allreduces back to back, ranks started together;
- exposed: how long reduction went on after the last rank finished backward
  (DataParallel.timeline, on CLOCK_MONOTONIC, which all namespaces share), median;
- hidden = 1 - exposed / comm alone: the share of communication that ran during backward
  (by the timeline), and net hidden = 1 - (iteration - compute) / comm alone: the share
  that cost no wall time. They differ where cores are short: on 2 cores the comm thread's
  copies slow backward down, so communication overlaps backward yet still costs time.
The same measurement as tools/bench_allreduce.py --overlap, across veths instead of loopback.

model prints the weak-scaling model of docs/SCALING.md (the formulas are there and in
`ring_seconds`), its check against the measured 2-3 rank runs, and draws the plot.
Tests: tests/tools/test_bench_scaling.py.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "tools"))
PORT = 29500
CAFFENET = ROOT.parent / "shared" / "anchors" / "caffe" / "bvlc_reference_caffenet_deploy.prototxt"
NETS = {"lenet": 64, "cifar10_quick": 100, "caffenet": 4}  # name -> batch per rank

# ---- the model ---------------------------------------------------------------------------

GBIT = 1e9 / 8  # bytes/s per Gbit/s
# Links of the model: name -> (bytes/s a rank can send, seconds per ring step before data
# flows). Ethernet: the line rate times the share a TCP stream keeps of it (~94%: headers of
# 1500-byte frames), and the 50 us one-way latency the shaped links here were set to.
# InfiniBand EDR (100 Gb/s): UCX's published bandwidth for it, about 12 GB/s per direction
# (ucx_perftest on ConnectX-class adapters), and a few microseconds per message.
LINKS = {
    "10GbE": (10 * GBIT * 0.94, 50e-6),
    "25GbE": (25 * GBIT * 0.94, 50e-6),
    "IB 100Gb/s (UCX)": (12e9, 3e-6),
}
MODELS = {"CaffeNet (61M)": 61e6, "ResNet-50 (25M)": 25.6e6}
SCALES = (2, 3, 8, 64, 256)


def ring_seconds(grad_bytes: float, world: int, bandwidth: float, latency: float,
                 buckets: int) -> float:
    """One iteration's ring allreduce of `grad_bytes` in `buckets` buckets: each bucket goes
    round the ring in 2(N-1) steps (reduce-scatter, then all-gather) of 1/N of it, so every
    rank sends 2(N-1)/N of the gradients, and each step waits one link latency."""
    if world < 2:
        return 0.0
    return 2 * (world - 1) / world * grad_bytes / bandwidth + 2 * (world - 1) * buckets * latency


def iteration_seconds(compute: float, comm: float, window: float) -> float:
    """Compute, plus the communication that does not fit in the overlap window: `window` is
    the share of the compute time that communication can run under for free (measured:
    hidden seconds / compute seconds, at most backward's share)."""
    return compute + max(0.0, comm - window * compute)


def efficiency(compute: float, comm: float, window: float) -> float:
    """Weak scaling: the same work per executor, so efficiency = time alone / time with N."""
    return compute / iteration_seconds(compute, comm, window)


def window_of(row: dict) -> float:
    """The overlap window a measured run shows: communication seconds that cost no wall
    time (comm alone - (iteration - compute)), as a share of compute, within [0, backward's
    share]."""
    free = row["alone_s"] - max(0.0, row["iteration_s"] - row["compute_s"])
    backward = max(0.0, row["compute_s"] - row["forward_s"]) / row["compute_s"]
    return min(backward, max(0.0, free / row["compute_s"]))


# ---- measurement: one rank ---------------------------------------------------------------


def net_text(name: str, batch: int) -> str:
    import bench_train
    from google.protobuf import text_format

    from caffeonspark.proto import caffe_pb2

    if name == "lenet":
        text = bench_train.LENET.replace("dim: 64", f"dim: {batch}")
    elif name == "cifar10_quick":
        text = bench_train.CIFAR_QUICK.replace("dim: 100", f"dim: {batch}")
    else:  # Caffe's reference CaffeNet (deploy), trained: labels, loss, Gaussian fillers
        net = text_format.Parse(CAFFENET.read_text(), caffe_pb2.NetParameter())
        data = net.layer[0]
        data.top.append("label")
        data.input_param.shape[0].dim[0] = batch
        data.input_param.shape.add().dim.append(batch)
        for layer in net.layer:
            for param in (layer.convolution_param, layer.inner_product_param):
                if layer.type in ("Convolution", "InnerProduct"):
                    param.weight_filler.type = "gaussian"
                    param.weight_filler.std = 0.01
        last = net.layer[-1]
        last.type, last.name = "SoftmaxWithLoss", "loss"
        last.bottom.append("label")
        last.top[0] = "loss"
        return text_format.MessageToString(net)
    return text


def rank_main(args: argparse.Namespace) -> dict:
    import bench_train
    from google.protobuf import text_format

    from caffeonspark import engine
    from caffeonspark.distributed.comm import CommOptions, Communicator, listen
    from caffeonspark.distributed.data_parallel import DataParallel
    from caffeonspark.proto import caffe_pb2
    from caffeonspark.solver import Solver

    engine.set_num_threads(1)
    addresses = args.addresses.split(",")
    host, port = addresses[args.rank].rsplit(":", 1)
    comm = Communicator(listen(host, int(port)), args.rank, addresses,
                        bytes.fromhex(os.environ["BENCH_SECRET"]), "scaling",
                        CommOptions(timeout=300))
    param = text_format.Parse(bench_train.SOLVER, caffe_pb2.SolverParameter())
    param.net_param.CopyFrom(text_format.Parse(net_text(args.net, args.batch),
                                               caffe_pb2.NetParameter()))
    solver = Solver(param)
    rng = np.random.default_rng(args.rank)
    blobs = solver.net.blobs
    blobs["data"].data[...] = rng.standard_normal(blobs["data"].shape)
    label_count = 1000 if args.net == "caffenet" else 10
    blobs["label"].data[...] = rng.integers(0, label_count, blobs["label"].shape)
    n = args.iterations

    def timed(run) -> float:
        comm.barrier()
        start = time.perf_counter()
        run()
        return (time.perf_counter() - start) / n

    solver.step(1)
    forward = timed(lambda: [solver.net.forward() for _ in range(n)])
    compute = timed(lambda: solver.step(n))
    sync = DataParallel(solver, comm)
    solver.step(2)
    before = sync.stats
    iteration = timed(lambda: solver.step(n))
    after = sync.stats
    timeline = sync.timeline[-n:]
    sync.detach()
    buffers = [np.zeros(b["count"], dtype=np.float32) for b in sync.buckets]
    for buffer in buffers:
        comm.allreduce(buffer, average=True)
    alone = []
    for _ in range(n):
        comm.barrier()
        start = time.perf_counter()
        for buffer in buffers:
            comm.allreduce(buffer, average=True)
        alone.append(time.perf_counter() - start)
    comm.close()
    return {
        "forward_s": forward, "compute_s": compute, "iteration_s": iteration,
        "wait_s": (after["wait_seconds"] - before["wait_seconds"]) / n,
        "comm_s": (after["comm_seconds"] - before["comm_seconds"]) / n,
        "alone_s": float(np.median(alone)), "buckets": len(buffers),
        "grad_bytes": 4 * sum(b.size for b in buffers), "timeline": timeline,
    }


# ---- measurement: the driver -------------------------------------------------------------


def measure_one(hosts, world: int, net: str, args: argparse.Namespace) -> dict:
    names = [f"r{i}" for i in range(world)]
    addresses = ",".join(f"{hosts.address(n)}:{PORT}" for n in names)
    env = dict(os.environ, BENCH_SECRET=secrets.token_hex(16), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT / "tools")]))
    procs = [
        hosts.popen(name, [sys.executable, __file__, "rank", "--rank", str(rank),
                           "--addresses", addresses, "--net", net, "--batch", str(NETS[net]),
                           "--iterations", str(args.iterations)],
                    env=env, stdout=subprocess.PIPE, text=True)
        for rank, name in enumerate(names)
    ]
    rows = []
    for proc in procs:
        out, _ = proc.communicate(timeout=args.rank_timeout)
        if proc.returncode != 0:
            raise SystemExit(f"{net}, {world} ranks: a rank failed ({proc.returncode})")
        rows.append(json.loads(out.strip().splitlines()[-1]))
    ends = np.array([[t[0] for t in r["timeline"]] for r in rows]).max(axis=0)
    done = np.array([[t[1] for t in r["timeline"]] for r in rows]).max(axis=0)
    row = {key: float(np.median([r[key] for r in rows])) for key in rows[0] if key != "timeline"}
    row["exposed_s"] = float(np.median(np.maximum(done - ends, 0.0)))
    row["hidden"] = (min(1.0, max(0.0, 1 - row["exposed_s"] / row["alone_s"]))
                     if row["alone_s"] > 0 else 0.0)
    row["net_hidden"] = (min(1.0, max(0.0, 1 - (row["iteration_s"] - row["compute_s"])
                                      / row["alone_s"])) if row["alone_s"] > 0 else 0.0)
    return row


def measure(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "cluster"))
    from netns_hosts import Hosts, unavailable

    why = unavailable()
    if why:
        raise SystemExit(f"bench_scaling: {why}")
    results = []
    print(f"# {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}; per iteration, "
          "median over ranks; link 0 = unshaped veth")
    print("| net | ranks | link Gbit/s | delay us | grad MB | buckets | compute ms | forward ms "
          "| iteration ms | update waits ms | comm alone ms | exposed ms | hidden | net hidden |")
    print("|" + "---|" * 14)
    for world in args.ranks:
        with Hosts([f"r{i}" for i in range(world)]) as hosts:
            for link in args.links:
                delay = 0.0
                for name in hosts.names:
                    if link:
                        delay = hosts.shape(name, link, args.delay_us)
                    else:
                        hosts.unshape(name)
                for net in args.nets:
                    row = measure_one(hosts, world, net, args)
                    row.update(net=net, world=world, link_gbit=link, delay_us=delay)
                    results.append(row)
                    print(f"| {net} | {world} | {link or 'veth'} | {delay:g} | "
                          f"{row['grad_bytes'] / 1e6:.1f} | {row['buckets']:.0f} | "
                          f"{row['compute_s'] * 1e3:.1f} | {row['forward_s'] * 1e3:.1f} | "
                          f"{row['iteration_s'] * 1e3:.1f} | {row['wait_s'] * 1e3:.2f} | "
                          f"{row['alone_s'] * 1e3:.2f} | {row['exposed_s'] * 1e3:.2f} | "
                          f"{100 * row['hidden']:.0f}% | {100 * row['net_hidden']:.0f}% |",
                          flush=True)
    Path(args.out).write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(),
        "iterations": args.iterations, "results": results}, indent=1) + "\n")


# ---- the model: check and extrapolation --------------------------------------------------


def model(args: argparse.Namespace) -> None:
    measured = json.loads(Path(args.measured).read_text())["results"]
    veth = {(r["net"], r["world"]): r for r in measured if not r["link_gbit"]}
    print("## Check: the model against the measured runs (shaped links)\n")
    print("Per net and rank count, from the unshaped run only: the machine's ceiling (ring "
          "bandwidth = 2(N-1)/N x gradient bytes / comm alone) and the overlap window. "
          "Predicted comm = ring_seconds(gradient bytes, N, min(rate x 0.94, ceiling), delay, "
          "buckets); predicted iteration = measured compute + max(0, predicted comm - window "
          "x compute).\n")
    print("| net | ranks | link Gbit/s | ceiling GB/s | window | comm alone ms "
          "| predicted comm ms | measured / predicted | iteration ms | predicted ms "
          "| measured / predicted |")
    print("|" + "---|" * 11)
    for r in measured:
        base = veth.get((r["net"], r["world"]))
        if not r["link_gbit"] or base is None:
            continue
        share = 2 * (r["world"] - 1) / r["world"]
        ceiling = share * base["grad_bytes"] / base["alone_s"]
        rate = min(r["link_gbit"] * GBIT * 0.94, ceiling)
        window = window_of(base)
        comm = ring_seconds(r["grad_bytes"], r["world"], rate, r["delay_us"] * 1e-6,
                            int(r["buckets"]))
        predicted = iteration_seconds(r["compute_s"], comm, window)
        print(f"| {r['net']} | {r['world']} | {r['link_gbit']:g} | {ceiling / 1e9:.2f} | "
              f"{window:.2f} | {r['alone_s'] * 1e3:.1f} | {comm * 1e3:.1f} | "
              f"{r['alone_s'] / comm:.2f} | {r['iteration_s'] * 1e3:.1f} | "
              f"{predicted * 1e3:.1f} | {r['iteration_s'] / predicted:.2f} |")
    caffenet = [r for r in measured if r["net"] == "caffenet"]
    window = float(np.median([window_of(r) for r in caffenet])) if caffenet else 0.0
    buckets = int(np.median([r["buckets"] for r in caffenet])) if caffenet else 14
    compute = args.compute
    print(f"\n## Extrapolation (overlap window {window:.2f} of compute, CaffeNet's measured "
          f"median; {buckets} buckets)\n")
    print("Ring communication per iteration (ms), and the compute per iteration an executor "
          "needs for 90% weak-scaling efficiency (s; efficiency >= 0.9 when comm - window x "
          "compute <= compute / 9):\n")
    print("| gradients | link | " + " | ".join(f"N={n} comm ms" for n in SCALES[2:])
          + " | " + " | ".join(f"N={n} T90 s" for n in SCALES[2:]) + " |")
    print("|" + "---|" * (2 + 2 * len(SCALES[2:])))
    for label, params in MODELS.items():
        for link, (rate, latency) in LINKS.items():
            comms = [ring_seconds(4 * params, n, rate, latency, buckets) for n in SCALES[2:]]
            need = [c / (1 / 9 + window) for c in comms]
            print(f"| {label} | {link} | " + " | ".join(f"{c * 1e3:.0f}" for c in comms)
                  + " | " + " | ".join(f"{t:.2f}" for t in need) + " |")
    # With a core to spare for the comm thread, communication runs under backward as the
    # timeline shows (hidden share) without slowing it: the window is then backward's share
    # times the timeline's hidden share, an upper bound for what overlap can give.
    spare = float(np.median([r["hidden"] * (r["compute_s"] - r["forward_s"]) / r["compute_s"]
                             for r in caffenet])) if caffenet else 0.0
    curves = {}
    for title, win in (("measured window", window), ("window with a spare core", spare)):
        print(f"\nWeak-scaling efficiency with {compute:g} s of compute per iteration, {title} "
              f"({win:.2f} of compute):\n")
        print("| gradients | link | " + " | ".join(f"N={n}" for n in SCALES[2:]) + " |")
        print("|" + "---|" * (2 + len(SCALES[2:])))
        for label, params in MODELS.items():
            for link, (rate, latency) in LINKS.items():
                ns = np.unique(np.geomspace(2, 256, 40).astype(int))
                curves[(title, label, link)] = (ns, [
                    efficiency(compute, ring_seconds(4 * params, int(n), rate, latency, buckets),
                               win) for n in ns])
                row = [efficiency(compute, ring_seconds(4 * params, n, rate, latency, buckets),
                                  win) for n in SCALES[2:]]
                print(f"| {label} | {link} | " + " | ".join(f"{100 * e:.0f}%" for e in row)
                      + " |")
    if args.plot:
        plot(curves, compute, window, spare, args.plot)


def plot(curves: dict, compute: float, window: float, spare: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    colors = dict(zip(LINKS, ("tab:blue", "tab:orange", "tab:green"), strict=True))
    for axis, label in zip(axes, MODELS, strict=True):
        for (title, model_label, link), (ns, effs) in curves.items():
            if model_label != label:
                continue
            dashed = title != "measured window"
            axis.plot(ns, [100 * e for e in effs], color=colors[link],
                      linestyle="--" if dashed else "-",
                      label=f"{link}" + (" (spare core)" if dashed else ""))
        axis.set_xscale("log", base=2)
        ticks = (2, *SCALES[2:])
        axis.set_xticks(ticks, [str(n) for n in ticks])
        axis.set_ylim(0, 100)
        axis.set_title(f"{label} gradients")
        axis.set_xlabel("executors (ring allreduce)")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("weak-scaling efficiency %")
    axes[0].legend(fontsize=7)
    figure.suptitle(f"compute {compute:g} s/iteration; communication free under "
                    f"{100 * window:.0f}% (measured, 2 cores) or {100 * spare:.0f}% "
                    "(spare core) of it", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"\nplot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["measure", "model", "rank"])
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--links", type=float, nargs="+", default=[0, 1, 10, 25])
    parser.add_argument("--delay-us", type=float, default=50.0)
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--rank-timeout", type=float, default=600.0)
    parser.add_argument("--out", default=str(ROOT / "docs" / "scaling_measured.json"))
    parser.add_argument("--measured", default=str(ROOT / "docs" / "scaling_measured.json"))
    parser.add_argument("--plot", default=str(ROOT / "docs" / "scaling.png"))
    parser.add_argument("--compute", type=float, default=0.5)
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("--addresses", default="")
    parser.add_argument("--net", default="lenet")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    if args.mode == "rank":
        print(json.dumps(rank_main(args)), flush=True)
    elif args.mode == "measure":
        measure(args)
    else:
        model(args)


if __name__ == "__main__":
    main()
