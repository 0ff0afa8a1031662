"""The driver JVM's class-data-sharing archive (spark/jvm_cds.py): the first embedded
session records and save_archive writes the archive (no partial file left); the next
session maps it; a truncated archive (the JVM dies of SIGBUS on one) makes spark_session
start the JVM without it and remove it; the user's own Java options or
CAFFEONSPARK_JVM_CDS=0 turn it off. Real JVMs, in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from spark_util import PYTHON_DIR, skip_without_spark

from caffeonspark.spark import jvm_cds

CHILD = r"""
import json, logging
logging.basicConfig(level=logging.INFO)
from caffeonspark.spark import jvm_cds
from caffeonspark.spark.driver import spark_session
spark, owned = spark_session(1)
assert owned and spark.range(10).count() == 10
runtime = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
args = [str(a) for a in runtime.getInputArguments()]
saved = jvm_cds.save_archive(spark)
spark.stop()
print("RESULT " + json.dumps({"args": args, "saved": None if saved is None else str(saved)}))
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    for var in ("PYSPARK_SUBMIT_ARGS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS", "SPARK_CONF_DIR",
                "CAFFEONSPARK_JVM_CDS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CAFFEONSPARK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def session_in_child(cache) -> tuple[dict, str]:
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR), CAFFEONSPARK_CACHE=str(cache))
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert proc.returncode == 0 and line, proc.stderr[-3000:]
    return json.loads(line[len("RESULT "):]), proc.stderr


def test_record_save_map_and_a_truncated_archive(cache):
    skip_without_spark()
    archive = jvm_cds.archive_path()
    if jvm_cds._tool("jcmd") is None:  # a JRE without jcmd: nothing to dump with, so off
        assert archive is None and jvm_cds.driver_java_options() == ""
        return
    assert archive is not None and archive.parent == cache and not archive.exists()

    first, _ = session_in_child(cache)
    assert "-XX:+RecordDynamicDumpInfo" in first["args"]
    assert first["saved"] == str(archive) and archive.stat().st_size > 1 << 20
    assert [p.name for p in cache.iterdir()] == [archive.name]  # no .part left behind

    second, _ = session_in_child(cache)
    assert f"-XX:SharedArchiveFile={archive}" in second["args"]
    assert second["saved"] is None

    with open(archive, "r+b") as handle:  # cut short, as a dump killed halfway would be
        handle.truncate(archive.stat().st_size // 2)
    third, log = session_in_child(cache)
    assert not any("SharedArchiveFile" in a for a in third["args"])
    assert "did not start with" in log and not archive.exists()


def test_off_switches(cache, tmp_path, monkeypatch):
    skip_without_spark()
    if jvm_cds._tool("jcmd") is None:
        assert jvm_cds.driver_java_options() == ""
        return
    assert jvm_cds.driver_java_options().startswith("-XX:+RecordDynamicDumpInfo")
    archive = jvm_cds.archive_path()
    archive.parent.mkdir(parents=True, exist_ok=True)  # archive_path made it already
    archive.write_bytes(b"x")
    assert jvm_cds.driver_java_options().startswith(f"-XX:SharedArchiveFile={archive} ")

    monkeypatch.setenv("CAFFEONSPARK_JVM_CDS", "0")
    assert jvm_cds.driver_java_options() == ""
    monkeypatch.delenv("CAFFEONSPARK_JVM_CDS")
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--conf spark.driver.extraJavaOptions=-Xss4m pyspark-shell")
    assert jvm_cds.driver_java_options() == ""
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--driver-java-options -Xss4m pyspark-shell")
    assert jvm_cds.driver_java_options() == ""
    monkeypatch.delenv("PYSPARK_SUBMIT_ARGS")
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "spark-defaults.conf").write_text("spark.driver.extraJavaOptions -Xss4m\n")
    monkeypatch.setenv("SPARK_CONF_DIR", str(conf))
    assert jvm_cds.driver_java_options() == ""


def test_only_a_private_folder_and_archive_are_used(cache, caplog):
    skip_without_spark()
    if jvm_cds._tool("jcmd") is None:
        assert jvm_cds.driver_java_options() == ""
        return
    archive = jvm_cds.archive_path()  # creates the folder, this user's alone
    assert archive is not None and (cache.stat().st_mode & 0o777) == 0o700
    archive.write_bytes(b"x")
    assert jvm_cds.driver_java_options().startswith(f"-XX:SharedArchiveFile={archive} ")
    archive.chmod(0o666)  # another user could swap the classes the driver maps
    assert jvm_cds.driver_java_options() == ""
    archive.chmod(0o600)
    cache.chmod(0o777)  # or swap the archive itself
    assert jvm_cds.archive_path() is None and jvm_cds.driver_java_options() == ""
    assert "is not this user's alone (owner uid" in caplog.text
    cache.chmod(0o700)
    assert jvm_cds.driver_java_options().startswith(f"-XX:SharedArchiveFile={archive} ")
