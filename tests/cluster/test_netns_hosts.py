"""The test hosts themselves (netns_hosts.py): two namespaces reach each other over their
veths and the bridge, a cut link stops that and a restored one brings it back; a shaped link
carries its rate (tbf) after its delay (netem); close() removes the namespaces, veths,
bridge and every process inside, also when the body failed; require() skips with the reason
outside CI and fails in CI."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import netns_hosts
import pytest
from netns_hosts import Hosts, require

# Runs inside a host: serve connections on (address, port) one at a time, answering a
# one-byte message with one byte, until none comes for 60 s (or close() stops it).
SERVE = """
import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
server.settimeout(60)
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    conn.settimeout(60)
    try:
        with conn:
            while data := conn.recv(1 << 20):
                if len(data) == 1:
                    conn.sendall(data)
    except OSError:
        pass  # a client that gave up
"""

# Runs inside a host: connect within `timeout` s, then send `mb` MB (printing the rate),
# or time `pings` one-byte round trips (printing the median).
CLIENT = """
import socket, statistics, sys, time
address, port, timeout, mb, pings = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
try:
    conn = socket.create_connection((address, port), timeout=timeout)
except OSError as error:
    print("unreachable", type(error).__name__)
    sys.exit(0)
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
times = []
for _ in range(pings):
    start = time.perf_counter(); conn.sendall(b"x"); conn.recv(1); times.append(time.perf_counter() - start)
if pings:
    print("rtt", statistics.median(times))
block = bytes(1 << 20)
start = time.perf_counter()
for _ in range(mb):
    conn.sendall(block)
conn.shutdown(socket.SHUT_WR); conn.recv(1)
if mb:
    print("gbit", mb * 8 * (1 << 20) / (time.perf_counter() - start) / 1e9)
"""


@pytest.fixture
def pair():
    require(["tc"])
    with Hosts(["a", "b"]) as hosts:
        yield hosts


def serve(hosts: Hosts) -> None:
    proc = hosts.popen("b", [sys.executable, "-c", SERVE, hosts.address("b"), "5001"],
                       stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"


def client(hosts: Hosts, timeout: float = 5.0, mb: int = 0, pings: int = 0) -> str:
    done = hosts.run("a", [sys.executable, "-c", CLIENT, hosts.address("b"), "5001",
                           str(timeout), str(mb), str(pings)],
                     timeout=60, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_hosts_reach_each_other_until_the_link_is_cut(pair):
    serve(pair)
    assert client(pair) == ""
    pair.cut("b")
    assert client(pair, timeout=1.0).startswith("unreachable")
    pair.restore("b")
    pair.wait_reachable()
    assert client(pair, timeout=5.0) == ""


def test_a_shaped_link_carries_its_rate(pair):
    serve(pair)
    assert pair.shape("a", gbit=1) == 0.0
    qdiscs = subprocess.run(["tc", "-n", pair.netns("a"), "qdisc", "show", "dev", "eth0"],
                            capture_output=True, text=True, timeout=10).stdout
    assert "tbf" in qdiscs and "rate 1Gbit" in qdiscs, qdiscs
    out = dict(line.split() for line in client(pair, mb=60).splitlines())
    assert 0.80 <= float(out["gbit"]) <= 1.05, out


def test_a_delayed_link_adds_its_delay_or_says_it_cannot(pair):
    """With netem (sch_netem) the round trip grows by the delay; a kernel without it (this
    project's Firecracker guests) gets the rate shaping alone and shape() reports 0 delay."""
    serve(pair)
    before = float(client(pair, pings=50).split()[1])
    applied = pair.shape("a", gbit=1, delay_us=300)
    qdiscs = subprocess.run(["tc", "-n", pair.netns("a"), "qdisc", "show", "dev", "eth0"],
                            capture_output=True, text=True, timeout=10).stdout
    assert "tbf" in qdiscs and "rate 1Gbit" in qdiscs, qdiscs
    if applied == 0.0:
        assert "netem" not in qdiscs, qdiscs
        return
    assert applied == 300 and "netem" in qdiscs, (applied, qdiscs)
    # One way is delayed (what a sends): the round trip grows by the delay.
    after = float(client(pair, pings=50).split()[1])
    assert after - before >= 250e-6, (before, after)


def test_close_removes_everything_even_after_a_failure():
    require()
    with pytest.raises(RuntimeError, match="the body failed"):
        with Hosts(["a", "b"]) as hosts:
            sleeper = hosts.popen("a", ["sleep", "600"])
            # A process that left our process group: found by `ip netns pids`.
            hosts.run("b", ["setsid", "-f", "sleep", "600"], timeout=10)
            netns = [hosts.netns(n) for n in ("a", "b")]
            links = [hosts.bridge, hosts.veth("a"), hosts.veth("b")]
            assert set(links) <= set(os.listdir("/sys/class/net"))
            escaped = netns_hosts.ip("netns", "pids", hosts.netns("b")).stdout.split()
            assert escaped
            raise RuntimeError("the body failed")
    assert sleeper.poll() is not None
    listed = netns_hosts.ip("netns", "list").stdout
    assert not any(ns in listed for ns in netns), listed
    deadline = time.monotonic() + 5
    while set(links) & set(os.listdir("/sys/class/net")) and time.monotonic() < deadline:
        time.sleep(0.05)  # a veth goes with its namespace, asynchronously
    assert not set(links) & set(os.listdir("/sys/class/net"))
    for pid in escaped:
        assert not os.path.exists(f"/proc/{pid}") or "Z" in _state(pid), pid


def _state(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_require_skips_with_the_reason_but_fails_in_ci(monkeypatch):
    monkeypatch.setattr(netns_hosts, "unavailable", lambda: "network namespaces need root")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="need root"):
        require()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the cluster tests, but: "
                                                    "network namespaces need root"):
        require()
