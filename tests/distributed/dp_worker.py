"""One rank of a tests/distributed scenario run through tests/comm/ranks.py: trains a solver
with the Python API (train_rank's steps) after a scenario-specific change on rank 1, and
prints one JSON line ({"ok": true} or {"error", "message"}; exit 3)."""

from __future__ import annotations

import json
import os
import sys

from caffeonspark import model_io
from caffeonspark.distributed.comm import CommOptions, connect
from caffeonspark.distributed.data_parallel import (
    DataParallel,
    DataParallelOptions,
    rank_solver_edit,
)
from caffeonspark.distributed.rendezvous import LocalRendezvous
from caffeonspark.errors import CaffeOnSparkError


def main() -> int:
    scenario, solver_path = sys.argv[1], sys.argv[2]
    rank = int(os.environ["TEST_RANK"])
    world = int(os.environ["TEST_WORLD_SIZE"])
    secret = bytes.fromhex(os.environ["TEST_SECRET"])
    from caffeonspark.data.feed_options import FeedOptions
    from caffeonspark.solver import Solver

    rendezvous = LocalRendezvous(os.environ["TEST_RENDEZVOUS"], rank, secret)
    report: dict = {"rank": rank}
    try:
        comm = connect(
            rank, world, rendezvous.all_gather, secret, "test-job", options=CommOptions(timeout=10)
        )

        def edit(param):
            rank_solver_edit(param, rank)
            if scenario == "frozen":  # conv1 not trained: its parameters stay per rank
                net = model_io.read_net_prototxt(param.net)
                conv1 = next(layer for layer in net.layer if layer.name == "conv1")
                for spec in conv1.param:
                    spec.lr_mult = 0
                param.ClearField("net")
                param.net_param.CopyFrom(net)
            if rank == 1 and scenario == "diverge":
                param.base_lr *= 2  # this rank's updates differ: parameters diverge
            if rank == 1 and scenario == "other-net":
                net = model_io.read_net_prototxt(param.net)
                ip1 = next(layer for layer in net.layer if layer.name == "ip1")
                ip1.inner_product_param.num_output = 400
                param.ClearField("net")
                param.net_param.CopyFrom(net)

        solver = Solver(solver_path, edit=edit, feed=FeedOptions(rank=rank, world_size=world))
        sync = DataParallel(
            solver,
            comm,
            DataParallelOptions(check_params=True, first_bucket_bytes=4096, bucket_bytes=65536),
        )
        report["buckets"] = sync.buckets
        solver.step(3)
        report["stats"] = sync.stats
        sync.detach()
        comm.close()
    except CaffeOnSparkError as error:
        report.update(error=type(error).__name__, message=str(error))
        print(json.dumps(report), flush=True)
        return 3
    report["ok"] = True
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
