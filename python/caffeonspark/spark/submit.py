"""`caffeonspark-submit`: spark-submit of CaffeOnSpark's driver (spark/driver.py).

    caffeonspark-submit --master yarn --num-executors 4 --conf spark.executor.cores=4 \\
        -train -conf lenet_solver.prototxt -model hdfs:///models/lenet.caffemodel -clusterSize 4
    caffeonspark-submit --dry-run ...            # print the spark-submit command only

The command line is split by dashes: options with two (`--master yarn`, `--conf k=v`,
`--files a,b`, `--num-executors=4`; which take a value is spark-submit's own list,
SPARK_SUBMIT_VALUE_OPTIONS) go to spark-submit; flags with one (`-train -conf S -model M`,
spark/config.py) to the driver. Added when not given: `--master local[clusterSize]` (unless
--remote, MASTER, `--conf spark.master=` or spark-defaults.conf names one), `--name
caffeonspark`, and the Python running this command for the driver (client mode) and, on a
local master, for the executors. `--venv ARCHIVE` (a venv-pack / conda-pack archive) adds
`--archives ARCHIVE#environment --conf spark.pyspark.python=./environment/bin/python`:
executors import caffeonspark's compiled engine, so they need it installed (pip on every
node) or such an archive; a --py-files zip cannot carry the extension. In client mode the
flags are checked here first (Config: solver, net, local paths), so a mistake fails in a
second with exit status 2 instead of after the JVM starts.

spark-submit is $SPARK_HOME/bin/spark-submit, else the one of the installed pyspark; the
process becomes it (exec), so its exit status is the job's. Errors here are one line
(cli_report.py); --debug shows their traceback and sets CAFFEONSPARK_DEBUG=1 for the driver.
Tests: tests/spark/test_submit.py.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Submission", "build", "main", "split_args", "spark_submit_path"]

# spark-submit's options that take a value (Spark 4's SparkSubmitOptionParser), and its
# switches; `-c` is its alias of --conf.
SPARK_SUBMIT_VALUE_OPTIONS = frozenset(
    """--archives --class --conf --deploy-mode --driver-class-path --driver-cores
    --driver-default-class-path --driver-java-options --driver-library-path --driver-memory
    --exclude-packages --executor-cores --executor-memory --extra-properties-file --files
    --jars --keytab --kill --master --name --num-executors --packages --principal
    --properties-file --proxy-user --py-files --queue --remote --repositories --status
    --total-executor-cores""".split()
)
SPARK_SUBMIT_SWITCHES = frozenset(
    "--help --load-spark-defaults --supervise --usage-error --verbose --version".split()
)
OWN_OPTIONS = {"--dry-run": False, "--venv": True}  # name -> takes a value
VENV_LINK = "environment"

USAGE = """usage: caffeonspark-submit [spark-submit options] [--venv ARCHIVE] [--dry-run] [--debug]
                           CaffeOnSpark flags (-train -test -features ... -conf -model ...)
spark-submit options take two dashes (--master, --num-executors, --files, --conf k=v ...);
CaffeOnSpark's flags one (docs/SPARK.md). --master defaults to local[clusterSize]."""


class SubmitError(ValueError):
    """A command line caffeonspark-submit cannot split."""


@dataclass
class Submission:
    """The split command line: spark-submit's options (in order, values attached) and the
    driver's flags."""

    spark: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    dry_run: bool = False
    venv: str | None = None

    def spark_value(self, name: str) -> str | None:
        """The value of a spark-submit option (`--master`), or of a `--conf` key."""
        found = None
        for i, token in enumerate(self.spark):
            if name.startswith("--"):
                if token == name and i + 1 < len(self.spark):
                    found = self.spark[i + 1]
                elif token.startswith(name + "="):
                    found = token.split("=", 1)[1]
            elif token in ("--conf", "-c") and i + 1 < len(self.spark):
                key, _, value = self.spark[i + 1].partition("=")
                if key.strip() == name:
                    found = value
            elif token.startswith("--conf=") and token[7:].partition("=")[0].strip() == name:
                found = token[7:].partition("=")[2]
        return found


def split_args(argv: Sequence[str]) -> Submission:
    """Two dashes: spark-submit's (value attached when it takes one); one: the driver's
    (CaffeOnSpark flags, value attached when the flag takes one)."""
    from caffeonspark.spark.config import FLAGS

    sub = Submission()
    args = list(argv)
    i = 0
    while i < len(args):
        token = args[i]
        name = token.split("=", 1)[0]
        inline = "=" in token
        if token.startswith("--"):
            if name in OWN_OPTIONS:
                if name == "--dry-run":
                    sub.dry_run = True
                else:
                    value, i = _value(args, i, name, inline, token)
                    sub.venv = value
            elif name in SPARK_SUBMIT_VALUE_OPTIONS:
                value, i = _value(args, i, name, inline, token)
                sub.spark += [name, value]
            elif name in SPARK_SUBMIT_SWITCHES:
                sub.spark.append(token)
            else:
                hint = ""
                if name[2:] in FLAGS:
                    hint = f"; CaffeOnSpark flags take one dash: -{name[2:]}"
                raise SubmitError(f"{name} is not a spark-submit option{hint}")
        elif token == "-c":  # spark-submit's alias of --conf
            value, i = _value(args, i, "--conf", False, token)
            sub.spark += ["--conf", value]
        elif token.startswith("-") and token != "-":
            sub.flags.append(token)
            flag = FLAGS.get(name.lstrip("-"))
            if flag is not None and flag.kind is not bool and not inline and i + 1 < len(args):
                i += 1
                sub.flags.append(args[i])
        else:
            raise SubmitError(
                f"unexpected argument '{token}': the driver is CaffeOnSpark's "
                "(spark/driver.py); give spark-submit options and CaffeOnSpark flags only"
            )
        i += 1
    return sub


def _value(args: list[str], i: int, name: str, inline: bool, token: str) -> tuple[str, int]:
    if inline:
        return token.split("=", 1)[1], i
    if i + 1 >= len(args):
        raise SubmitError(f"{name} needs a value")
    return args[i + 1], i + 1


def spark_submit_path() -> str:
    """$SPARK_HOME/bin/spark-submit, else the installed pyspark's."""
    home = os.environ.get("SPARK_HOME")
    candidates = [os.path.join(home, "bin", "spark-submit")] if home else []
    try:
        import pyspark

        candidates.append(os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-submit"))
    except ImportError:
        pass
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise SubmitError(
        "no spark-submit: set SPARK_HOME to a Spark installation or install pyspark "
        "(pip install 'caffeonspark[spark]')"
    )


def driver_path() -> str:
    """The driver script of this installed caffeonspark (spark-submit's primary resource)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "driver.py")


def _defaults_name_a_master() -> bool:
    conf_dir = os.environ.get("SPARK_CONF_DIR") or (
        os.path.join(os.environ["SPARK_HOME"], "conf") if os.environ.get("SPARK_HOME") else None
    )
    path = os.path.join(conf_dir, "spark-defaults.conf") if conf_dir else None
    if not path or not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as handle:
        return any(line.split(None, 1)[:1] == ["spark.master"] for line in handle)


def _cluster_size(flags: list[str]) -> int:
    from caffeonspark.spark.config import parse_args

    return int(parse_args(flags).get("clusterSize", 1))


def build(argv: Sequence[str], environ: dict[str, str] | None = None) -> tuple[list[str], dict]:
    """(the spark-submit command, its environment) for a caffeonspark-submit command line."""
    from caffeonspark.spark.config import Config

    env = dict(os.environ if environ is None else environ)
    sub = split_args(argv)
    cluster_mode = (sub.spark_value("--deploy-mode") or "client") == "cluster"
    if cluster_mode:
        _cluster_size(sub.flags)  # only parsed: paths are the cluster driver's
    else:
        Config(sub.flags)  # solver, net and local paths, before any JVM starts
    spark = list(sub.spark)
    master = sub.spark_value("--master") or sub.spark_value("spark.master")
    if (master is None and sub.spark_value("--remote") is None and not env.get("MASTER")
            and not _defaults_name_a_master()):
        master = f"local[{_cluster_size(sub.flags)}]"
        spark += ["--master", master]
    if sub.spark_value("--name") is None and sub.spark_value("spark.app.name") is None:
        spark += ["--name", "caffeonspark"]
    if sub.venv:
        spark += ["--archives", f"{sub.venv}#{VENV_LINK}",
                  "--conf", f"spark.pyspark.python=./{VENV_LINK}/bin/python"]
    elif master and master.startswith("local") and sub.spark_value("spark.pyspark.python") is None:
        env.setdefault("PYSPARK_PYTHON", sys.executable)  # local workers: this Python
    if not cluster_mode and sub.spark_value("spark.pyspark.driver.python") is None:
        env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    return [spark_submit_path(), *spark, driver_path(), *sub.flags], env


def main(argv: Sequence[str] | None = None) -> int:
    from caffeonspark.cli_report import run_reported, split_debug

    raw = list(sys.argv[1:] if argv is None else argv)
    debug = split_debug(raw)[1]
    return run_reported("caffeonspark-submit", lambda args: _submit(args, debug), raw)


def _submit(args: list[str], debug: bool) -> int:
    from caffeonspark.cli_report import DEBUG_ENV, UsageError
    from caffeonspark.errors import CaffeOnSparkError

    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    try:
        command, env = build(args)
    except (SubmitError, CaffeOnSparkError) as err:
        raise UsageError(str(err)) from err
    if debug:  # the driver spark-submit starts shows its tracebacks too
        env[DEBUG_ENV] = "1"
    if split_args(args).dry_run:
        added = [f"{k}={shlex.quote(v)}" for k, v in env.items() if os.environ.get(k) != v]
        print(" ".join([*added, shlex.join(command)]))
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
