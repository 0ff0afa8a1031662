"""Allreduce bandwidth across rank processes on this machine, nccl-tests style: our ring
(caffeonspark.distributed, TCP over loopback) and torch.distributed's Gloo backend in the
same run, and the loopback link speed as the ceiling.

    python tools/bench_allreduce.py [--ranks 2 4] [--sizes-mb 1 16 64 256] [--backends ours gloo]
                                    [--repeats 1] [--segment-kb KB] [--window N] [--encrypt]

(--segment-kb, --window and --socket-buffer-kb default to the engine's CommOptions.)
--encrypt adds the backend `aes`: our ring with CommOptions(encrypt=True) (AES-256-GCM on
every frame), a second communicator in the same rank processes, alternating with the others
op by op; the table then also shows busbw aes/ours, the throughput kept with encryption.
--ucx adds the backends `ucx-sm` and `ucx-tcp`: our ring on the UCX transport
(CommOptions(transport="ucx", ucx_tls="sm" / "tcp"): UCX over shared memory and over TCP),
again communicators of their own in the same processes; the table then also shows busbw
<backend>/ours. (`ucx-rc` - UCX_TLS=rc,sm - where the machine has an RDMA device.)
They alternate op by op with the others like every backend (each UCX transport's progress
thread keeps its worker moving while the rank runs another backend's op).

Both backends live in the same rank processes and alternate op by op (each op after its
own barrier), so load from elsewhere on a shared machine hits both alike. For each world
size and buffer size (float32, sum): time = median over the timed ops of the slowest
rank's time for that op, algbw = bytes / time, busbw = algbw *
2(n-1)/n (what each rank's link carries), #wrong = elements differing from the exact sum
in a separate checked run (rank r contributes r + 1 everywhere), cpu = CPU time per
allreduce summed over all threads of all ranks (what the allreduce costs the machine,
nearly independent of other load; time is not, on a shared machine).

Link speed: one plain TCP stream between two processes (`link 1 stream`), and a ring of
plain TCP streams in which each of n processes sends to the next while receiving from the
previous (`link ring n`): the same sockets pattern as the ring allreduce without its
arithmetic, the ceiling for busbw on a machine where every rank's sends and receives share
the same cores. torch is a benchmark peer only, never a dependency.

Shaped links (root; tests/cluster/netns_hosts.py): one rank per network namespace, every
rank's link shaped with tc to each rate (Gbit/s), after a row for the unshaped veths:

    python tools/bench_allreduce.py --shaped 1 10 25 [--delay-us 50] [--ranks 2 3]
                                    [--sizes-mb 1 16 64 256]

    python tools/bench_allreduce.py --overlap [--ranks 2] [--iterations 30]

Overlap: LeNet (batch 64) and CIFAR-10 quick (batch 100) trained data-parallel by 2 rank
processes (Input layers filled once, so only forward + backward + reduction + update is
timed), for a few bucket settings. Per iteration: update waits = the solver thread's wait
for its buckets before the update (this includes waiting for a slower rank); comm alone =
the same bucket allreduces run back to back afterwards, ranks started together (the
communication cost, median); exposed = how long reduction went on after the last rank had
finished backward (from DataParallel.timeline, on the clock all processes share: waiting
for a slower rank is not counted; median over iterations); hidden = 1 - exposed / comm
alone, the share of the communication cost that ran while backward was still computing.
`1 rank` is the same net trained alone, for the iteration time without communication.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
CHUNK = 4 << 20


def rendezvous_variable(backend: str) -> str:
    """The environment variable holding a UCX backend's own rendezvous address."""
    return "BENCH_RENDEZVOUS_" + backend.upper().replace("-", "_").replace("+", "_")


def iterations_for(size_bytes: int) -> int:
    return max(3, min(50, int(1.5e9 / max(size_bytes, 1))))


# ---- rank processes ----------------------------------------------------------------------


def comm_options(args: argparse.Namespace):
    """CommOptions from the flags; flags left out keep CommOptions' defaults (the engine's)."""
    from caffeonspark.distributed.comm import CommOptions

    chosen = {
        "segment_bytes": None if args.segment_kb is None else args.segment_kb << 10,
        "window": args.window,
        "socket_buffer_bytes": (
            None if args.socket_buffer_kb is None else args.socket_buffer_kb << 10
        ),
    }
    return CommOptions(
        timeout=120,
        send_thread=not args.no_send_thread,
        **{name: value for name, value in chosen.items() if value is not None},
    )


def run_interleaved(
    rank: int, world: int, sizes: list[int], args: argparse.Namespace
) -> list[dict]:
    """Both backends in the same rank processes, alternating op by op (each after its own
    barrier), so a burst of load from elsewhere hits both alike."""
    backends = {}
    closers = []
    if "ours" in args.backends and os.environ.get("BENCH_RING"):
        # --shaped: each rank in its own network namespace, at an address known in advance
        from caffeonspark.distributed.comm import Communicator, listen

        secret = bytes.fromhex(os.environ["BENCH_SECRET"])
        addresses = os.environ["BENCH_RING"].split(",")
        host, port = addresses[rank].rsplit(":", 1)
        comm = Communicator(listen(host, int(port)), rank, addresses, secret, "bench",
                            comm_options(args))
        backends["ours"] = (comm.allreduce, comm.barrier)
        closers.append(comm.close)
    elif "ours" in args.backends:
        from caffeonspark.distributed.comm import connect
        from caffeonspark.distributed.rendezvous import LocalRendezvous

        secret = bytes.fromhex(os.environ["BENCH_SECRET"])
        rendezvous = LocalRendezvous(os.environ["BENCH_RENDEZVOUS"], rank, secret)
        options = comm_options(args)
        comm = connect(rank, world, rendezvous.all_gather, secret, "bench", options=options)
        backends["ours"] = (comm.allreduce, comm.barrier)
        closers.append(comm.close)
    if "aes" in args.backends:
        from caffeonspark.distributed.comm import connect
        from caffeonspark.distributed.rendezvous import LocalRendezvous

        secret = bytes.fromhex(os.environ["BENCH_SECRET"])
        rendezvous = LocalRendezvous(os.environ["BENCH_RENDEZVOUS_AES"], rank, secret)
        sealed_options = dataclasses.replace(comm_options(args), encrypt=True)
        sealed = connect(rank, world, rendezvous.all_gather, secret, "aes", options=sealed_options)
        backends["aes"] = (sealed.allreduce, sealed.barrier)
        closers.append(sealed.close)
    for name in [b for b in args.backends if b.startswith("ucx-")]:
        from caffeonspark.distributed.comm import connect
        from caffeonspark.distributed.rendezvous import LocalRendezvous

        secret = bytes.fromhex(os.environ["BENCH_SECRET"])
        rendezvous = LocalRendezvous(os.environ[rendezvous_variable(name)], rank, secret)
        tls = name.split("-", 1)[1].replace("+", ",")
        ucx_options = dataclasses.replace(comm_options(args), transport="ucx", ucx_tls=tls)
        ucx = connect(rank, world, rendezvous.all_gather, secret, name, options=ucx_options)
        if rank == 0:
            print(f"# {name}: {ucx.transport}", file=sys.stderr, flush=True)
        backends[name] = (ucx.allreduce, ucx.barrier)
        closers.append(ucx.close)
    if "gloo" in args.backends:
        import torch
        import torch.distributed as dist

        torch.set_num_threads(1)
        dist.init_process_group(
            "gloo", init_method=os.environ["BENCH_STORE"], rank=rank, world_size=world
        )
        backends["gloo"] = (lambda array: dist.all_reduce(torch.from_numpy(array)), dist.barrier)
        closers.append(dist.destroy_process_group)
    rows = []
    for size in sizes:
        count = size // 4
        data = np.empty(count, dtype=np.float32)
        row: dict = {"size": size, "count": count, "times": {}, "cpus": {}, "wrong": {}}
        for name, (allreduce, _) in backends.items():
            data[:] = rank + 1
            allreduce(data)  # the checked run (also the warm-up)
            row["wrong"][name] = int(np.count_nonzero(data != world * (world + 1) / 2))
            row["times"][name], row["cpus"][name] = [], []
        for _ in range(iterations_for(size)):
            for name, (allreduce, barrier) in backends.items():
                data[:] = 1e-3
                barrier()
                start, cpu_start = time.perf_counter(), time.process_time()
                allreduce(data)
                row["times"][name].append(time.perf_counter() - start)
                row["cpus"][name].append(time.process_time() - cpu_start)  # all its threads
        rows.append(row)
    for close in closers:
        close()
    return rows


def link_worker(role: str, address: str, total: int) -> float:
    """Plain TCP: 'send' pushes `total` bytes to address; 'recv' listens there and returns
    the receive throughput (bytes/s)."""
    buffer = bytearray(CHUNK)
    host, port = address.rsplit(":", 1)
    if role == "send":
        with socket.create_connection((host, int(port))) as conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sent = 0
            view = memoryview(buffer)
            while sent < total:
                conn.sendall(view[: min(CHUNK, total - sent)])
                sent += min(CHUNK, total - sent)
        return 0.0
    raise ValueError(role)


def ring_link_rank(rank: int, world: int, total: int, buffer_bytes: int) -> float:
    """Rank `rank` of a ring of plain streams: send `total` bytes right while receiving
    `total` bytes from the left, cycling through buffers of `buffer_bytes` (as large as the
    allreduce buffers, so memory traffic is alike); returns this rank's bytes/s."""
    listen_port = int(os.environ["BENCH_BASE_PORT"]) + rank
    right_port = int(os.environ["BENCH_BASE_PORT"]) + (rank + 1) % world
    server = socket.create_server(("127.0.0.1", listen_port))
    right = None
    while right is None:
        try:
            right = socket.create_connection(("127.0.0.1", right_port))
        except ConnectionRefusedError:
            time.sleep(0.01)  # the neighbour is still starting: retry the connect
    left, _ = server.accept()
    for conn in (left, right):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # Start together: one byte round the ring.
    right.sendall(b"s")
    left.recv(1)
    span = max(CHUNK, buffer_bytes // CHUNK * CHUNK)
    outgoing = memoryview(bytearray(span))
    incoming = memoryview(bytearray(span))
    received = [0]

    def receive() -> None:
        while received[0] < total:
            at = received[0] % span
            n = left.recv_into(incoming[at:], min(CHUNK, total - received[0], span - at))
            if n == 0:
                break
            received[0] += n

    start = time.perf_counter()
    reader = threading.Thread(target=receive)
    reader.start()
    sent = 0
    while sent < total:
        at = sent % span
        right.sendall(outgoing[at : at + min(CHUNK, total - sent)])
        sent += min(CHUNK, total - sent)
    reader.join()
    seconds = time.perf_counter() - start
    for conn in (left, right, server):
        conn.close()
    return total / seconds


NETS = {"lenet": ("LENET", 64), "cifar10_quick": ("CIFAR_QUICK", 100)}
BUCKETS = [
    ("1M/25M", 1 << 20, 25 << 20),
    ("256K/1M", 256 << 10, 1 << 20),
    ("64K/256K", 64 << 10, 256 << 10),
]


def overlap_rank(
    rank: int, world: int, net_name: str, first: int, cap: int, iterations: int
) -> dict:
    """One rank of the overlap measurement (see the module docstring)."""
    import bench_train
    from google.protobuf import text_format

    from caffeonspark import engine
    from caffeonspark.distributed.comm import CommOptions, connect
    from caffeonspark.distributed.data_parallel import DataParallel, DataParallelOptions
    from caffeonspark.distributed.rendezvous import LocalRendezvous
    from caffeonspark.proto import caffe_pb2
    from caffeonspark.solver import Solver

    engine.set_num_threads(1)
    secret = bytes.fromhex(os.environ["BENCH_SECRET"])
    rendezvous = LocalRendezvous(os.environ["BENCH_RENDEZVOUS"], rank, secret)
    comm = connect(
        rank, world, rendezvous.all_gather, secret, "overlap", options=CommOptions(timeout=120)
    )
    param = text_format.Parse(bench_train.SOLVER, caffe_pb2.SolverParameter())
    param.net_param.CopyFrom(
        text_format.Parse(getattr(bench_train, NETS[net_name][0]), caffe_pb2.NetParameter())
    )
    solver = Solver(param)
    rng = np.random.default_rng(rank)
    solver.net.blobs["data"].data[...] = rng.standard_normal(solver.net.blobs["data"].shape)
    solver.net.blobs["label"].data[...] = rng.integers(0, 10, solver.net.blobs["label"].shape)
    sync = DataParallel(
        solver, comm, DataParallelOptions(first_bucket_bytes=first, bucket_bytes=cap)
    )
    solver.step(3)
    before = sync.stats
    start = time.perf_counter()
    solver.step(iterations)
    seconds = time.perf_counter() - start
    after = sync.stats
    timeline = sync.timeline[-iterations:]
    sync.detach()
    # The same bucket allreduces alone, ranks started together: the communication cost
    # without the waiting for a slower peer that the in-training comm time also contains.
    buffers = [np.zeros(b["count"], dtype=np.float32) for b in sync.buckets]
    for buffer in buffers:
        comm.allreduce(buffer, average=True)
    alone_times = []
    for _ in range(iterations):
        comm.barrier()
        start_alone = time.perf_counter()
        for buffer in buffers:
            comm.allreduce(buffer, average=True)
        alone_times.append(time.perf_counter() - start_alone)
    alone = float(np.median(alone_times))
    comm.close()
    return {
        "iteration_ms": seconds / iterations * 1e3,
        "comm_ms": (after["comm_seconds"] - before["comm_seconds"]) / iterations * 1e3,
        "alone_ms": alone * 1e3,
        "wait_ms": (after["wait_seconds"] - before["wait_seconds"]) / iterations * 1e3,
        "buckets": len(sync.buckets),
        "timeline": timeline,
    }


def worker_main(args: argparse.Namespace) -> None:
    rank, world = args.rank, args.world
    sizes = [int(mb * (1 << 20)) for mb in args.sizes_mb]
    if args.worker == "interleaved":
        rows = run_interleaved(rank, world, sizes, args)
    elif args.worker == "overlap":
        rows = [
            overlap_rank(rank, world, args.net, args.first_bucket, args.bucket, args.iterations)
        ]
    elif args.worker == "ring-link":
        rows = [
            {
                "bytes_per_second": ring_link_rank(
                    rank, world, args.link_bytes, int(max(args.sizes_mb) * (1 << 20))
                )
            }
        ]
    else:
        raise ValueError(args.worker)
    print(json.dumps(rows), flush=True)


# ---- the driver --------------------------------------------------------------------------


def spawn(kind: str, world: int, args: argparse.Namespace, env: dict,
          wrap=lambda rank, command: command) -> list[list[dict]]:
    """Run `world` rank processes (`wrap(rank, argv)`: e.g. inside a network namespace)."""
    procs = []
    for rank in range(world):
        options = {
            "--worker": kind,
            "--rank": rank,
            "--world": world,
            "--segment-kb": args.segment_kb,
            "--window": args.window,
            "--socket-buffer-kb": args.socket_buffer_kb,
            "--link-bytes": args.link_bytes,
            "--net": args.net,
            "--first-bucket": args.first_bucket,
            "--bucket": args.bucket,
            "--iterations": args.iterations,
        }
        if args.no_send_thread:
            options["--no-send-thread"] = ""
        command = [sys.executable, __file__, "--sizes-mb", *map(str, args.sizes_mb)]
        command += ["--backends", *args.backends]
        for flag, value in options.items():
            if value is not None:  # None: the engine's default, left to the rank
                command += [flag, str(value)] if value != "" else [flag]
        procs.append(subprocess.Popen(wrap(rank, command), env=env, stdout=subprocess.PIPE,
                                      text=True))
    outputs = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{kind} rank failed with exit code {proc.returncode}")
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    return outputs


def base_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def measure_allreduce(world: int, args: argparse.Namespace) -> list[dict]:
    """Per size and backend: seconds (median over ops of the slowest rank's time), cpu
    (median over ops of the CPU time summed over ranks), wrong (summed over ranks)."""
    from caffeonspark.distributed.rendezvous import RendezvousServer

    env = base_env()
    secret = os.urandom(16)
    server = RendezvousServer(world, secret).start(120)
    sealed = RendezvousServer(world, secret).start(120)  # the `aes` ring's own address list
    env.update(
        BENCH_SECRET=secret.hex(),
        BENCH_RENDEZVOUS=server.address,
        BENCH_RENDEZVOUS_AES=sealed.address,
    )
    servers = [server, sealed]
    for name in [b for b in args.backends if b.startswith("ucx-")]:
        servers.append(RendezvousServer(world, secret).start(120))
        env[rendezvous_variable(name)] = servers[-1].address
    try:
        with tempfile.TemporaryDirectory() as folder:
            env["BENCH_STORE"] = f"file://{folder}/store"
            outputs = spawn("interleaved", world, args, env)
    finally:
        for each in servers:
            each.close()
    return aggregate(outputs)


def aggregate(outputs: list[list[dict]]) -> list[dict]:
    results = []
    for index, row in enumerate(outputs[0]):
        entry = {"size": row["size"], "count": row["count"]}
        for name in row["times"]:
            per_op = np.max([out[index]["times"][name] for out in outputs], axis=0)
            cpu = np.sum([out[index]["cpus"][name] for out in outputs], axis=0)
            entry[name] = {
                "seconds": float(np.median(per_op)),
                "cpu": float(np.median(cpu)),
                "wrong": sum(out[index]["wrong"][name] for out in outputs),
            }
        results.append(entry)
    return results


def single_stream_speed(total: int) -> float:
    server = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{server.getsockname()[1]}"
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'tools')!r}); "
        f"import bench_allreduce as b; b.link_worker('send', {address!r}, {total})"
    )
    sender = subprocess.Popen([sys.executable, "-c", code])
    conn, _ = server.accept()
    buffer = bytearray(CHUNK)
    received = 0
    start = time.perf_counter()
    while received < total:
        n = conn.recv_into(buffer)
        if n == 0:
            break
        received += n
    seconds = time.perf_counter() - start
    sender.wait()
    conn.close()
    server.close()
    return received / seconds


def ring_stream_speed(world: int, args: argparse.Namespace) -> float:
    env = base_env()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    env["BENCH_BASE_PORT"] = str(max(20000, min(base, 60000 - world)))
    outputs = spawn("ring-link", world, args, env)
    return min(output[0]["bytes_per_second"] for output in outputs)


def measure_overlap(args: argparse.Namespace) -> None:
    from caffeonspark.distributed.rendezvous import RendezvousServer

    world = args.ranks[0]
    print(
        f"# overlap: {world} ranks, 1 thread each; per iteration, mean over ranks, best of "
        f"{args.repeats} rounds; load average at start: {load_average()}"
    )
    print(
        "| net | buckets (first/cap) | # | 1 rank ms | iteration ms | update waits ms "
        "| comm alone ms | exposed ms | hidden |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for net in NETS:
        for label, first, cap in [("1 rank", 1 << 20, 25 << 20), *BUCKETS]:
            size = 1 if label == "1 rank" else world
            best = None
            for _ in range(args.repeats):
                env = base_env()
                secret = os.urandom(16)
                server = RendezvousServer(size, secret).start(120)
                env.update(BENCH_SECRET=secret.hex(), BENCH_RENDEZVOUS=server.address)
                env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tools"), env["PYTHONPATH"]])
                run = argparse.Namespace(**vars(args))
                run.net, run.first_bucket, run.bucket = net, first, cap
                try:
                    rows = [out[0] for out in spawn("overlap", size, run, env)]
                finally:
                    server.close()
                row = {
                    key: sum(r[key] for r in rows) / len(rows)
                    for key in rows[0]
                    if key != "timeline"
                }
                # Exposed: how long reduction went on after the LAST rank finished backward
                # (no rank can finish before that), per iteration; the clock is shared.
                ends = np.array([[t[0] for t in r["timeline"]] for r in rows]).max(axis=0)
                done = np.array([[t[1] for t in r["timeline"]] for r in rows]).max(axis=0)
                row["exposed_ms"] = float(np.median(np.maximum(done - ends, 0.0)) * 1e3)
                if best is None or row["iteration_ms"] < best["iteration_ms"]:
                    best = row
            if label == "1 rank":
                alone = best["iteration_ms"]
                continue
            cost = best["alone_ms"]
            hidden = min(1.0, max(0.0, 1 - best["exposed_ms"] / cost)) if cost > 0 else 0.0
            print(
                f"| {net} | {label} | {best['buckets']:.0f} | {alone:.1f} | "
                f"{best['iteration_ms']:.1f} | {best['wait_ms']:.2f} | {cost:.2f} | "
                f"{best['exposed_ms']:.2f} | {100 * hidden:.0f}% |",
                flush=True,
            )


def measure_shaped(args: argparse.Namespace) -> None:
    """Our ring across network namespaces (tests/cluster/netns_hosts.py), each rank's eth0
    shaped to each rate of --shaped (Gbit/s; tbf, plus netem's --delay-us where the kernel
    has netem), after the unshaped veths: busbw as a share of the shaped rate."""
    sys.path.insert(0, str(ROOT / "tests" / "cluster"))
    from netns_hosts import Hosts, unavailable

    why = unavailable()
    if why:
        raise SystemExit(f"--shaped: {why}")
    print(f"# {os.cpu_count()} cores; our ring only, one rank per namespace over veths and a "
          f"bridge; busbw = algbw*2(n-1)/n; load average at start: {load_average()}")
    print("| ranks | link | delay us | size | ms | busbw GB/s | busbw Gbit/s | of the rate "
          "| #wrong |")
    print("|---|---|---|---|---|---|---|---|---|")
    for world in args.ranks:
        with Hosts([f"r{i}" for i in range(world)]) as hosts:
            for rate in [0.0, *args.shaped]:
                delay = 0.0
                for name in hosts.names:
                    delay = hosts.shape(name, rate, args.delay_us) if rate else 0.0
                    if not rate:
                        hosts.unshape(name)
                env = base_env()
                env.update(BENCH_SECRET=os.urandom(16).hex(), BENCH_RING=",".join(
                    f"{hosts.address(n)}:29400" for n in hosts.names))
                run = argparse.Namespace(**vars(args))
                run.backends = ["ours"]
                rows = aggregate(spawn("interleaved", world, run, env,
                                       lambda r, cmd: hosts.command(f"r{r}", cmd)))
                for mb, row in zip(args.sizes_mb, rows, strict=True):
                    ours = row["ours"]
                    busbw = row["size"] / ours["seconds"] * 2 * (world - 1) / world
                    share = f"{busbw * 8 / 1e9 / rate:.2f}" if rate else "-"
                    print(f"| {world} | {f'{rate:g} Gbit/s' if rate else 'veth'} | {delay:g} | "
                          f"{mb:g} MB | {ours['seconds'] * 1e3:.2f} | {busbw / 1e9:.3f} | "
                          f"{busbw * 8 / 1e9:.2f} | {share} | {ours['wrong']} |", flush=True)
    print(f"\n# load average at end: {load_average()}")


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--backends", nargs="+", default=["ours", "gloo"])
    parser.add_argument("--repeats", type=int, default=1)
    # Left out, these three keep the engine's defaults (CommOptions).
    parser.add_argument("--segment-kb", type=int, default=None)
    parser.add_argument("--window", type=int, default=None)
    parser.add_argument("--socket-buffer-kb", type=int, default=None)
    parser.add_argument("--no-send-thread", action="store_true")
    parser.add_argument("--encrypt", action="store_true")  # adds the backend `aes`
    parser.add_argument("--ucx", action="store_true")  # adds the backends ucx-sm, ucx-tcp
    parser.add_argument("--link-bytes", type=int, default=2 << 30)
    parser.add_argument("--overlap", action="store_true")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--net", default="lenet")
    parser.add_argument("--first-bucket", type=int, default=1 << 20)
    parser.add_argument("--bucket", type=int, default=25 << 20)
    parser.add_argument("--shaped", type=float, nargs="+", default=None)
    parser.add_argument("--delay-us", type=float, default=50.0)
    parser.add_argument("--worker", default="")
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("--world", type=int, default=1)
    args = parser.parse_args()
    if args.encrypt and "aes" not in args.backends:
        args.backends.append("aes")
    if args.ucx:
        args.backends += [b for b in ("ucx-sm", "ucx-tcp") if b not in args.backends]
    if args.worker:
        worker_main(args)
        return
    if args.overlap:
        measure_overlap(args)
        return
    if args.shaped:
        measure_shaped(args)
        return

    cores = os.cpu_count()
    print(
        f"# {cores} cores; float32 sum; backends alternate op by op in the same processes; "
        "time = median over ops of the slowest rank; busbw = algbw*2(n-1)/n"
    )
    print(f"# load average at start: {load_average()}")
    link = max(single_stream_speed(args.link_bytes) for _ in range(args.repeats)) / 1e9
    print(f"# link 1 stream: {link:.2f} GB/s")
    for world in args.ranks:
        ring_link = max(ring_stream_speed(world, args) for _ in range(args.repeats)) / 1e9
        print(f"\n## {world} ranks   link ring {world}: {ring_link:.2f} GB/s per rank")
        rounds = [measure_allreduce(world, args) for _ in range(args.repeats)]
        header = f"| {'size':>8} | {'count':>10} |"
        for kind in args.backends:
            header += f" {kind} ms | algbw | busbw | #wrong | cpu ms |"
        if {"ours", "gloo"} <= set(args.backends):
            header += " busbw ours/gloo |"
        if "ours" in args.backends:
            header += " ours/link 1 | ours/link ring |"
        if "aes" in args.backends:
            header += " busbw aes/ours |"
        ucx_backends = [b for b in args.backends if b.startswith("ucx-")]
        for kind in ucx_backends if "ours" in args.backends else []:
            header += f" busbw {kind}/ours |"
        print(header)
        print("|" + "---|" * (header.count("|") - 1))
        for index, size in enumerate(args.sizes_mb):
            line = f"| {size:>6g}MB | {rounds[0][index]['count']:>10} |"
            busbws = {}
            for kind in args.backends:
                # The least disturbed round for this size and backend.
                best = min((r[index][kind] for r in rounds), key=lambda e: e["seconds"])
                wrong = sum(r[index][kind]["wrong"] for r in rounds)
                algbw = rounds[0][index]["size"] / best["seconds"] / 1e9
                busbw = algbw * 2 * (world - 1) / world
                busbws[kind] = busbw
                line += (
                    f" {best['seconds'] * 1e3:8.2f} | {algbw:5.2f} | {busbw:5.2f} | {wrong} "
                    f"| {best['cpu'] * 1e3:7.1f} |"
                )
            ours = busbws.get("ours", float("nan"))
            if {"ours", "gloo"} <= set(args.backends):
                line += f" {ours / busbws['gloo']:5.2f} |"
            if "ours" in args.backends:
                line += f" {ours / link:5.2f} | {ours / ring_link:5.2f} |"
            if "aes" in args.backends:
                line += f" {busbws['aes'] / ours:5.2f} |"
            for kind in ucx_backends if "ours" in args.backends else []:
                line += f" {busbws[kind] / ours:5.2f} |"
            print(line, flush=True)
    print(f"\n# load average at end: {load_average()}")


if __name__ == "__main__":
    main()
