"""A Spark standalone cluster on netns_hosts.Hosts: the master on one host, one worker per
other host (1 core each), each started by the installed pyspark's own launch script
(`bin/spark-class org.apache.spark.deploy.master.Master` / `...worker.Worker`, what its
sbin/start-*.sh scripts run, minus the daemonising) under `ip netns exec`, with
SPARK_LOCAL_IP set to the host's address.

    home = scratch_spark_home(tmp)                    # links the installed pyspark's bin/ jars/
    cluster = Standalone(hosts, "head", ["w1", "w2"], home, tmp).start()
    cluster.url                                       # "spark://10.x.y.1:7077"

Each worker gets its own work and local directory under `tmp/<host>/` (so a rank's spool
path names its host), which executors inherit. Processes are stopped by hosts.close().
Tests: tests/cluster/test_spark_cluster.py.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from netns_hosts import Hosts

__all__ = ["Standalone", "scratch_spark_home", "FAST_START"]

MASTER_PORT = 7077
REGISTER_SECONDS = 150.0
# Short-lived JVMs on a small machine: the C1 compiler alone and the serial collector start
# them several times faster (tests/spark/local_cluster_train.py measured it).
FAST_START = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
DAEMON_MEMORY = "256m"


def scratch_spark_home(root: Path) -> Path:
    """A Spark home linking the installed pyspark's scripts, jars and Python files (the
    workers write their work/ there, never into site-packages). Its RELEASE file tells
    Spark's launcher (which builds the executors' classpath) that jars/ holds the jars, as
    in a binary distribution, rather than a source tree's build directories."""
    import pyspark

    installed = os.path.dirname(pyspark.__file__)
    home = root / "spark_home"
    home.mkdir(parents=True, exist_ok=True)
    for name in ("bin", "jars", "python", "sbin"):
        if os.path.isdir(os.path.join(installed, name)) and not (home / name).exists():
            (home / name).symlink_to(os.path.join(installed, name))
    (home / "RELEASE").write_text(f"Spark {pyspark.__version__} (pip-installed pyspark)\n")
    return home


class Standalone:
    def __init__(self, hosts: Hosts, master: str, workers: list[str], spark_home: Path,
                 root: Path, worker_memory: str = "1g") -> None:
        self.hosts = hosts
        self.master = master
        self.workers = list(workers)
        self.home = spark_home
        self.root = root
        self.worker_memory = worker_memory
        self.url = f"spark://{hosts.address(master)}:{MASTER_PORT}"

    def host_dir(self, name: str) -> Path:
        return self.root / name

    def log(self, name: str) -> Path:
        return self.host_dir(name) / "daemon.log"

    def env(self, name: str) -> dict[str, str]:
        folder = self.host_dir(name)
        (folder / "local").mkdir(parents=True, exist_ok=True)
        return dict(
            os.environ,
            SPARK_HOME=str(self.home),
            SPARK_LOCAL_IP=self.hosts.address(name),
            SPARK_LOCAL_DIRS=str(folder / "local"),
            TMPDIR=str(folder / "local"),
            SPARK_DAEMON_MEMORY=DAEMON_MEMORY,
            SPARK_DAEMON_JAVA_OPTS=FAST_START,
            SPARK_NO_DAEMONIZE="1",
        )

    def _daemon(self, name: str, main: str, *args: str) -> None:
        argv = [str(self.home / "bin" / "spark-class"), main, "--host",
                self.hosts.address(name), *args]
        self.hosts.popen(name, argv, log=self.log(name), env=self.env(name))

    def start(self) -> Standalone:
        """Master, then the workers; returns once every worker has registered with the
        master (RuntimeError with the logs' tails after REGISTER_SECONDS)."""
        self.host_dir(self.master).mkdir(parents=True, exist_ok=True)
        self._daemon(self.master, "org.apache.spark.deploy.master.Master",
                     "--port", str(MASTER_PORT), "--webui-port", "8080")
        for name in self.workers:
            work = self.host_dir(name) / "work"
            work.mkdir(parents=True, exist_ok=True)
            self._daemon(name, "org.apache.spark.deploy.worker.Worker", "--cores", "1",
                         "--memory", self.worker_memory, "--work-dir", str(work),
                         "--webui-port", "8081", self.url)
        deadline = time.monotonic() + REGISTER_SECONDS
        while self.registered() < len(self.workers):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.registered()} of {len(self.workers)} workers registered with "
                    f"{self.url} within {REGISTER_SECONDS:.0f} s\n" + self.tails())
            time.sleep(0.5)
        return self

    def registered(self) -> int:
        try:
            text = self.log(self.master).read_text(errors="replace")
        except FileNotFoundError:
            return 0
        return len(re.findall(r"Registering worker ", text))

    def tails(self, lines: int = 15) -> str:
        out = []
        for name in (self.master, *self.workers):
            try:
                text = self.log(name).read_text(errors="replace").splitlines()[-lines:]
            except FileNotFoundError:
                text = ["(no log)"]
            out.append(f"--- {name} ---\n" + "\n".join(text))
        return "\n".join(out)
