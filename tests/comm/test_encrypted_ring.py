"""The encrypted ring (CommOptions.encrypt, cpp/comm/frame_cipher.h): AES-256-GCM on every
frame after the handshake, under per-direction session keys derived from the handshake.

- With encryption on, the allreduce grid gives byte for byte the plain ring's results.
- A rank with encryption on and one with it off refuse each other, saying why.
- A relay between two ranks that passes the handshake untouched and then flips one bit of
  a data frame (payload, header or tag) makes both ranks fail with a CommError about
  authentication; without encryption the same flip silently changes the sum, which is why
  the option exists.
- The session keys differ per direction and per connection (the test hook
  _engine._derive_link_keys), and follow the documented derivation.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from comm_worker import rank_data
from ranks import describe, run_ranks

from caffeonspark._native import _engine

HEADER = 16
TAG = 16
DATA = 16  # FrameKind::kData; kinds below 16 are the handshake's
BIG = 1_000_003  # over a 4 KiB segment many times


def run_grid(world_size: int, out: Path, lengths: list[int], encrypt: bool):
    out.mkdir()
    args = ["--out", out, "--seed", 5, "--lengths", ",".join(map(str, lengths))]
    args += ["--segment-bytes", 4096, "--window", 3]
    if encrypt:
        args += ["--encrypt", "all"]
    results = run_ranks(world_size, "grid", *args)
    assert all(r.returncode == 0 for r in results), describe(results)
    return {
        (r, n): np.load(out / f"r{r}_n{n}.npy").tobytes()
        for r in range(world_size)
        for n in lengths
    }


@pytest.mark.parametrize("world_size", [2, 3])
def test_encrypted_grid_equals_the_plain_ring(world_size, tmp_path):
    # 0, 1, P-1, a length no multiple of P, one far larger than a segment
    lengths = sorted({0, 1, world_size - 1, 1001, BIG})
    plain = run_grid(world_size, tmp_path / "plain", lengths, encrypt=False)
    sealed = run_grid(world_size, tmp_path / "sealed", lengths, encrypt=True)
    assert sealed == plain
    for n in lengths:  # and the plain ring's result is the sum (tests/comm/test_allreduce.py)
        expected = sum(rank_data(5, r, n).astype(np.float64) for r in range(world_size))
        got = np.frombuffer(plain[(0, n)], dtype=np.float32)
        assert np.allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_encrypted_and_plain_ranks_refuse_each_other(tmp_path):
    results = run_ranks(
        2, "grid", "--out", tmp_path, "--lengths", "10", "--encrypt", "0", "--timeout", 3
    )
    for r in results:
        # the first rank refused may be gone before the other connects: then that one's
        # connect times out, and its message lists the refusal it saw itself
        assert r.returncode == 3 and r.report["error"] in ("CommError", "PeerTimeout"), describe(
            results
        )
    reasons = (
        "rank 0 asks for an encrypted ring, but rank 1 runs a plain one",
        "rank 1 asks for a plain ring, but rank 0 runs an encrypted one",
    )
    for r in results:
        message = r.report["message"]
        assert any(reason in message for reason in reasons), describe(results)
        assert "set encryption alike on every rank" in message


class TamperingRelay:
    """A man in the middle: accepts rank 1's connection meant for rank 0, forwards it to
    rank 0's listener (the address rank 0 wrote to `address_file`), passes the handshake
    untouched, then flips one bit of the first non-empty data frame: in its payload, its
    header (the sequence number) or its tag. The other direction is copied as it is."""

    def __init__(self, address_file: Path, encrypted: bool, where: str) -> None:
        self.address_file, self.encrypted, self.where = address_file, encrypted, where
        self.flipped = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.server.getsockname()[1]}"
        self.sockets: list[socket.socket] = [self.server]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        for s in self.sockets:
            s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.sockets.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        host, port = self.address_file.read_text().rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        self.sockets.append(upstream)
        threading.Thread(target=self._copy, args=(upstream, client), daemon=True).start()
        try:
            while True:
                header = bytearray(self._read(client, HEADER))
                kind, length = (
                    struct.unpack_from("<H", header, 4)[0],
                    struct.unpack_from("<I", header, 12)[0],
                )
                sealed = self.encrypted and kind >= DATA
                body = bytearray(self._read(client, length + (TAG if sealed else 0)))
                if kind == DATA and length > 0 and not self.flipped.is_set():
                    if self.where == "payload":
                        body[3] ^= 0x01  # an exponent bit of the first float
                    elif self.where == "header":
                        header[8] ^= 0x80  # the collective's sequence number
                    else:
                        body[-1] ^= 0x01  # the tag's last byte
                    self.flipped.set()
                upstream.sendall(bytes(header + body))
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()

    @staticmethod
    def _read(conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            piece = conn.recv(size - len(data))
            if not piece:
                raise OSError("closed")
            data += piece
        return data

    @staticmethod
    def _copy(source: socket.socket, target: socket.socket) -> None:
        try:
            while piece := source.recv(65536):
                target.sendall(piece)
        except OSError:
            pass
        finally:
            target.close()


def run_relayed(tmp_path: Path, encrypted: bool, where: str):
    relay = TamperingRelay(tmp_path / "rank0_address", encrypted, where)
    args = ["--out", tmp_path, "--seed", 9, "--lengths", "1000", "--relay", relay.address]
    if encrypted:
        args += ["--encrypt", "all"]
    try:
        results = run_ranks(2, "grid", *args, "--timeout", 10, timeout=60)
    finally:
        relay.close()
    assert relay.flipped.is_set(), "the relay saw no data frame"
    return results


@pytest.mark.parametrize("where", ["payload", "header", "tag"])
def test_a_tampered_frame_fails_authentication_on_both_ranks(where, tmp_path):
    results = run_relayed(tmp_path, encrypted=True, where=where)
    for r in results:
        assert r.returncode == 3 and r.report["error"] == "CommError", describe(results)
        assert "failed authentication" in r.report["message"], describe(results)
    assert "data frame from rank 1 (" in results[0].report["message"]


def test_without_encryption_the_same_flip_silently_changes_the_sum(tmp_path):
    results = run_relayed(tmp_path, encrypted=False, where="payload")
    assert all(r.returncode == 0 for r in results), describe(results)
    expected = sum(rank_data(9, r, 1000).astype(np.float64) for r in range(2))
    got = np.load(tmp_path / "r0_n1000.npy")
    assert not np.allclose(got, expected, rtol=1e-5, atol=1e-5)


def u32(value: int) -> bytes:
    return struct.pack("<I", value)


def string(text: str) -> bytes:
    return u32(len(text)) + text.encode()


def test_session_keys_are_per_direction_and_per_connection():
    secret, job, world = os.urandom(16), "job-9", 4
    nc, na = os.urandom(32), os.urandom(32)
    to_acceptor, to_connector = _engine._derive_link_keys(secret, job, world, 2, 3, nc, na)
    assert len(to_acceptor) == len(to_connector) == 32 and to_acceptor != to_connector
    # the documented derivation: HMAC-SHA256(secret, label, job, world, c, a, Nc, Na)
    for key, label in [
        (to_acceptor, "connector to acceptor"),
        (to_connector, "acceptor to connector"),
    ]:
        transcript = string("aes-256-gcm key, " + label) + string(job)
        transcript += u32(world) + u32(2) + u32(3) + nc + na
        assert key == hmac.new(secret, transcript, hashlib.sha256).digest()
    # a fresh nonce on either side, another link or another job: other keys
    others = [
        _engine._derive_link_keys(secret, job, world, 2, 3, os.urandom(32), na),
        _engine._derive_link_keys(secret, job, world, 2, 3, nc, os.urandom(32)),
        _engine._derive_link_keys(secret, job, world, 3, 0, nc, na),
        _engine._derive_link_keys(secret, "job-10", world, 2, 3, nc, na),
    ]
    keys = {to_acceptor, to_connector} | {k for pair in others for k in pair}
    assert len(keys) == 2 + 2 * len(others)
    # and none equals the proof of the secret that travels in the clear
    proof = hmac.new(
        secret,
        string("accept") + string(job) + u32(world) + u32(2) + u32(3) + nc + na,
        hashlib.sha256,
    ).digest()
    assert proof not in keys


def test_a_world_of_one_encrypts_nothing():
    from caffeonspark.distributed.comm import CommOptions, Communicator, listen

    comm = Communicator(listen(), 0, ["127.0.0.1:1"], b"k", "j", CommOptions(encrypt=True))
    data = np.arange(5, dtype=np.float32)
    comm.allreduce(data)
    comm.close()
    assert data.tolist() == [0, 1, 2, 3, 4]
