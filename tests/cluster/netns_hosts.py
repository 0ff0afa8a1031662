"""Test hosts on this machine: Linux network namespaces joined by veth pairs into a bridge,
each with its own 10.x address, shared by tests/cluster/ and the benchmarks that run across
them (tools/bench_scaling.py, tools/bench_allreduce.py --shaped, which import this file).

    with Hosts(["head", "w1", "w2"]) as hosts:          # made here, removed on exit
        proc = hosts.popen("w1", ["python", "-c", "..."])  # runs inside w1's namespace
        hosts.address("w1")                               # "10.213.7.2"
        hosts.cut("w1"); hosts.restore("w1")              # its link down / up
        hosts.shape("w1", gbit=10, delay_us=50)           # tbf rate + netem delay
                                                          # (returns the delay applied: 0
                                                          # where the kernel lacks netem)

Layout: one bridge in the root namespace (no address there: the root namespace sends
nothing to the hosts, and the hosts reach only each other), and per host a namespace
`cos-<token>-<name>` with loopback up and `eth0`, the inner end of a veth pair whose outer
end `cv<token><i>` is a port of the bridge `cb<token>`. The token is fresh per Hosts, so
concurrent runs never share a name; the /24 is picked at random and only exists on that
bridge.

Cleanup (close(), also on failure): every process started through popen (its process
group), then every process still inside the namespaces (`ip netns pids`: what those started,
e.g. Spark's executors), then the veths, namespaces and bridge. Every wait is bounded.

Needs root and iproute2 (`ip`, `tc`). `unavailable()` says why namespaces cannot be made
here (None when they can); `require()` is the tests' rule: skip with that reason, but fail
when the CI environment variable is set (CI runs as root and must run these tests).
Tests: tests/cluster/test_netns_hosts.py, tests/cluster/test_spark_cluster.py.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["Hosts", "unavailable", "require", "ip"]

COMMAND_SECONDS = 20.0  # any one ip / tc command
STOP_SECONDS = 10.0  # SIGTERM to SIGKILL


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`ip ARGS` with a time limit; CalledProcessError carries ip's own message."""
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check,
                          timeout=COMMAND_SECONDS)


def tc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["tc", *args], capture_output=True, text=True, check=check,
                          timeout=COMMAND_SECONDS)


def unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None."""
    if shutil.which("ip") is None:
        return "no `ip` command (Debian's iproute2)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"cos-probe-{secrets.token_hex(4)}"
    try:
        made = ip("netns", "add", probe, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"`ip netns add` failed: {error}"
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


def require(tools: Sequence[str] = ()) -> None:
    """The tests' rule: skip with the reason where namespaces (or `tools`) are missing,
    but fail in CI (environment variable CI set), which must run these tests."""
    import pytest

    why = unavailable()
    if why is None:
        missing = [tool for tool in tools if shutil.which(tool) is None]
        if missing:
            why = f"missing {', '.join(missing)} (Debian's iproute2)"
    if why is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the cluster tests, but: {why}")
    pytest.skip(why)


class Hosts:
    """Namespaces named `names`, their veths and their bridge (see the module docstring)."""

    def __init__(self, names: Sequence[str]) -> None:
        if not 1 <= len(names) <= 200 or len(set(names)) != len(names):
            raise ValueError(f"need 1-200 distinct host names, got {list(names)}")
        self.names = list(names)
        self.token = secrets.token_hex(3)
        self.bridge = f"cb{self.token}"
        self.subnet = f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}"
        self._procs: list[subprocess.Popen] = []
        self._made: list[str] = []  # namespaces made, for cleanup
        self._bridge_made = False

    # -- names -------------------------------------------------------------------------

    def netns(self, name: str) -> str:
        return f"cos-{self.token}-{name}"

    def veth(self, name: str) -> str:
        """The root-namespace end of the host's link (a port of the bridge)."""
        return f"cv{self.token}{self.names.index(name)}"

    def address(self, name: str) -> str:
        return f"{self.subnet}.{self.names.index(name) + 1}"

    # -- life --------------------------------------------------------------------------

    def __enter__(self) -> Hosts:
        try:
            self.create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def create(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        self._bridge_made = True
        ip("link", "set", self.bridge, "up")
        for name in self.names:
            ns, veth = self.netns(name), self.veth(name)
            ip("netns", "add", ns)
            self._made.append(ns)
            ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("link", "set", veth, "master", self.bridge, "up")
            ip("-n", ns, "addr", "add", f"{self.address(name)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
        self.wait_reachable()

    def wait_reachable(self, seconds: float = 10.0) -> None:
        """Until each host's eth0 is up and its address usable (duplicate address detection
        is IPv6 only; this waits for the links' carrier), at most `seconds`."""
        deadline = time.monotonic() + seconds
        for name in self.names:
            while True:
                state = ip("-n", self.netns(name), "-br", "link", "show", "eth0").stdout
                if " UP " in f" {state} " or time.monotonic() > deadline:
                    break
                time.sleep(0.05)

    def close(self) -> None:
        """Stop every process, then remove the veths, namespaces and bridge (idempotent)."""
        for proc in self._procs:
            _stop_group(proc)
        self._procs.clear()
        for ns in self._made:
            _kill_pids(ns)
        for ns in self._made:
            name = ns.split("-", 2)[2]
            ip("link", "del", self.veth(name), check=False)
            ip("netns", "del", ns, check=False)
        self._made.clear()
        if self._bridge_made:
            ip("link", "del", self.bridge, check=False)
            self._bridge_made = False

    # -- processes ---------------------------------------------------------------------

    def command(self, name: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns(name), *map(str, argv)]

    def popen(self, name: str, argv: Sequence[str], log: Path | None = None,
              **kwargs: Any) -> subprocess.Popen:
        """Start argv inside host `name`'s namespace, in a process group of its own (stopped
        by close()); `log`: stdout and stderr go to that file."""
        if log is not None:
            with open(log, "ab") as out:
                proc = subprocess.Popen(self.command(name, argv), stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        **kwargs)
        else:
            proc = subprocess.Popen(self.command(name, argv), start_new_session=True, **kwargs)
        self._procs.append(proc)
        return proc

    def run(self, name: str, argv: Sequence[str], timeout: float,
            **kwargs: Any) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(name, argv), timeout=timeout, **kwargs)

    # -- links -------------------------------------------------------------------------

    def cut(self, name: str) -> None:
        """Take the host's link down from the root namespace (its bridge port)."""
        ip("link", "set", self.veth(name), "down")

    def restore(self, name: str) -> None:
        ip("link", "set", self.veth(name), "up")

    def shape(self, name: str, gbit: float, delay_us: float = 0.0) -> float:
        """What the host sends leaves at `gbit` Gbit/s (tbf) after `delay_us` µs (netem as the
        root qdisc of its eth0, tbf under it). The token bucket holds 1 ms at the rate (at
        least 256 KB: a veth hands over 64 KB GSO packets), the queue 10 ms. Returns the
        delay applied: 0 where the kernel has no netem (sch_netem), then tbf alone."""
        ns = self.netns(name)
        self.unshape(name)
        burst = max(256 << 10, int(gbit * 1e9 / 8 * 1e-3))
        tbf = ["tbf", "rate", f"{gbit:g}gbit", "burst", str(burst), "latency", "10ms"]
        if delay_us > 0:
            netem = tc("-n", ns, "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "netem",
                       "delay", f"{delay_us:g}us", "limit", "100000", check=False)
            if netem.returncode == 0:
                tc("-n", ns, "qdisc", "add", "dev", "eth0", "parent", "1:1", "handle", "10:",
                   *tbf)
                return delay_us
            if "unknown" not in netem.stderr.lower():
                raise subprocess.CalledProcessError(netem.returncode, netem.args,
                                                    netem.stdout, netem.stderr)
        tc("-n", ns, "qdisc", "add", "dev", "eth0", "root", "handle", "10:", *tbf)
        return 0.0

    def unshape(self, name: str) -> None:
        tc("-n", self.netns(name), "qdisc", "del", "dev", "eth0", "root", check=False)


def _stop_group(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, STOP_SECONDS)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _kill_pids(ns: str) -> None:
    """SIGKILL whatever still runs inside our namespace `ns` (started by what we started),
    until none is left or STOP_SECONDS have passed."""
    deadline = time.monotonic() + STOP_SECONDS
    while time.monotonic() < deadline:
        found = ip("netns", "pids", ns, check=False).stdout.split()
        if not found:
            return
        for pid in found:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        time.sleep(0.1)
