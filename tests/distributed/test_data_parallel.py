"""Data-parallel equivalence: P ranks (processes) of batch b for k iterations end with the
weights of one rank of batch P*b (also with iter_size 2: only the last pass reduces) (LeNet, SGD with momentum, weight decay, lr policy inv;
docs/CAFFE.md §4.3 last paragraph: gradients summed over ranks, scaled by 1/P, before the
update), within 1e-5 relative; the ranks check each other's parameters every iteration
(check_params). Also: the bucket plan, and ranks whose parameters diverge being caught."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lenet_files import write_lenet
from ranks import describe, run_ranks

from caffeonspark import engine
from caffeonspark.distributed.launcher import launch
from caffeonspark.solver import Solver

ITERATIONS = 8
BATCH = 16


def trained_weights(solver_path, iterations) -> dict[str, list[np.ndarray]]:
    model = solver_path.parent / "snap" / f"lenet_iter_{iterations}.caffemodel"
    net = engine.Net(
        str(solver_path.parent / "lenet_train_test.prototxt"), weights=str(model), phase=engine.TEST
    )
    return {name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()}


@pytest.mark.parametrize("world_size,iter_size", [(2, 1), (4, 1), (2, 2)])
def test_p_ranks_of_batch_b_match_one_rank_of_batch_pb(world_size, iter_size, digits, tmp_path):
    single = write_lenet(
        tmp_path / "single", digits, world_size * BATCH, ITERATIONS, iter_size=iter_size
    )
    engine.set_num_threads(1)
    try:
        Solver(str(single)).solve()
    finally:
        engine.set_num_threads(2)
    parallel = write_lenet(tmp_path / "parallel", digits, BATCH, ITERATIONS, iter_size=iter_size)
    result = launch(str(parallel), world_size, threads=1, comm_timeout=30, check_params=True)
    assert result.returncode == 0, result.first_error
    expected = trained_weights(single, ITERATIONS)
    got = trained_weights(parallel, ITERATIONS)
    for name, blobs in expected.items():
        for index, (want, have) in enumerate(zip(blobs, got[name], strict=True)):
            scale = np.abs(want).max()
            error = np.abs(have - want).max()
            assert error <= 1e-5 * scale, (
                f"{name}[{index}]: max error {error:.3g}, scale {scale:.3g}"
            )
        # and training did move the weights
    initial = Solver(str(write_lenet(tmp_path / "init", digits, BATCH, 0)))
    moved = np.abs(initial.net.params["ip2"][0].data - expected["ip2"][0]).max()
    assert moved > 1e-4


DP_WORKER = Path(__file__).with_name("dp_worker.py")


def test_bucket_plan_is_reverse_layer_order_with_a_small_first_bucket(digits, tmp_path):
    solver = write_lenet(tmp_path, digits, BATCH, 3)
    results = run_ranks(2, "plain", solver, worker=DP_WORKER)
    assert all(r.returncode == 0 for r in results), describe(results)
    assert results[0].report["buckets"] == results[1].report["buckets"]
    buckets = results[0].report["buckets"]
    net = Solver(str(solver)).net
    sizes = [p.count for blobs in net.params.values() for p in blobs]
    # LeNet's learnable params in net order: conv1 w,b, conv2 w,b, ip1 w,b, ip2 w,b. The
    # first bucket (4 KiB) holds what fits of ip2, then 64 KiB buckets; ip1's weight
    # (500 x 800 floats) is larger than the cap and has a bucket alone.
    order = [p for bucket in buckets for p in bucket["params"]]
    assert sorted(order) == list(range(8))
    ready = [bucket["ready_layer"] for bucket in buckets]
    assert ready == sorted(ready, reverse=True)
    assert buckets[0]["count"] * 4 <= 4096 or len(buckets[0]["params"]) == 1
    assert [4] in [b["params"] for b in buckets]  # ip1's weight alone
    for bucket in buckets:
        assert bucket["count"] == sum(sizes[p] for p in bucket["params"])
    assert results[0].report["stats"]["iterations"] == 3


def test_parameters_with_lr_mult_0_are_not_reduced(digits, tmp_path):
    """Frozen parameters (lr_mult 0, like BatchNorm's statistics) stay per rank."""
    solver = write_lenet(tmp_path, digits, BATCH, 3)
    results = run_ranks(2, "frozen", solver, worker=DP_WORKER)
    assert all(r.returncode == 0 for r in results), describe(results)
    order = sorted(p for bucket in results[0].report["buckets"] for p in bucket["params"])
    assert order == [2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize(
    "scenario,error,words",
    [
        ("diverge", "CommError", "differ from rank 0"),
        ("other-net", "ConfigError", "differ in number or shape from rank 0"),
    ],
)
def test_ranks_that_disagree_fail_on_every_rank(scenario, error, words, digits, tmp_path):
    solver = write_lenet(tmp_path, digits, BATCH, 3)
    results = run_ranks(2, scenario, solver, worker=DP_WORKER)
    for result in results:
        assert result.returncode == 3, describe(results)
        assert result.report["error"] == error and words in result.report["message"], describe(
            results
        )
