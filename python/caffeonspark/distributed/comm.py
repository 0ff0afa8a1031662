"""Ranks talking to each other: a thin Python face over the engine's Communicator.

    listener = listen("127.0.0.1")                   # bind first: its address is published
    addresses = all_gather(listener.address)          # any rendezvous: Spark's allGather, ...
    comm = Communicator(listener, rank, addresses, secret=key, job_id="job-7")
    comm.allreduce(grads, average=True)                # in place, float32, bit-identical
    comm.broadcast(weights, root=0); comm.barrier(); comm.close()

or in one call, `connect(rank, world_size, all_gather, secret, job_id)`.

The ring is built by the engine (cpp/comm/): rank r accepts rank r-1 and connects to rank
r+1, each side proving the job secret (HMAC-SHA256 over fresh nonces) before any tensor
moves. CommOptions.transport picks what then carries the data: "tcp" (those sockets),
"ucx" (UCX's UCP API: RDMA verbs, shared memory or TCP, whichever UCX picks; UCX_TLS or
ucx_tls narrows it) or "auto" (UCX where every rank has an RDMA device, else TCP). The
environment variable COS_TRANSPORT, when set, overrides it (tests, benchmarks, operators). Collectives release the GIL. Failures are caffeonspark.errors.CommError or
PeerTimeout naming the peer's rank and address, on every rank (the first failure travels
round the ring). Every rank must call the same collectives, in the same order, with arrays
of the same size. Tests: tests/comm/.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from caffeonspark._native import _engine
from caffeonspark.errors import ConfigError

__all__ = ["CommOptions", "Communicator", "listen", "connect"]

AllGather = Callable[[str], Sequence[str]]


# CommOptions field -> (native option struct, its field): the one table between the Python
# names users pass and the engine's structs, whose default constructors hold the defaults.
NATIVE_FIELDS = {
    "timeout": ("tcp", "timeout_seconds"),
    "heartbeat": ("tcp", "heartbeat_seconds"),
    "hello_timeout": ("tcp", "hello_seconds"),
    "handshake_timeout": ("tcp", "handshake_seconds"),
    "max_frame_bytes": ("tcp", "max_frame_bytes"),
    "socket_buffer_bytes": ("tcp", "socket_buffer_bytes"),
    "send_thread": ("tcp", "send_thread"),
    "encrypt": ("tcp", "encrypt"),
    "transport": ("ucx", "transport"),
    "ucx_tls": ("ucx", "tls"),
    "ucx_max_sleep": ("ucx", "max_sleep_seconds"),
    "ucx_max_registrations": ("ucx", "max_registrations"),
    "segment_bytes": ("collective", "segment_bytes"),
    "window": ("collective", "window"),
}
NATIVE_STRUCTS = {
    "tcp": _engine.TcpOptions,
    "ucx": _engine.UcxOptions,
    "collective": _engine.CollectiveOptions,
}
TRANSPORTS = ("tcp", "ucx", "auto")
# Whether this build has the UCX transport (UCX's headers were found when it was built).
UCX_BUILT = bool(_engine.ucx_built)


def _native_default(field: str) -> Any:
    struct, name = NATIVE_FIELDS[field]
    return getattr(NATIVE_STRUCTS[struct](), name)


@dataclasses.dataclass
class CommOptions:
    """Transport and algorithm settings (every rank should use the same). The defaults are
    the engine's (cpp/comm/tcp_transport.h TcpOptions, cpp/comm/collective.h)."""

    # connect deadline; a link silent this long is a PeerTimeout
    timeout: float = _native_default("timeout")
    # seconds between heartbeats; 0 = min(1, timeout / 4)
    heartbeat: float = _native_default("heartbeat")
    # an incoming connection's HELLO must be complete this long after it was accepted
    hello_timeout: float = _native_default("hello_timeout")
    # one incoming connection's handshake
    handshake_timeout: float = _native_default("handshake_timeout")
    # larger incoming frames are refused
    max_frame_bytes: int = _native_default("max_frame_bytes")
    # SO_SNDBUF / SO_RCVBUF (0: kernel autotuning)
    socket_buffer_bytes: int = _native_default("socket_buffer_bytes")
    # pipelining unit of the ring
    segment_bytes: int = _native_default("segment_bytes")
    # receives posted ahead
    window: int = _native_default("window")
    # data sends on a writer thread of their own
    send_thread: bool = _native_default("send_thread")
    # AES-256-GCM on every frame after the handshake (integrity and privacy on untrusted
    # networks; needs the system's libcrypto.so.3); every rank must set it alike
    encrypt: bool = _native_default("encrypt")
    # what carries the data: "tcp", "ucx" or "auto" (UCX with RDMA where every rank has it,
    # else TCP); the environment's COS_TRANSPORT overrides it
    transport: str = _native_default("transport")
    # UCX_TLS of this communicator's UCX context ("": UCX's own choice, or UCX_TLS)
    ucx_tls: str = _native_default("ucx_tls")
    # longest sleep while a UCX request is outstanding (some UCX transports miss wake-ups)
    ucx_max_sleep: float = _native_default("ucx_max_sleep")
    # stable buffers (gradient buckets) registered with ucp_mem_map, at most this many
    ucx_max_registrations: int = _native_default("ucx_max_registrations")

    def chosen_transport(self) -> str:
        """`transport`, or the environment's COS_TRANSPORT when that is set."""
        chosen = os.environ.get("COS_TRANSPORT", "").strip().lower() or self.transport
        if chosen not in TRANSPORTS:
            where = "COS_TRANSPORT" if os.environ.get("COS_TRANSPORT") else "CommOptions.transport"
            raise ConfigError(f"{where} must be one of {', '.join(TRANSPORTS)}, got {chosen!r}")
        return chosen

    def native_kwargs(self) -> dict[str, Any]:
        """The native Communicator's option arguments: {"tcp": ..., "ucx": ..., "collective": ...}."""
        structs = {key: make() for key, make in NATIVE_STRUCTS.items()}
        for field, (struct, name) in NATIVE_FIELDS.items():
            setattr(structs[struct], name, getattr(self, field))
        structs["ucx"].transport = self.chosen_transport()
        return structs


def listen(host: str = "127.0.0.1", port: int = 0) -> Any:
    """A bound listener for this rank's incoming ring link; `.address` is "host:port"."""
    return _engine.CommListener(host, int(port))


class Communicator:
    """One rank's membership of a job (see the module docstring)."""

    def __init__(
        self,
        listener: Any,
        rank: int,
        addresses: Sequence[str],
        secret: bytes | str,
        job_id: str,
        options: CommOptions | None = None,
    ) -> None:
        addresses = [str(a) for a in addresses]
        if not 0 <= rank < len(addresses):
            raise ConfigError(f"rank {rank} is not in [0, {len(addresses)}) (one address per rank)")
        if isinstance(secret, str):
            secret = secret.encode()
        if not secret:
            raise ConfigError("the job secret is empty: every rank needs the same non-empty secret")
        self.options = options or CommOptions()
        self.addresses = list(addresses)
        self.job_id = job_id
        self._native = _engine.Communicator(
            listener,
            int(rank),
            self.addresses,
            bytes(secret),
            str(job_id),
            **self.options.native_kwargs(),
        )

    @property
    def native(self) -> Any:
        return self._native

    @property
    def rank(self) -> int:
        return int(self._native.rank)

    @property
    def world_size(self) -> int:
        return int(self._native.world_size)

    @property
    def transport(self) -> str:
        """What carries the data: "tcp", "tcp (AES-256-GCM)", "ucx (tcp/lo.0)", ..."""
        return str(self._native.transport)

    @property
    def transport_note(self) -> str:
        """Why transport "auto" chose TCP ("" when it did not)."""
        return str(self._native.transport_note)

    @property
    def failed(self) -> bool:
        return bool(self._native.failed)

    def peer_name(self, rank: int) -> str:
        return str(self._native.peer_name(int(rank)))

    def allreduce(self, array: np.ndarray, average: bool = False) -> np.ndarray:
        """In place: the element-wise sum over ranks (or mean); returns `array`."""
        self._native.allreduce(array, bool(average))
        return array

    def broadcast(self, array: np.ndarray, root: int = 0) -> np.ndarray:
        """In place: every rank ends with root's bytes; returns `array`."""
        self._native.broadcast(array, int(root))
        return array

    def barrier(self) -> None:
        self._native.barrier()

    def abort(self, reason: str) -> None:
        """Give up: the other ranks fail with `reason`, naming this rank. Thread-safe."""
        self._native.abort(str(reason))

    def close(self) -> None:
        """Leave the job normally (peers learn it was on purpose)."""
        self._native.close()

    def __enter__(self) -> Communicator:
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        if error is not None and not isinstance(error, KeyboardInterrupt):
            self.abort(f"{type(error).__name__}: {error}")
        self.close()


def connect(
    rank: int,
    world_size: int,
    all_gather: AllGather,
    secret: bytes | str,
    job_id: str,
    host: str = "127.0.0.1",
    port: int = 0,
    options: CommOptions | None = None,
) -> Communicator:
    """Bind, exchange addresses with `all_gather(my_address) -> every rank's address in rank
    order` (Spark: BarrierTaskContext.allGather), and join the ring."""
    listener = listen(host, port)
    addresses = [str(a) for a in all_gather(listener.address)]
    if len(addresses) != world_size:
        raise ConfigError(
            f"the rendezvous returned {len(addresses)} addresses for a world of {world_size}"
        )
    if addresses[rank] != listener.address:
        raise ConfigError(
            f"the rendezvous put {addresses[rank]} at rank {rank}, but this rank listens at "
            f"{listener.address}"
        )
    return Communicator(listener, rank, addresses, secret, job_id, options)
