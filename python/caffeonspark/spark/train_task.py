"""The barrier task that trains: one engine per task, rank = partition id (executor side).

    df.mapInArrow(TrainTask(plan), TRAIN_OUTPUT, barrier=True)

Each task:
1. connects this rank's "caffeonspark" logger to the driver console (reporter.py) when the
   plan names one: its log lines, rank 0's progress and a failure's traceback reach the
   driver;
2. spools its partition's Arrow record batches to an Arrow IPC file in the executor's local
   directory (SPARK_LOCAL_DIRS, else the temp dir): the epochs that follow read it
   memory-mapped, through the MemoryData layer the driver rewrote to `source_class:
   "Arrow"` (data/sources/arrow_source.py), or the CoSData layer pointed at it with
   `dataframe_format: "arrow"` (one column per top; shuffled only with
   cos_data_param.shuffle), shuffled per epoch by the rule the launcher's ranks follow
   (data/shard_rule.py: as shard `rank` of n); an empty partition is an error;
3. builds the engine's Solver from the plan's SolverParameter (net inline; this rank's
   spool file as the TRAIN source; as on the launcher, random_seed + rank, and on ranks
   other than 0 no display, snapshots or test nets); on the first attempt applies
   -weights, then -snapshot (restored with -weights as its learned net; URIs fetched to
   the task's directory first); on a retried attempt every rank restores the newest
   snapshot this job wrote instead (fault.py: rank 0 decides, allGather tells the others);
4. trains: with one rank, solver.solve() here; with more, seam.train_distributed (the
   ring allreduce of caffeonspark.distributed); every iteration is timed (IterationMeter);
   with -tensorboard DIR rank 0 writes TensorBoard event files there (viz/tensorboard.py);
5. rank 0 writes the final weights to -model (temporary name, then rename; storage.py for
   URIs), and returns one summary row per rank plus, with validation, one row per test
   output per test interval. A snapshot_prefix that is a URI (hdfs://...) is written in the
   task's directory and each snapshot pair uploaded there (upload_snapshots_to).
The spool file is removed when the task ends, whatever happens.
Tests: tests/spark/test_spark.py, tests/spark/test_fault.py, tests/spark/test_console.py.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

from caffeonspark.errors import CommError, ConfigError
from caffeonspark.proto import caffe_pb2
from caffeonspark.spark import fault, storage
from caffeonspark.spark.reporter import ConsoleClient, IterationMeter

__all__ = ["TrainPlan", "TrainTask", "TRAIN_OUTPUT", "SUMMARY_FIELDS", "setup_executor"]

TRAIN_OUTPUT = (
    "rank long, kind string, iter long, name string, values array<double>, rows long, "
    "seconds double"
)

log = logging.getLogger("caffeonspark")


@dataclass(frozen=True)
class TrainPlan:
    """Everything a training task needs; small (no weights: those are read from paths)."""

    solver: bytes  # serialized SolverParameter, net inline, data layers rewritten
    train_layer: int  # index in solver.net_param.layer of the TRAIN MemoryData (Arrow) / CoSData
    model_path: str  # path or URI rank 0 writes the final weights to (storage.py)
    weights: str | None
    snapshot: str | None
    world_size: int
    resize: bool  # -resize (the nets' FeedOptions)
    seed: int
    connection: str
    timeout: float
    ring_encryption: bool  # -ringEncryption: CommOptions.encrypt on every rank
    tensorboard: str | None = None  # -tensorboard: rank 0's local event folder
    images_per_iteration: int = 0  # per rank: batch_size * iter_size of the TRAIN layer
    console: tuple[str, str] | None = None  # the driver console's (host:port, token)
    echo_stderr: bool = True  # also log on the executor's stderr (off in local mode)
    run_dir: str | None = None  # where rank 0 counts the attempts (fault.next_attempt)
    existing_snapshots: tuple[tuple[str, int, int], ...] = ()  # (path, mtime_ns, size)
    fail_at: fault.FailAt | None = None  # TEST ONLY: armed by fault._arm_fail_at


def setup_executor(threads: int, echo_stderr: bool = True) -> None:
    """Per-task engine settings (Python workers are reused, so set every one)."""
    from caffeonspark import engine

    logger = logging.getLogger("caffeonspark")
    logger.setLevel(logging.INFO)
    echo = next((h for h in logger.handlers if getattr(h, "_caffeonspark_stderr", False)), None)
    if echo is None:
        echo = logging.StreamHandler(sys.stderr)
        echo.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        echo._caffeonspark_stderr = True  # type: ignore[attr-defined]
        logger.addHandler(echo)
    # In local mode the executors' stderr is the driver's: the console shows the lines once.
    echo.setLevel(logging.NOTSET if echo_stderr else logging.CRITICAL + 1)
    engine.set_num_threads(max(1, int(threads)))


def local_dir() -> str:
    dirs = [d for d in os.environ.get("SPARK_LOCAL_DIRS", "").split(",") if d]
    return dirs[0] if dirs and os.path.isdir(dirs[0]) else tempfile.gettempdir()


def spool(batches: Iterator[pa.RecordBatch], path: str) -> int:
    """Write the batches to an Arrow IPC file; returns the row count."""
    rows = 0
    writer = None
    try:
        for batch in batches:
            if writer is None:
                writer = pa.ipc.new_file(path, batch.schema)
            if batch.num_rows:
                writer.write_batch(batch)
                rows += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def _rank_solver(plan: TrainPlan, rank: int, spool_path: str) -> caffe_pb2.SolverParameter:
    """This rank's solver: as the launcher's ranks (random_seed + rank; only rank 0 tests and
    snapshots), training from the spool file."""
    from caffeonspark.distributed.data_parallel import rank_solver_edit

    param = caffe_pb2.SolverParameter.FromString(plan.solver)
    layer = param.net_param.layer[plan.train_layer]
    if layer.type == "CoSData":  # read as DataFrameSource, dataframe_format "arrow"
        layer.cos_data_param.source = spool_path
    else:
        layer.memory_data_param.source = spool_path
    rank_solver_edit(param, rank)
    return param


def _restore(solver, snapshot: str, weights: str, workdir: str) -> None:
    """-snapshot with -weights: the state's own learned_net is replaced by -weights."""
    from caffeonspark import hdf5_io, model_io

    if hdf5_io.is_hdf5_path(snapshot):
        solver.restore(snapshot)
        solver.net.copy_from(weights)
        return
    state = model_io.read_solverstate(snapshot)
    state.learned_net = weights
    path = os.path.join(workdir, "resume.solverstate")
    model_io.write_solverstate(path, state)
    solver.restore(path)


def _snapshot_locally(param: caffe_pb2.SolverParameter, tmp: str) -> str | None:
    """A snapshot_prefix that is not a local path: the solver writes under `tmp` instead;
    returns the URI prefix the snapshots belong to (None when local)."""
    prefix = param.snapshot_prefix
    if not prefix or storage.is_local(prefix) or not (param.snapshot or param.snapshot_after_train):
        return None
    folder = os.path.join(tmp, "snapshots")
    os.makedirs(folder, exist_ok=True)
    param.snapshot_prefix = os.path.join(folder, storage.basename(prefix))
    return prefix


def upload_snapshots_to(solver, uri_prefix: str, tmp: str) -> None:
    """After each snapshot the solver writes under `tmp`, copy the pair to
    `<uri_prefix>_iter_N.caffemodel` / `.solverstate` (Caffe's names; the weights first, so
    a state found there always has its weights), each atomically, and drop the local copies."""
    local_prefix = solver.param.snapshot_prefix

    def upload(model_path: str, state_path: str) -> None:
        for path in (model_path, state_path):
            uri = uri_prefix + os.path.basename(path)[len(os.path.basename(local_prefix)):]
            storage.upload(path, uri, "conf snapshot_prefix")
            log.info("rank 0: snapshot %s uploaded to %s", os.path.basename(path), uri)
            os.remove(path)

    solver.add_snapshot_callback(upload)


def _fetch_remote_sources(param: caffe_pb2.SolverParameter, tmp: str) -> None:
    """Data sources of the net that are not local (trainWithValidation's Parquet beside a
    remote -model) are copied into `tmp` for the engine to read."""
    for layer in param.net_param.layer:
        if layer.type not in ("MemoryData", "CoSData"):
            continue
        p = layer.cos_data_param if layer.type == "CoSData" else layer.memory_data_param
        if p.source and not storage.is_local(p.source):
            p.source = storage.fetch_tree(p.source, tmp, "model")


class TrainTask:
    """mapInArrow function of the training barrier stage."""

    def __init__(self, plan: TrainPlan) -> None:
        self.plan = plan

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import BarrierTaskContext

        ctx = BarrierTaskContext.get()
        rank = ctx.partitionId()
        plan = self.plan
        setup_executor(ctx.cpus(), plan.echo_stderr)
        client = ConsoleClient(*plan.console, rank) if plan.console else None
        if client is not None:
            log.addHandler(client)
        try:
            with tempfile.TemporaryDirectory(prefix=f"caffeonspark-rank{rank}-",
                                             dir=local_dir()) as tmp:
                spool_path = os.path.join(tmp, "partition.arrow")
                rows = spool(batches, spool_path)
                if rows == 0:
                    raise ConfigError(
                        f"rank {rank} of {plan.world_size}: its partition of the training data "
                        "is empty; give the source at least -clusterSize rows per rank"
                    )
                log.info("rank %d: %d training rows spooled to %s", rank, rows, spool_path)
                resume = fault.agree(ctx, rank, self._decide)
                yield from self._train(ctx, rank, rows, spool_path, tmp, resume, client)
            if client is not None:
                client.send("done")
        except GeneratorExit:
            raise
        except BaseException as error:
            if client is not None:
                log.error("rank %d failed: %s", rank, "".join(
                    traceback.format_exception(type(error), error, error.__traceback__)).rstrip())
                client.send("failed", msg=f"{type(error).__name__}: {error}",
                            comm=isinstance(error, CommError))
            raise
        finally:
            if client is not None:
                log.removeHandler(client)
                client.close()

    def _decide(self) -> fault.Resume:
        """Rank 0: the attempt number and the snapshot every rank resumes from."""
        plan = self.plan
        if plan.run_dir is None:
            return fault.Resume(attempt=0)
        attempt = fault.next_attempt(plan.run_dir)
        prefix = caffe_pb2.SolverParameter.FromString(plan.solver).snapshot_prefix
        existing = {path: (mtime, size) for path, mtime, size in plan.existing_snapshots}
        found = fault.newest_snapshot(prefix, existing) if attempt > 0 and prefix else None
        if found is None:
            if attempt > 0:
                log.warning("attempt %d: no snapshot of this job yet; training from the start",
                            attempt)
            return fault.Resume(attempt=attempt)
        iteration, state = found
        log.warning("attempt %d: resuming from %s at iteration %d", attempt, state, iteration)
        return fault.Resume(attempt=attempt, state=state, iteration=iteration)

    def _train(self, ctx, rank: int, rows: int, spool_path: str, tmp: str,
               resume: fault.Resume, client: ConsoleClient | None):
        from caffeonspark.data.shard_rule import rank_feed_options
        from caffeonspark.solver import Solver

        plan = self.plan
        # presharded: the partition is this rank's share already
        feed = rank_feed_options(plan.seed, rank, plan.world_size, presharded=True,
                                 resize=plan.resize)
        start = time.perf_counter()
        param = _rank_solver(plan, rank, spool_path)
        snapshot_uri = _snapshot_locally(param, tmp)
        if rank == 0:
            _fetch_remote_sources(param, tmp)
        solver = Solver(param, feed=feed)
        if snapshot_uri is not None:
            upload_snapshots_to(solver, snapshot_uri, tmp)
        try:
            if resume.state is not None:
                _resume(solver, rank, resume, tmp)
            else:
                weights = storage.fetch(plan.weights, tmp, "weights") if plan.weights else None
                if weights:
                    solver.net.copy_from(weights)
                if plan.snapshot:
                    _restore(solver, storage.fetch(plan.snapshot, tmp, "snapshot"), weights or "",
                             tmp)
            meter = IterationMeter(solver, rank, plan.images_per_iteration, plan.world_size,
                                   client)
            solver.add_callback(on_start=meter.on_start)
            journal = None
            if rank == 0 and plan.run_dir is not None and solver.test_nets:
                journal = fault.TestJournal(plan.run_dir)
                solver.add_callback(on_start=lambda: journal.keep(solver.test_results))
            board = None
            if rank == 0 and plan.tensorboard:
                from caffeonspark.viz.tensorboard import TensorBoardLogger

                board = TensorBoardLogger(solver, plan.tensorboard, world_size=plan.world_size)
            if plan.fail_at is not None:
                fault.install_fail_at(solver, rank, plan.fail_at,
                                      client.flush if client is not None else lambda: None)
            try:
                if plan.world_size == 1:
                    solver.solve()
                else:
                    from caffeonspark.spark.seam import train_distributed

                    train_distributed(
                        solver, ctx, plan.world_size, plan.connection, plan.timeout,
                        encrypt=plan.ring_encryption,
                        on_attached=board.attach_data_parallel if board else None,
                    )
            finally:
                if board is not None:
                    board.close()
            meter.finish()
            if rank == 0:
                storage.publish(plan.model_path, solver.net.save, "model", tmp)
                log.info("rank 0: model written to %s", plan.model_path)
            seconds = time.perf_counter() - start
            yield _summary(rank, solver, rows, seconds, meter, resume)
            tests = solver.test_results
            if journal is not None and resume.state is not None:
                tests = journal.before(resume.iteration) + tests
            if rank == 0 and tests:
                yield _validation(tests)
        finally:
            for net in (solver.net, *solver.test_nets):
                net.close()


def _resume(solver, rank: int, resume: fault.Resume, tmp: str) -> None:
    """Restore the snapshot rank 0 chose; one at a URI is fetched first, its state restored
    with the fetched weights (the learned_net it names was rank 0's local file)."""
    try:
        if storage.is_local(resume.state):
            solver.restore(storage.local_path(resume.state, fault.SNAPSHOT_FLAG))
        else:
            state = storage.fetch(resume.state, tmp, fault.SNAPSHOT_FLAG)
            weights = storage.fetch(fault.model_of(resume.state), tmp, fault.SNAPSHOT_FLAG)
            _restore(solver, state, weights, tmp)
    except OSError as err:
        raise type(err)(
            f"rank {rank}: cannot restore {resume.state}, the snapshot rank 0 resumes from "
            f"(every executor must reach the snapshot directory): {err}"
        ) from err
    if solver.iter != resume.iteration:
        raise ConfigError(
            f"rank {rank}: {resume.state} holds iteration {solver.iter}, its name says "
            f"{resume.iteration}"
        )


SUMMARY_FIELDS = (
    "smoothed_loss", "first_iteration_time", "images_per_second", "attempt", "resumed_from"
)


def _summary(rank: int, solver, rows: int, seconds: float, meter: IterationMeter,
             resume: fault.Resume) -> pa.RecordBatch:
    nan = float("nan")
    values = [
        float(solver.smoothed_loss),
        meter.first_iteration_time or nan,
        meter.images_per_second or nan,
        float(resume.attempt),
        float(resume.iteration) if resume.state is not None else nan,
    ]
    return pa.RecordBatch.from_pydict(
        {
            "rank": pa.array([rank], pa.int64()),
            "kind": ["summary"],
            "iter": pa.array([solver.iter], pa.int64()),
            "name": [",".join(SUMMARY_FIELDS)],
            "values": pa.array([values], pa.list_(pa.float64())),
            "rows": pa.array([rows], pa.int64()),
            "seconds": pa.array([seconds], pa.float64()),
        }
    )


def _validation(results: list[dict]) -> pa.RecordBatch:
    iters, names, values = [], [], []
    for result in results:
        for name, vals in result["outputs"].items():
            iters.append(int(result["iter"]))
            names.append(name)
            values.append([float(v) for v in vals])
    n = len(iters)
    return pa.RecordBatch.from_pydict(
        {
            "rank": pa.array([0] * n, pa.int64()),
            "kind": ["validation"] * n,
            "iter": pa.array(iters, pa.int64()),
            "name": names,
            "values": pa.array(values, pa.list_(pa.float64())),
            "rows": pa.array([0] * n, pa.int64()),
            "seconds": pa.array([0.0] * n, pa.float64()),
        }
    )
