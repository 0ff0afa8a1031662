"""The handshake and framing against a Python peer (fake_peer.py): a peer with the right
secret is welcomed (the two HMAC implementations agree); wrong secrets, wrong job ids,
random bytes and oversized frames are refused without a crash while the job goes on; an
authenticated peer that sends an oversized data frame fails the job cleanly."""

from __future__ import annotations

import os
import socket
import threading

import fake_peer
import pytest
from fake_peer import REJECT, WELCOME
from ranks import Ranks, describe

from caffeonspark.distributed.rendezvous import LocalRendezvous


def hung_up(conn: socket.socket) -> bool:
    """True when the peer closed (FIN, or a reset because our bytes were left unread)."""
    try:
        return conn.recv(1) == b""
    except ConnectionResetError:
        return True


def rank1_address(ranks: Ranks) -> str:
    assert ranks.server.wait(20), ranks.server.error
    return ranks.server.addresses[1]


def test_intruders_are_refused_and_the_job_goes_on():
    # Rank 0 waits on stdin before connecting, so the intruders reach rank 1 first.
    ranks = Ranks(
        2, "loop", "--iterations", 3, "--count", 1000, "--wait-stdin-rank", 0, stdin_ranks=(0,)
    )
    address = rank1_address(ranks)
    host, port = address.rsplit(":", 1)
    seen = {}

    with socket.create_connection((host, int(port)), timeout=10) as conn:  # random bytes
        conn.sendall(os.urandom(64))
        seen["random"] = hung_up(conn)

    with socket.create_connection((host, int(port)), timeout=10) as conn:  # oversized hello
        conn.sendall(fake_peer.header(fake_peer.HELLO, 1 << 30))
        seen["oversized"] = hung_up(conn)

    conn, kind, payload = fake_peer.connect_as(address, b"not the secret", "test-job", 2, 0, 1)
    conn.close()
    assert kind == REJECT and "proof" in fake_peer.reject_reason(payload)

    conn, kind, payload = fake_peer.connect_as(address, ranks.secret, "other-job", 2, 0, 1)
    conn.close()
    assert kind == REJECT and "job" in fake_peer.reject_reason(payload)

    assert seen == {"random": True, "oversized": True}
    ranks.send(0, "go\n")
    results = ranks.wait()
    assert all(r.returncode == 0 and r.report.get("ok") for r in results), describe(results)


def test_connector_refuses_an_acceptor_without_the_secret():
    """Rank 0 runs with a different secret: the ring cannot form and every rank fails
    cleanly, rank 1 saying that rank 0 could not prove the secret."""
    ranks = Ranks(2, "loop", "--iterations", 1, "--timeout", 3, ranks=[1])
    listener = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    LocalRendezvous(ranks.server.address, 0, ranks.secret).all_gather(address)
    # Accept rank 1's connection with the wrong secret: rank 1 must refuse our proof.
    listener.settimeout(10)
    conn, _ = listener.accept()
    conn.settimeout(10)
    kind, hello = fake_peer.read_frame(conn)
    assert kind == fake_peer.HELLO
    conn.sendall(fake_peer.header(fake_peer.CHALLENGE, 64) + os.urandom(64))
    results = ranks.wait()
    conn.close()
    listener.close()
    result = results[1]
    assert result.returncode == 3, describe(results)
    assert result.report["error"] == "CommError"
    assert "rank 0 (" + address + ") could not prove" in result.report["message"]


@pytest.mark.parametrize("frame", ["oversized", "garbage"])
def test_an_authenticated_peer_sending_a_bad_frame_fails_the_job_cleanly(frame):
    """A Python rank 0 with the right secret completes both handshakes, then sends an
    oversized (or non-protocol) frame on its data link: rank 1 must raise CommError naming
    rank 0, tell rank 0 (an abort notice), and exit."""
    ranks = Ranks(2, "loop", "--iterations", 2, "--count", 10, "--timeout", 10, ranks=[1])
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    gathered = {}
    accepted = {}

    def gather():
        gathered["addresses"] = LocalRendezvous(ranks.server.address, 0, ranks.secret).all_gather(
            address
        )

    thread = threading.Thread(target=gather)
    thread.start()
    accepted["conn"] = fake_peer.accept_as(listener, ranks.secret, "test-job", 2, 0)
    thread.join(10)
    data_link, kind, _ = fake_peer.connect_as(
        gathered["addresses"][1], ranks.secret, "test-job", 2, 0, 1
    )
    assert kind == WELCOME
    if frame == "oversized":
        data_link.sendall(fake_peer.header(fake_peer.DATA, (64 << 20) + 1, fake_peer.ALLREDUCE, 1))
    else:
        data_link.sendall(b"GET / HTTP/1.1\r\n")
    # The notice goes out on rank 1's other link: the one it opened to us.
    kind, payload = fake_peer.read_control(accepted["conn"])
    results = ranks.wait()
    data_link.close()
    accepted["conn"].close()
    listener.close()
    result = results[1]
    assert result.returncode == 3, describe(results)
    assert result.report["error"] == "CommError"
    expected = "over the limit" if frame == "oversized" else "not a caffeonspark frame"
    assert expected in result.report["message"] and address in result.report["message"]
    assert kind == fake_peer.ABORT and expected.encode() in payload
