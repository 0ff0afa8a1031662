"""caffeonspark-submit (python/caffeonspark/spark/submit.py): the split of its command line
into spark-submit's options (values attached as spark-submit defines them) and CaffeOnSpark's
flags, the options it adds (master, name, Python, --venv), checks before any JVM, and a real
spark-submit training a tiny LeNet end to end on local[1]."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from spark_util import PYTHON_DIR, write_lenet

from caffeonspark import errors
from caffeonspark.spark import submit


def test_split_by_dashes_with_spark_submits_values():
    sub = submit.split_args([
        "--master", "yarn", "--num-executors=4", "--conf", "spark.x=1", "-c", "spark.y=a=b",
        "--verbose", "--files", "a.txt,b.txt", "--deploy-mode", "client",
        "-train", "-conf", "s.prototxt", "-model", "hdfs:///m", "-clusterSize", "4",
        "-features", "ip1,ip2", "-persistent", "-vocabSize", "-1", "-label=label",
        "--archives", "env.tgz#environment",
    ])
    assert sub.spark == [
        "--master", "yarn", "--num-executors", "4", "--conf", "spark.x=1", "--conf",
        "spark.y=a=b", "--verbose", "--files", "a.txt,b.txt", "--deploy-mode", "client",
        "--archives", "env.tgz#environment",
    ]
    assert sub.flags == [
        "-train", "-conf", "s.prototxt", "-model", "hdfs:///m", "-clusterSize", "4",
        "-features", "ip1,ip2", "-persistent", "-vocabSize", "-1", "-label=label",
    ]
    assert sub.spark_value("--master") == "yarn" and sub.spark_value("spark.y") == "a=b"
    assert sub.spark_value("--num-executors") == "4" and sub.spark_value("--queue") is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--clusterSize", "2"], r"--clusterSize is not a spark-submit option; CaffeOnSpark "
                                 r"flags take one dash: -clusterSize"),
        (["--bogus"], r"--bogus is not a spark-submit option$"),
        (["-train", "--master"], r"--master needs a value"),
        (["-train", "app.py"], r"unexpected argument 'app.py'"),
    ],
)
def test_bad_command_lines_are_named(argv, message):
    with pytest.raises(submit.SubmitError, match=message):
        submit.split_args(argv)


@pytest.fixture
def solver(anchors, tmp_path):
    return write_lenet(tmp_path, anchors, "memory", "file:/data/train", "file:/data/test")


def test_build_adds_master_name_and_python(solver, tmp_path):
    flags = ["-train", "-conf", str(solver), "-model", f"file:{tmp_path}/m", "-clusterSize", "3"]
    env = {"PATH": os.environ.get("PATH", "")}
    command, new_env = submit.build(flags, env)
    assert command[0] == submit.spark_submit_path() and command[0].endswith("spark-submit")
    assert command[1:5] == ["--master", "local[3]", "--name", "caffeonspark"]
    assert command[5].endswith(os.path.join("caffeonspark", "spark", "driver.py"))
    assert command[6:] == flags
    assert new_env["PYSPARK_PYTHON"] == new_env["PYSPARK_DRIVER_PYTHON"] == sys.executable

    command, new_env = submit.build(
        ["--master", "yarn", "--name", "lenet", "--venv", "env.tar.gz", *flags], env
    )
    assert command[1:9] == [
        "--master", "yarn", "--name", "lenet", "--archives", "env.tar.gz#environment",
        "--conf", "spark.pyspark.python=./environment/bin/python",
    ]
    assert "PYSPARK_PYTHON" not in new_env  # executors: the archive's Python
    command, _ = submit.build(["--conf", "spark.master=spark://h:7077", *flags], env)
    assert "local[3]" not in command
    command, _ = submit.build(flags, {**env, "MASTER": "yarn"})
    assert "--master" not in command


def test_flags_are_checked_before_spark_unless_the_cluster_runs_the_driver(tmp_path):
    flags = ["-train", "-conf", str(tmp_path / "absent.prototxt"), "-model", "m"]
    with pytest.raises(errors.IoError, match=r"-conf: solver file '.*absent.prototxt'"):
        submit.build(flags, {})
    command, _ = submit.build(["--master", "yarn", "--deploy-mode", "cluster", *flags], {})
    assert command[-len(flags):] == flags and "PYSPARK_DRIVER_PYTHON" not in _
    with pytest.raises(errors.ConfigError, match=r"-clusterSize wants an integer"):
        submit.build(["--deploy-mode", "cluster", "-clusterSize", "x"], {})


def test_main_dry_run_prints_and_errors_exit_2(solver, tmp_path, capsys):
    flags = ["-train", "-conf", str(solver), "-model", f"file:{tmp_path}/m"]
    assert submit.main(["--dry-run", "--master", "local[2]", *flags]) == 0
    out = capsys.readouterr().out
    assert "spark-submit --master 'local[2]' --name caffeonspark " in out
    assert out.rstrip().endswith(f"driver.py -train -conf {solver} -model file:{tmp_path}/m")
    assert submit.main(["--clusterSize", "2"]) == 2
    assert "CaffeOnSpark flags take one dash" in capsys.readouterr().err


def test_submit_trains_lenet_through_spark_submit(anchors, tmp_path):
    from caffeonspark.data.convert_mnist import prepare_mnist_lmdb

    pytest.importorskip("pyspark", reason="pyspark (the `spark` extra) is not installed")
    digits = prepare_mnist_lmdb(tmp_path / "digits", n_train=128, n_test=100)
    solver = write_lenet(tmp_path / "lenet", anchors, "memory", f"file:{digits.train}",
                         f"file:{digits.test}", max_iter=2)
    model = tmp_path / "out" / "lenet.caffemodel"
    model.parent.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK", "SPARK"))}
    env["PYTHONPATH"] = str(PYTHON_DIR)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "caffeonspark.spark.submit", "--master", "local[1]",
         "--conf", "spark.ui.enabled=false",  # a short job: the JVM's quick start-up settings
         "--driver-java-options", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC", "-train", "-conf", str(solver), "-model",
         f"file:{model}", "-clusterSize", "1"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "rank 0: 2 iterations over 128 rows" in output, output[-3000:]
    assert sorted(p.name for p in model.parent.iterdir()) == [
        "lenet.caffemodel", "mnist_lenet_iter_2.caffemodel", "mnist_lenet_iter_2.solverstate",
    ]
    print(f"caffeonspark-submit trained LeNet in {seconds:.1f} s")
