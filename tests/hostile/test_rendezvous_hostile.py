"""Hostile peers against the local rendezvous (distributed/rendezvous.py, launcher.py): idle,
half-sent, garbage and reset connections, and a server out of file descriptors, cost only
their own connections while real ranks' all_gather completes; a rendezvous server that dies
fails the launcher at once with its error instead of after the ranks' deadline."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import caffeonspark
from caffeonspark.distributed import launcher
from caffeonspark.distributed.rendezvous import LocalRendezvous, RendezvousServer

PYTHON_DIR = str(Path(caffeonspark.__file__).resolve().parents[1])  # the package under test
DEADLINE = 30.0


def gather(server: str, world_size: int, secret: bytes) -> list[list[str] | BaseException]:
    """Every rank's all_gather (one thread each) with addresses "rank-r"."""
    results: list[list[str] | BaseException] = [RuntimeError("no result")] * world_size

    def one(rank: int) -> None:
        try:
            results[rank] = LocalRendezvous(server, rank, secret, DEADLINE).all_gather(
                f"rank-{rank}"
            )
        except BaseException as error:  # reported through results
            results[rank] = error

    threads = [threading.Thread(target=one, args=(r,)) for r in range(world_size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE + 5)
    return results


def connect(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5.0)


def reset(address: str, data: bytes = b"") -> None:
    """Connects, optionally sends `data`, then closes with a reset (SO_LINGER 0)."""
    sock = connect(address)
    if data:
        sock.sendall(data)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def attack(address: str, held: list[socket.socket], stop: threading.Event) -> None:
    """200 idle, 200 half-sent hellos, 200 garbage lines, and resets, interleaved, until
    `stop` (or until the server no longer accepts: it finished)."""
    try:
        for i in range(200):
            if stop.is_set():
                return
            held.append(connect(address))
            half = connect(address)
            half.sendall(b'{"rank": 0, "address": "evil:1", "pi')
            held.append(half)
            garbage = connect(address)
            garbage.sendall(os.urandom(64).replace(b"\n", b"") + b"\n")
            held.append(garbage)
            if i % 40 == 0:
                reset(address)
                reset(address, b'{"rank": 1')
    except OSError:
        assert stop.is_set(), "the server stopped accepting before the ranks were done"


def test_floods_and_resets_do_not_stop_a_real_gather():
    secret = os.urandom(16)
    server = RendezvousServer(3, secret, hello_timeout=DEADLINE).start(2 * DEADLINE)
    held: list[socket.socket] = []
    stop = threading.Event()
    attacker = threading.Thread(target=attack, args=(server.address, held, stop))
    try:
        reset(server.address)  # before any rank: must not end the server
        attack(server.address, held, stop)  # the server churns through 600 connections
        attacker.start()  # and more while the ranks gather
        started = time.monotonic()
        results = gather(server.address, 3, secret)
        elapsed = time.monotonic() - started
        stop.set()
        assert results == [["rank-0", "rank-1", "rank-2"]] * 3
        assert elapsed < DEADLINE
        assert server.wait(5) and server.error is None
        # The first 600 minus those still pending (64) or in the listen backlog (128).
        assert server.rejected_count >= 600 - RendezvousServer.MAX_PENDING - 128
        assert len(server.rejected) <= RendezvousServer.KEEP_REJECTED
    finally:
        stop.set()
        attacker.join(DEADLINE)
        for sock in held:
            sock.close()
        server.close()


def test_a_hello_deadline_is_total_not_per_recv():
    """A client trickling one byte at a time is dropped at the hello deadline."""
    server = RendezvousServer(1, b"s", hello_timeout=1.0).start(DEADLINE)
    try:
        with connect(server.address) as sock:
            started = time.monotonic()
            try:
                for _ in range(100):
                    sock.sendall(b" ")
                    # the server's answer to the next byte is a reset once it has dropped us
                    sock.settimeout(0.1)
                    try:
                        if sock.recv(1) == b"":
                            break
                    except TimeoutError:
                        continue
            except OSError:
                pass  # reset: dropped
            assert time.monotonic() - started < 5
        assert "no hello within 1 s" in list(server.rejected)
        assert gather(server.address, 1, b"s") == [["rank-0"]]
    finally:
        server.close()


EMFILE_SERVER = """
import logging, resource, sys
from caffeonspark.distributed.rendezvous import RendezvousServer
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
server = RendezvousServer(2, b"secret", hello_timeout=2.0)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (32, hard))
server.start(30)
print(server.address, flush=True)
ok = server.wait(35)
print("ok" if ok else f"failed: {server.error!r}", server.rejected_count, flush=True)
"""


def test_a_server_out_of_file_descriptors_backs_off_and_goes_on():
    """The server's process may hold 32 descriptors; 100 idle clients make accept fail with
    EMFILE. The server logs it once, frees descriptors, and both ranks still complete."""
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(EMFILE_SERVER)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=PYTHON_DIR),
    )
    held: list[socket.socket] = []
    try:
        address = child.stdout.readline().strip()
        assert address, child.stderr.read()
        for _ in range(100):
            held.append(connect(address))
        assert gather(address, 2, b"secret") == [["rank-0", "rank-1"]] * 2
        out, err = child.communicate(timeout=DEADLINE)
    finally:
        for sock in held:
            sock.close()
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    assert out.split()[0] == "ok", out
    assert err.count("cannot accept") == 1, err
    assert "Too many open files" in err


class DyingServer(RendezvousServer):
    """Fails on the first hello, as an unexpected bug in the server would."""

    def _admit(self, line: bytes) -> int | None:
        raise RuntimeError("simulated rendezvous failure")


def test_the_launcher_fails_fast_with_the_server_s_error(monkeypatch, tmp_path):
    # The ranks would wait 60 s for the address list; the launcher ends them at once. (They
    # never get to the solver: connecting comes first.)
    monkeypatch.setattr(launcher, "RendezvousServer", DyingServer)
    started = time.monotonic()
    result = launcher.launch(str(tmp_path / "unused.prototxt"), 2, threads=1, comm_timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    assert result.first_error == (
        "the rendezvous server failed: RuntimeError: simulated rendezvous failure"
    )
    assert all(outcome.returncode is not None for outcome in result.ranks)
