"""A class-data-sharing (CDS) archive for the embedded local Spark's driver JVM.

Most of a local job's start is the driver JVM loading Spark's classes. Mapping them from an
archive instead is much faster: on the 2-core box the SparkSession came up in 7.5 s instead
of 10.0 s, and the first job ended at 10.9 s instead of 15.0 s (BENCHMARKS.md).

    options = driver_java_options()    # for spark.driver.extraJavaOptions ("" when off)
    ... the job ...
    save_archive(spark)                # first run only: write the archive for the next ones

- With a complete archive for this JDK and Spark, the JVM is told to map it.
- Otherwise it is told to record what it loads (-XX:+RecordDynamicDumpInfo), and
  save_archive, called once the job is done, writes the archive:
  1. `jcmd <pid> VM.cds dynamic_dump` into a temporary name beside the archive;
  2. a trial `java -version` maps it;
  3. it is fsynced and renamed into place (atomic_file.atomic_path).
  So the archive's name only ever holds a complete archive that a JVM has loaded. That
  matters: JDK 17 dies of SIGBUS when it maps an archive whose writing was cut short.
- spark_session starts the JVM again without these options if it fails with them.

Off when CAFFEONSPARK_JVM_CDS=0, when jcmd or java cannot be found, and when the user gives
driver Java options of their own (PYSPARK_SUBMIT_ARGS's spark.driver.extraJavaOptions or
--driver-java-options, spark-defaults.conf, or
JDK_JAVA_OPTIONS / _JAVA_OPTIONS naming an archive): theirs win.

Where: $CAFFEONSPARK_CACHE, else $XDG_CACHE_HOME/caffeonspark, else ~/.cache/caffeonspark.
One file per JDK build and pyspark version, about 110 MB. The JVM maps the archive's classes
into the driver, so it is used only from a folder this user owns that nobody else can write
to (created 0700), and only when the archive file is the user's and not writable by others;
otherwise CDS is off, said once.
Tests: tests/spark/test_jvm_cds.py.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from caffeonspark.atomic_file import atomic_path

__all__ = ["archive_path", "driver_java_options", "save_archive"]

log = logging.getLogger("caffeonspark")

QUIET = "-Xlog:cds*=off"  # an archive that does not fit (other classpath) is skipped quietly
_recording: Path | None = None  # the archive this process's JVM records for, if any


def cache_dir() -> Path:
    if os.environ.get("CAFFEONSPARK_CACHE"):
        return Path(os.environ["CAFFEONSPARK_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "caffeonspark"


def _private_folder(folder: Path) -> bool:
    """Creates `folder` (0700) if needed; whether it and its archives may be trusted: owned
    by this user and not writable by group or others."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        stat = folder.stat()
    except OSError as err:
        _refuse(f"its folder {folder} cannot be made: {err}")
        return False
    if stat.st_uid != os.getuid() or stat.st_mode & 0o022:
        _refuse(f"its folder {folder} is not this user's alone (owner uid {stat.st_uid}, "
                f"mode {stat.st_mode & 0o777:o})")
        return False
    return True


def _private_file(path: Path) -> bool:
    stat = path.stat()
    if stat.st_uid != os.getuid() or stat.st_mode & 0o022:
        _refuse(f"{path} is not this user's alone (owner uid {stat.st_uid}, "
                f"mode {stat.st_mode & 0o777:o})")
        return False
    return True


_refused: set[str] = set()


def _refuse(why: str) -> None:
    if why not in _refused:
        _refused.add(why)
        log.warning("the driver JVM's class archive is off: %s", why)


def _java_home() -> Path | None:
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"])
    java = shutil.which("java")
    return Path(os.path.realpath(java)).parent.parent if java else None


def _tool(name: str) -> str | None:
    home = _java_home()
    if home is not None and (home / "bin" / name).is_file():
        return str(home / "bin" / name)
    return shutil.which(name)


def _user_has_java_options() -> bool:
    submit_args = os.environ.get("PYSPARK_SUBMIT_ARGS", "")
    if "extraJavaOptions" in submit_args or "--driver-java-options" in submit_args:
        return True
    for var in ("JDK_JAVA_OPTIONS", "_JAVA_OPTIONS"):
        if "Archive" in os.environ.get(var, ""):
            return True
    folders = [os.environ.get("SPARK_CONF_DIR", "")]
    if os.environ.get("SPARK_HOME"):
        folders.append(os.path.join(os.environ["SPARK_HOME"], "conf"))
    for folder in filter(None, folders):
        try:
            text = Path(folder, "spark-defaults.conf").read_text(errors="replace")
        except OSError:
            continue
        if "spark.driver.extraJavaOptions" in text:
            return True
    return False


def archive_path() -> Path | None:
    """This JDK and Spark's archive (existing or not); None when CDS is off here."""
    if os.environ.get("CAFFEONSPARK_JVM_CDS", "1") == "0" or _user_has_java_options():
        return None
    home = _java_home()
    if home is None or _tool("java") is None or _tool("jcmd") is None:
        return None
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    key = hashlib.sha256()
    key.update(pyspark.__version__.encode())
    for path in [home / "lib" / "server" / "libjvm.so", *sorted(jars.glob("*.jar"))]:
        try:
            stat = path.stat()
        except OSError:
            continue
        key.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    folder = cache_dir()
    if not _private_folder(folder):
        return None
    return folder / f"spark-{pyspark.__version__}-{key.hexdigest()[:16]}.jsa"


def driver_java_options() -> str:
    """Options for the driver JVM: map the archive, or record for save_archive; "" if off."""
    global _recording
    _recording = None
    archive = archive_path()
    if archive is None:
        return ""
    if archive.is_file():
        if not _private_file(archive):
            return ""
        return f"-XX:SharedArchiveFile={archive} {QUIET}"
    _recording = archive
    return f"-XX:+RecordDynamicDumpInfo {QUIET}"


def forget() -> None:
    """The JVM would not start with our options: remove the archive it was given."""
    global _recording
    _recording = None
    archive = archive_path()
    if archive is not None and archive.is_file():
        log.warning("removing the driver JVM's class archive %s: the JVM did not start with it",
                    archive)
        archive.unlink(missing_ok=True)


def save_archive(spark: Any, timeout: float = 120.0) -> Path | None:
    """Write the archive the running JVM recorded for (once per JDK and Spark); the path, or
    None when there was nothing to do or it failed (logged, never raised: the job is done)."""
    global _recording
    archive, _recording = _recording, None
    if archive is None or archive.is_file():
        return None
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
        pid = str(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
        log.info("writing the driver JVM's class archive %s (once; later starts are faster)",
                 archive)
        with atomic_path(archive) as partial:  # published only once a JVM has mapped it
            dump = subprocess.run(
                [_tool("jcmd") or "jcmd", pid, "VM.cds", "dynamic_dump", partial],
                capture_output=True, text=True, timeout=timeout, check=False,
            )
            if dump.returncode or not os.path.isfile(partial):
                raise RuntimeError(
                    f"jcmd VM.cds dynamic_dump: {(dump.stdout + dump.stderr)[-300:]}"
                )
            trial = subprocess.run(
                [_tool("java") or "java", f"-XX:SharedArchiveFile={partial}", QUIET, "-version"],
                capture_output=True, text=True, timeout=timeout, check=False,
            )
            if trial.returncode:
                raise RuntimeError(f"a JVM would not start with it (status {trial.returncode})")
        return archive
    except Exception as err:  # a faster next start is not worth failing a job
        log.warning("the driver JVM's class archive was not written: %s", err)
        return None
