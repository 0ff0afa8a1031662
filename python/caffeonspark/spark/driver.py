"""CaffeOnSpark: train, test and extract features with one engine per Spark task.

    from caffeonspark.spark import CaffeOnSpark, Config, DataSource
    conf = Config(spark, ["-train", "-conf", "solver.prototxt", "-model", "file:/tmp/m.caffemodel"])
    cos = CaffeOnSpark(spark)
    cos.train(DataSource.getSource(conf, True))
    metrics = cos.test(DataSource.getSource(conf, False))     # {"accuracy": [0.98], ...}
    df = cos.features(DataSource.getSource(conf, False))     # SampleID, label, blobs
    validation = cos.trainWithValidation(train_source, validation_source)

Training is one barrier stage (Spark's barrier execution mode, as TorchDistributor does
it), followed by a one-partition shuffle so that Spark retries it when a rank dies (the
retried ranks resume from the job's newest snapshot: fault.py); the ranks' log lines and
progress reach this driver's console (console.py), and a failed job raises RankFailure with
the failed ranks' last lines. -clusterSize tasks start together, rank = partition id;
before the stage the driver checks the application can run them all at once (placement.py)
and gives rank r the rows of shard r (data/shard_rule.py: the contiguous range r of n of
the source, as the launcher's rank r reads it), splitting the DataFrame when its partitions
are not those shards. With -clusterSize 1 the task trains with
the engine's Solver directly; with more, each task hands its solver to the ring allreduce
through seam.py (the only place that knows caffeonspark.distributed). Model bytes never
travel in a task: rank 0 writes -model (and snapshots, under -model's directory when
snapshot_prefix is relative) through a temporary name and a rename; -weights / -snapshot /
-model are read by the tasks from their paths or URIs (storage.py: local paths and file:
URIs every executor sees, or hdfs:, s3: ... through pyarrow.fs). -output is written by
Spark's writer to a temporary sibling, renamed once complete (any URI of the cluster's
Hadoop). `train()` trains only (the solver's test nets are left out); `trainWithValidation`
materialises the validation DataFrame as Parquet beside -model (removed afterwards) and
returns one row per test interval: `iter` and each test output as array<double>.

`test()` returns {output: means over every sample} (a dict with `.dataframe`: one row, one
array<double> column per output); `features()` a DataFrame with one row per input row:
`SampleID` (the input's `id` column, so the result joins on it), the -label blob as a double
when -label is given, and each -features blob as array<float> (a batch output such as
accuracy: CaffeOnSpark's rule, the whole blob on every row of its batch, with one
warning). The UDF helpers `floatarray2doubleUDF` (first element as double) and
`floatarray2doublevectorUDF` (an MLlib DenseVector) are native Spark expressions, called
like UDFs on a column or its name.

Command line, under spark-submit or on an embedded local[clusterSize] Spark:
    spark-submit .../caffeonspark/spark/driver.py -train -conf S -model file:/tmp/m ...
    python -m caffeonspark.spark.driver -features ip1 -label label -conf S -model M ...
-test / -features write their result to -output in -outputFormat (json or parquet).
Tests: tests/spark/test_spark.py, tests/spark/test_fault.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from caffeonspark.cli_report import UsageError, run_reported
from caffeonspark.data.shard_rule import shard_seed
from caffeonspark.errors import CaffeOnSparkError, ConfigError, IoError
from caffeonspark.proto import caffe_pb2
from caffeonspark.spark import fault, jvm_cds, placement, storage
from caffeonspark.spark.config import DATA_LAYER_TYPES, Config
from caffeonspark.spark.console import DriverConsole
from caffeonspark.spark.infer_task import TEST_OUTPUT, InferPlan, InferTask, batch_outputs
from caffeonspark.spark.java_check import require_java
from caffeonspark.spark.source import DataSource
from caffeonspark.spark.train_task import SUMMARY_FIELDS, TRAIN_OUTPUT, TrainPlan, TrainTask

__all__ = ["CaffeOnSpark", "TestMetrics", "run", "job_session", "main", "spark_session"]

log = logging.getLogger("caffeonspark")


class TestMetrics(dict):
    """test()'s result: output name -> mean per value; `.dataframe` holds the same as a
    one-row DataFrame (one array<double> column per output)."""

    __test__ = False  # not a pytest class
    dataframe: Any = None


def _summary_dict(row: Any) -> dict[str, Any]:
    values = dict(zip(SUMMARY_FIELDS, row.values, strict=True))

    def number(name: str) -> float | None:
        value = values[name]
        return None if value is None or np.isnan(value) else float(value)

    resumed = number("resumed_from")
    return {
        "rank": row.rank,
        "iter": row.iter,
        "smoothed_loss": values["smoothed_loss"],
        "rows": row.rows,
        "seconds": row.seconds,
        "first_iteration_time": number("first_iteration_time"),
        "images_per_second": number("images_per_second"),
        "attempt": int(values["attempt"]),
        "resumed_from": None if resumed is None else int(resumed),
    }


def _phase_data_layer(net: caffe_pb2.NetParameter, state: caffe_pb2.NetState) -> int:
    from caffeonspark import netspec

    for index, layer in enumerate(net.layer):
        if layer.type in DATA_LAYER_TYPES and netspec.layer_included(layer, state):
            return index
    raise ConfigError(f"the net has no {caffe_pb2.Phase.Name(state.phase)} data layer")


class CaffeOnSpark:
    """The driver: one engine per Spark task. `spark` is a SparkSession (or SparkContext);
    `timeout` bounds each blocking wait between ranks; `console` streams the ranks' log
    lines and progress to this driver (console.py)."""

    def __init__(self, spark: Any, timeout: float = 300.0, console: bool = True) -> None:
        from pyspark import SparkContext
        from pyspark.sql import SparkSession

        if isinstance(spark, SparkContext):
            spark = SparkSession.builder.getOrCreate()
        self.spark = spark
        self.timeout = float(timeout)
        self.console = console
        self._fail_at: fault.FailAt | None = None  # armed by tests only (fault._arm_fail_at)

    # -- training --------------------------------------------------------------------------

    def train(self, source: DataSource) -> list[dict[str, Any]]:
        """Train to the solver's max_iter; rank 0 writes -model. Returns one summary per rank:
        rank, iter, smoothed_loss, rows, seconds, first_iteration_time (time.time() when the
        rank's first iteration of the last attempt ended), images_per_second (the rank's
        steady state, None with too few iterations), attempt (0 unless Spark retried the
        stage), resumed_from (the snapshot's iteration, or None)."""
        summaries, _ = self._train(source, None)
        return summaries

    def trainWithValidation(self, train: DataSource, validation: DataSource) -> Any:
        """Train, testing on `validation` every test_interval; a DataFrame of the tests."""
        conf = train.conf
        param = conf.solver_with_net()
        if not param.test_iter or param.test_interval <= 0:
            raise ConfigError(
                f"-conf {conf.solver_path}: trainWithValidation needs test_iter and a positive "
                "test_interval in the solver"
            )
        model = storage.normalize(conf.modelPath, "model")
        scratch = f"{model}.validation-{secrets.token_hex(4)}"  # beside -model: executors see it
        files = storage.HadoopFiles(self.spark)
        try:
            validation.dataframe(self.spark).write.parquet(storage.hadoop_uri(scratch))
            _, rows = self._train(train, (validation, scratch))
        finally:
            try:
                files.delete(scratch)
            except CaffeOnSparkError as err:  # never hide the error that got us here
                log.warning("trainWithValidation: scratch %s not removed: %s", scratch, err)
        return self._validation_frame(rows)

    def _train(self, source: DataSource, validation: Any) -> tuple[list[dict], list[Any]]:
        conf = source.conf
        if not source.is_train:
            raise ConfigError("train() needs the TRAIN source: DataSource.getSource(conf, True)")
        n = placement.cluster_size(conf, self.spark)
        placement.check_slots(self.spark, n)
        if conf.devices > 1:
            log.warning("-devices %d: this build runs one CPU engine per rank", conf.devices)
        plan = self._train_plan(source, n, validation)
        df = source.dataframe(self.spark)
        keep, order = source.shard_order(df)
        df = placement.with_partitions(df, n, keep, order)
        if conf.isRddPersistent:  # the shards as the ranks read them
            from pyspark import StorageLevel

            df = df.persist(StorageLevel.DISK_ONLY)
        log.info("training on %d rank(s): model %s", n, plan.model_path)
        rows = self._run_training(df, plan)
        summaries = [_summary_dict(r) for r in sorted(rows, key=lambda r: r.rank)
                     if r.kind == "summary"]
        if storage.HadoopFiles(self.spark).kind(plan.model_path, "model") != "file":
            raise ConfigError(f"training finished but rank 0 wrote no model at {plan.model_path}")
        for s in summaries:
            rate = s["images_per_second"]
            if not s["attempt"]:
                how = ""
            elif s["resumed_from"] is None:
                how = f"; attempt {s['attempt']}, from the start"
            else:
                how = f"; attempt {s['attempt']}, resumed from iteration {s['resumed_from']}"
            log.info(
                "rank %d: %d iterations over %d rows in %.1f s (%s images/s), smoothed loss "
                "%.6g%s",
                s["rank"], s["iter"], s["rows"], s["seconds"],
                "?" if rate is None else f"{rate:.0f}", s["smoothed_loss"], how,
            )
        return summaries, [r for r in rows if r.kind == "validation"]

    def _run_training(self, df: Any, plan: TrainPlan) -> list[Any]:
        """The barrier stage, followed by a shuffle: Spark retries a failed barrier
        shuffle-map stage (up to spark.stage.maxConsecutiveAttempts) but aborts a failed
        barrier result stage, so the tasks' rows go through repartition(1)."""
        param = caffe_pb2.SolverParameter.FromString(plan.solver)
        model = plan.model_path
        run_dir: str | None = storage.join(
            storage.parent(model), f".{storage.basename(model)}.attempts-{secrets.token_hex(4)}")
        try:
            existing = fault.existing_snapshots(param.snapshot_prefix)
        except IoError as err:
            # This machine cannot list the snapshots (an edge node without libhdfs): without
            # knowing which are older, a retry must not pick any.
            log.warning("%s; a retried training stage restarts from iteration 0", err)
            run_dir, existing = None, {}
        local = self.spark.sparkContext.master.startswith("local")
        console = (DriverConsole.open(self.spark, world_size=plan.world_size) if self.console
                   else None)
        plan = dataclasses.replace(
            plan,
            console=None if console is None else (console.address, console.token),
            echo_stderr=console is None or not local,
            run_dir=run_dir,
            existing_snapshots=tuple((p, m, z) for p, (m, z) in sorted(existing.items())),
            fail_at=self._fail_at,
        )
        if self._fail_at is not None:
            log.warning("TEST HOOK armed: rank %d fails at iteration %d (%s)",
                        self._fail_at.rank, self._fail_at.iteration,
                        "once" if self._fail_at.marker else "on every attempt")
        stage = df.mapInArrow(TrainTask(plan), TRAIN_OUTPUT, barrier=True).repartition(1)
        try:
            return stage.collect()
        except Exception as err:
            if console is None:
                raise
            raise console.failure(err) from err
        finally:
            if console is not None:
                console.close()
            if run_dir is not None:
                storage.remove_tree(run_dir, "model")

    def _train_plan(self, source: DataSource, n: int, validation: Any) -> TrainPlan:
        conf = source.conf
        conf.check_uris(self.spark)
        param = conf.solver_with_net()
        net = param.net_param
        model = storage.normalize(conf.modelPath, "model")
        train_index = _phase_data_layer(net, conf.net_state(caffe_pb2.TRAIN))
        net.layer[train_index].CopyFrom(source.memory_layer(source_class="Arrow"))
        if validation is None:
            if param.test_iter or param.test_interval:
                log.info("train(): the solver's test nets are not run (use trainWithValidation)")
            del param.test_iter[:]
            param.test_interval = 0
        else:
            val_source, scratch = validation
            test_index = _phase_data_layer(net, conf.net_state(caffe_pb2.TEST))
            net.layer[test_index].CopyFrom(
                val_source.memory_layer(source_class="Parquet", source=scratch)
            )
            del param.test_iter[1:]
        if param.snapshot_prefix:
            # relative: beside -model; elsewhere than a local path: written in the task's
            # local directory and uploaded (train_task.upload_snapshots_to)
            prefix = param.snapshot_prefix
            if not storage.is_local(prefix):
                storage.arrow_filesystem(prefix, "conf")
            elif prefix.startswith("file:") or os.path.isabs(prefix):
                param.snapshot_prefix = storage.local_path(prefix, "conf")
            else:
                param.snapshot_prefix = storage.join(storage.parent(model), prefix)
        else:
            param.snapshot = 0
            param.snapshot_after_train = False
        return TrainPlan(
            images_per_iteration=source.batch_size * max(1, int(param.iter_size)),
            solver=param.SerializeToString(),
            train_layer=train_index,
            model_path=model,
            weights=storage.normalize(conf.weights, "weights") if conf.weights else None,
            snapshot=storage.normalize(conf.snapshot, "snapshot") if conf.snapshot else None,
            world_size=n,
            resize=source.reader.resizes,
            seed=shard_seed(param.random_seed),
            connection=conf.connection,
            timeout=self.timeout,
            ring_encryption=bool(conf.ringEncryption),
            tensorboard=os.path.abspath(conf.tensorboard) if conf.tensorboard else None,
        )

    def _validation_frame(self, rows: list[Any]) -> Any:
        by_iter: dict[int, dict[str, list[float]]] = {}
        names: list[str] = []
        for r in rows:
            by_iter.setdefault(int(r.iter), {})[r.name] = list(r.values)
            if r.name not in names:
                names.append(r.name)
        iters = sorted(by_iter)
        columns = {"iter": pa.array(iters, pa.int64())}
        for name in names:
            columns[name] = pa.array([by_iter[i].get(name) for i in iters], pa.list_(pa.float64()))
        return self.spark.createDataFrame(pa.table(columns))

    # -- inference -----------------------------------------------------------------------

    def _infer_plan(self, source: DataSource, features: Sequence[str], label: str | None,
                    id_column: str | None) -> InferPlan:
        conf = source.conf
        conf.check_uris(self.spark)
        net = conf.phase_net(caffe_pb2.TEST)
        index = _phase_data_layer(net, net.state)
        net.layer[index].CopyFrom(source.memory_layer())
        return InferPlan(
            net=net.SerializeToString(),
            data_layer=index,
            model_path=storage.normalize(conf.modelPath, "model"),
            reader=source.reader,
            features=tuple(features),
            label=label,
            id_column=id_column,
        )

    def features(self, source: DataSource) -> Any:
        """DataFrame: SampleID, the -label blob (double) if asked, each -features blob as
        array<float>; one row per input row, joinable on the input's id. A blob holding fewer
        values than a batch has samples (accuracy, loss) is repeated whole on each row of its
        batch, with one warning naming it (infer_task.batch_outputs)."""
        from pyspark.sql import functions as F
        from pyspark.sql.types import ArrayType, DoubleType, FloatType, StructField, StructType

        conf = source.conf
        if not conf.features:
            raise ConfigError("features() needs -features: the blob names to extract")
        if conf.label and conf.label in conf.features:
            raise ConfigError(f"-label '{conf.label}' is also in -features; name it once")
        df = source.dataframe(self.spark)
        if "id" not in df.columns:
            log.warning("the source has no id column; SampleID numbers its rows instead")
            df = df.withColumn("id", F.monotonically_increasing_id())
        fields = [StructField("SampleID", df.schema["id"].dataType)]
        if conf.label:
            fields.append(StructField(conf.label, DoubleType()))
        fields += [StructField(name, ArrayType(FloatType())) for name in conf.features]
        plan = self._infer_plan(source, conf.features, conf.label, "id")
        repeated, fewer = batch_outputs(plan)
        if fewer:
            log.warning(
                "-features: %s hold%s fewer values than a batch has samples (%s): each row "
                "repeats the whole blob, computed over its batch, as CaffeOnSpark does; use "
                "-test for batch outputs such as accuracy and loss, or a batch size of 1 for "
                "per-sample values",
                ", ".join(f"'{name}'" for name in fewer), "s" if len(fewer) == 1 else "",
                ", ".join(f"'{name}' shape {shape}" for name, shape in fewer.items()),
            )
        if repeated:
            plan = dataclasses.replace(plan, repeated=repeated)
        return df.mapInArrow(InferTask(plan), StructType(fields))

    def test(self, source: DataSource) -> TestMetrics:
        """{output: its mean over every sample of the source}, with `.dataframe`."""
        plan = self._infer_plan(source, (), None, None)
        rows = source.dataframe(self.spark).mapInArrow(InferTask(plan), TEST_OUTPUT).collect()
        sums: dict[str, np.ndarray] = {}
        counts: dict[str, int] = {}
        for r in rows:
            sums[r.name] = sums.get(r.name, 0) + np.asarray(r.sums, dtype=np.float64)
            counts[r.name] = counts.get(r.name, 0) + int(r.samples)
        if not sums:
            raise ConfigError(f"test(): the source {source!r} holds no rows")
        metrics = TestMetrics({name: (sums[name] / counts[name]).tolist() for name in sums})
        for name, values in metrics.items():
            log.info("%s = %s", name, ", ".join(f"{v:.6g}" for v in values))
        table = pa.table({k: pa.array([v], pa.list_(pa.float64())) for k, v in metrics.items()})
        metrics.dataframe = self.spark.createDataFrame(table)
        return metrics

    # -- UDF helpers -------------------------------------------------------------------------

    @property
    def floatarray2doubleUDF(self) -> Any:
        """column -> its first element as a double (e.g. a scalar feature blob)."""
        from pyspark.sql import functions as F

        def first(column: Any) -> Any:
            column = F.col(column) if isinstance(column, str) else column
            return column.getItem(0).cast("double")

        return first

    @property
    def floatarray2doublevectorUDF(self) -> Any:
        """column -> an MLlib DenseVector of its values (for pyspark.ml estimators)."""
        from pyspark.ml.functions import array_to_vector

        return array_to_vector

    train_with_validation = trainWithValidation
    floatarray2double_udf = floatarray2doubleUDF
    floatarray2doublevector_udf = floatarray2doublevectorUDF


# -- command line ------------------------------------------------------------------------------


def run(conf: Config, spark: Any) -> Any:
    """What the flags ask: -train, then -test or -features (written to -output)."""
    if not conf.has_mode:
        raise ConfigError("nothing to do: give -train, -test or -features (with -conf, -model)")
    conf.check_uris(spark)  # -output must not exist, -model's folder must: before training
    cos = CaffeOnSpark(spark)
    result: Any = None
    if conf.isTraining:
        result = cos.train(DataSource.getSource(conf, True))
    if conf.isFeature or conf.isTest:
        source = DataSource.getSource(conf, False)
        output = storage.hadoop_uri(conf.outputPath)
        if conf.isFeature:
            result = cos.features(source)
            frame = result
        else:
            result = cos.test(source)
            frame = result.dataframe.coalesce(1)
        storage.HadoopFiles(spark).write_atomically(
            output, lambda temp: frame.write.format(conf.outputFormat).save(temp), "output"
        )
        log.info("%s written to %s (%s)", "features" if conf.isFeature else "test results",
                 output, conf.outputFormat)
    return result


def spark_session(cluster_size: int) -> tuple[Any, bool]:
    """(session, whether we started it): the running or spark-submit one, else an embedded
    local[cluster_size] Spark whose Python workers import this caffeonspark (ConfigError,
    before any JVM is launched, when no Java is found: java_check.py)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    if "PYSPARK_GATEWAY_PORT" in os.environ:  # launched by spark-submit
        return SparkSession.builder.appName("caffeonspark").getOrCreate(), True
    require_java()  # one line instead of pyspark's JAVA_GATEWAY_EXITED when there is none
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    python_path = os.pathsep.join(
        p for p in (os.path.dirname(package_root), os.environ.get("PYTHONPATH", "")) if p
    )
    builder = (
        SparkSession.builder.master(f"local[{cluster_size}]")
        .appName("caffeonspark")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(cluster_size))
        .config("spark.executorEnv.PYTHONPATH", python_path)
    )
    java_options = jvm_cds.driver_java_options()
    if java_options:
        builder = builder.config("spark.driver.extraJavaOptions", java_options)
    try:
        spark = builder.getOrCreate()
    except Exception as err:
        if not java_options:
            raise
        # The class archive is an optimisation: a JVM that will not start with it starts
        # without (and the archive goes).
        log.warning("the driver JVM did not start with %s (%s); starting it without",
                    java_options, err)
        jvm_cds.forget()
        spark = builder.config("spark.driver.extraJavaOptions", "").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark, True


@contextlib.contextmanager
def job_session(cluster_size: int) -> Iterator[Any]:
    """spark_session(cluster_size) for one job: a session started here is stopped at the end,
    and after a job that succeeded the first local run writes the JVM's class archive
    (jvm_cds.py), so later ones start faster."""
    spark, owned = spark_session(cluster_size)
    try:
        yield spark
        if owned:
            jvm_cds.save_archive(spark)
    finally:
        if owned:
            spark.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m caffeonspark.spark.driver FLAGS` / spark-submit driver.py FLAGS; errors are
    reported on one line (cli_report.py), --debug anywhere adds the traceback."""
    return run_reported("caffeonspark", command, argv)


def command(args: Sequence[str]) -> int:
    """The driver's work for one command line (--debug already removed): flags checked
    before any Spark starts, a mistake in them being a usage error (exit status 2)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        conf = Config(list(args))
        if not conf.has_mode:
            raise ConfigError("nothing to do: give -train, -test or -features (with -conf, -model)")
    except CaffeOnSparkError as err:
        raise UsageError(str(err)) from err
    with job_session(conf.clusterSize) as spark:
        conf.spark = spark
        run(conf, spark)
    return 0


if __name__ == "__main__":
    sys.exit(main())
