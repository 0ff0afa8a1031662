"""A rank written in Python from the wire format of cpp/comm/frame.h and the handshake of
cpp/comm/handshake.h, used by the tests to misbehave in ways a real rank cannot: wrong
secrets, garbage, oversized frames. It also checks the C++ HMAC transcript independently."""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct

MAGIC = 0x46534F43
HELLO, CHALLENGE, PROOF, WELCOME, REJECT = 1, 2, 3, 4, 5
DATA, HEARTBEAT, ABORT, BYE = 16, 17, 18, 19
ALLREDUCE = 1


def header(kind: int, length: int, op: int = 0, seq: int = 0, magic: int = MAGIC) -> bytes:
    return struct.pack("<IHHII", magic, kind, op, seq, length)


def u32(value: int) -> bytes:
    return struct.pack("<I", value)


def string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return u32(len(data)) + data


def proof(
    secret: bytes,
    label: str,
    job: str,
    world: int,
    connector: int,
    acceptor: int,
    connector_nonce: bytes,
    acceptor_nonce: bytes,
) -> bytes:
    transcript = (
        string(label)
        + string(job)
        + u32(world)
        + u32(connector)
        + u32(acceptor)
        + connector_nonce
        + acceptor_nonce
    )
    return hmac.new(secret, transcript, hashlib.sha256).digest()


def recv_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def read_frame(conn: socket.socket) -> tuple[int, bytes]:
    magic, kind, _, _, length = struct.unpack("<IHHII", recv_exact(conn, 16))
    assert magic == MAGIC
    return kind, recv_exact(conn, length)


def read_control(conn: socket.socket) -> tuple[int, bytes]:
    """The next frame that is neither a heartbeat nor data."""
    while True:
        kind, payload = read_frame(conn)
        if kind not in (HEARTBEAT, DATA):
            return kind, payload


def reject_reason(payload: bytes) -> str:
    (size,) = struct.unpack("<I", payload[:4])
    return payload[4 : 4 + size].decode()


def connect_as(
    address: str, secret: bytes, job: str, world: int, rank: int, target: int
) -> tuple[socket.socket, int, bytes]:
    """Runs the connector handshake; returns (socket, reply kind, reply payload): WELCOME on
    success, REJECT with its reason otherwise."""
    host, port = address.rsplit(":", 1)
    conn = socket.create_connection((host, int(port)), timeout=10)
    nonce = os.urandom(32)
    hello = u32(1) + string(job) + u32(world) + u32(rank) + u32(target) + nonce
    conn.sendall(header(HELLO, len(hello)) + hello)
    kind, payload = read_frame(conn)
    if kind != CHALLENGE:
        return conn, kind, payload
    their_nonce = payload[:32]
    proof_bytes = proof(secret, "connect", job, world, rank, target, nonce, their_nonce)
    conn.sendall(header(PROOF, 32) + proof_bytes)
    kind, payload = read_frame(conn)
    return conn, kind, payload


def accept_as(
    listener: socket.socket, secret: bytes, job: str, world: int, rank: int
) -> socket.socket:
    """Runs the acceptor handshake for the first connection on `listener`."""
    conn, _ = listener.accept()
    conn.settimeout(10)
    kind, hello = read_frame(conn)
    assert kind == HELLO
    job_size = struct.unpack("<I", hello[4:8])[0]
    rest = hello[8 + job_size :]
    connector = struct.unpack("<I", rest[4:8])[0]
    their_nonce = rest[12:44]
    nonce = os.urandom(32)
    mine = proof(secret, "accept", job, world, connector, rank, their_nonce, nonce)
    conn.sendall(header(CHALLENGE, 64) + nonce + mine)
    kind, payload = read_frame(conn)
    assert kind == PROOF
    assert payload == proof(secret, "connect", job, world, connector, rank, their_nonce, nonce)
    conn.sendall(header(WELCOME, 0))
    return conn
