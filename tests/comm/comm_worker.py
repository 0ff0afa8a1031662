"""One rank of a tests/comm scenario (started by ranks.py as its own process).

    python comm_worker.py <scenario> [options]

Joins the ring through the test's rendezvous (environment TEST_*), runs the scenario, and
prints one JSON line: {"ok": true, ...} or {"error": <class name>, "message": ...} (exit 3).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

import numpy as np

from caffeonspark.distributed.comm import CommOptions, connect
from caffeonspark.distributed.rendezvous import LocalRendezvous
from caffeonspark.errors import CommError


def rank_data(seed: int, rank: int, length: int) -> np.ndarray:
    """Rank `rank`'s input for one grid case (the test recomputes it)."""
    return np.random.default_rng([seed, rank, length]).standard_normal(length).astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario")
    parser.add_argument("--out", default="")
    parser.add_argument("--lengths", default="")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--average", action="store_true")
    parser.add_argument("--root", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--segment-bytes", type=int, default=None)  # None: CommOptions'
    parser.add_argument("--window", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--fault-rank", type=int, default=-1)
    parser.add_argument("--fault-at", type=int, default=10)
    parser.add_argument("--fault", default="")
    parser.add_argument("--secret", default="")
    parser.add_argument("--wait-stdin-rank", type=int, default=-1)
    parser.add_argument("--encrypt", default="")  # the ranks that encrypt: "all" or "0,2"
    parser.add_argument("--relay", default="")  # rank 1 reaches rank 0 through this address
    parser.add_argument("--rendezvous2", default="")  # interleave: the second ring's rendezvous
    parser.add_argument("--partner", default="tcp")  # interleave: the second ring's transport
    args = parser.parse_args()

    rank = int(os.environ["TEST_RANK"])
    world = int(os.environ["TEST_WORLD_SIZE"])
    secret = bytes.fromhex(os.environ["TEST_SECRET"])
    rendezvous = LocalRendezvous(os.environ["TEST_RENDEZVOUS"], rank, secret, args.timeout)
    chosen = {"segment_bytes": args.segment_bytes, "window": args.window}
    encrypt = args.encrypt == "all" or str(rank) in args.encrypt.split(",")
    options = CommOptions(
        timeout=args.timeout,
        encrypt=encrypt,
        **{name: value for name, value in chosen.items() if value is not None},
    )
    report: dict = {"rank": rank}
    try:
        if rank == args.wait_stdin_rank:
            from caffeonspark.distributed.comm import Communicator, listen

            listener = listen()
            addresses = rendezvous.all_gather(listener.address)
            sys.stdin.readline()  # the test says when to connect
            comm = Communicator(listener, rank, addresses, secret, "test-job", options)
        elif args.relay:
            comm = join_through_relay(rank, rendezvous, secret, options, args)
        else:
            ring_secret = args.secret.encode() if args.secret else secret
            comm = connect(
                rank, world, rendezvous.all_gather, ring_secret, "test-job", options=options
            )
        report.update(transport=comm.transport, transport_note=comm.transport_note)
        SCENARIOS[args.scenario](comm, args, report)
        comm.close()
    except CommError as error:
        report.update(error=type(error).__name__, message=str(error), at=time.monotonic())
        print(json.dumps(report), flush=True)
        return 3
    report["ok"] = True
    print(json.dumps(report), flush=True)
    return 0


def join_through_relay(rank, rendezvous, secret, options, args):
    """Rank 0 publishes its listener's address in --out/rank0_address for the test's relay;
    rank 1 connects to the relay (--relay) instead of to rank 0."""
    from caffeonspark.distributed.comm import Communicator, listen

    listener = listen()
    if rank == 0:
        path = os.path.join(args.out, "rank0_address")
        with open(path + ".tmp", "w") as f:
            f.write(listener.address)
        os.replace(path + ".tmp", path)
    addresses = list(rendezvous.all_gather(listener.address))
    if rank == 1:
        addresses[0] = args.relay
    return Communicator(listener, rank, addresses, secret, "test-job", options)


def grid(comm, args, report) -> None:
    for length in (int(n) for n in args.lengths.split(",")):
        data = rank_data(args.seed, comm.rank, length)
        comm.allreduce(data, average=args.average)
        np.save(os.path.join(args.out, f"r{comm.rank}_n{length}.npy"), data)


def broadcast(comm, args, report) -> None:
    for length in (int(n) for n in args.lengths.split(",")):
        data = rank_data(args.seed, comm.rank, length)
        comm.broadcast(data, root=args.root)
        np.save(os.path.join(args.out, f"r{comm.rank}_n{length}.npy"), data)


def barrier(comm, args, report) -> None:
    """Rank r arrives r * 0.2 s late; nobody may leave before the last one arrived."""
    time.sleep(0.2 * comm.rank)  # the staggered arrival is the thing under test
    report["arrived"] = time.monotonic()
    comm.barrier()
    report["left"] = time.monotonic()


def loop(comm, args, report) -> None:
    """Repeated allreduces; --fault-rank misbehaves at iteration --fault-at."""
    data = np.ones(args.count, dtype=np.float32)
    for i in range(args.iterations):
        if comm.rank == args.fault_rank and i == args.fault_at:
            report["fault_at"] = time.monotonic()
            print(json.dumps(report), flush=True)
            if args.fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            elif args.fault == "stop":
                os.kill(os.getpid(), signal.SIGSTOP)
            elif args.fault == "abort":
                comm.abort("the test aborts this rank")
            elif args.fault == "exit":
                os._exit(7)
            elif args.fault == "mismatch":
                data = np.ones(args.count + 1, dtype=np.float32)
            elif args.fault == "barrier":
                comm.barrier()
        data[:] = 1
        comm.allreduce(data)
        if data[0] != comm.world_size:
            raise AssertionError(f"iteration {i}: {data[0]} != {comm.world_size}")
    report["iterations"] = args.iterations


def interleave(comm, args, report) -> None:
    """Allreduces alternating op by op between `comm` and a second communicator on
    --partner's transport (its own ring, through --rendezvous2); rank r computes its op i
    a little late when i % world_size == r, so ranks leave each ring at different times."""
    from caffeonspark.distributed.rendezvous import LocalRendezvous

    secret = bytes.fromhex(os.environ["TEST_SECRET"])
    rendezvous = LocalRendezvous(args.rendezvous2, comm.rank, secret, args.timeout)
    saved = os.environ.pop("COS_TRANSPORT", None)  # it would override the partner's transport
    try:
        options = CommOptions(timeout=args.timeout, transport=args.partner)
        other = connect(comm.rank, comm.world_size, rendezvous.all_gather, secret, "test-job-2",
                        options=options)
    finally:
        if saved is not None:
            os.environ["COS_TRANSPORT"] = saved
    report["partner_transport"] = other.transport
    world = comm.world_size
    expected = world * (world + 1) / 2
    data = np.empty(args.count, dtype=np.float32)
    started = time.monotonic()
    for i in range(args.iterations):
        for which in (comm, other):
            if i % world == comm.rank:
                time.sleep(0.002)  # this rank arrives last: the others wait on it
            data[:] = comm.rank + 1
            which.allreduce(data)
            if not np.all(data == expected):
                raise AssertionError(f"op {i} on {which.transport}: wrong sum {data[:4]}")
    report["seconds"] = time.monotonic() - started
    other.close()


SCENARIOS = {
    "grid": grid,
    "broadcast": broadcast,
    "barrier": barrier,
    "loop": loop,
    "interleave": interleave,
}

if __name__ == "__main__":
    sys.exit(main())
