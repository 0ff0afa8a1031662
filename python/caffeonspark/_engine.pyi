"""
caffeonspark's native engine: tensors, layers, nets and solvers (float32, C++17)
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['BatchQueue', 'CollectiveOptions', 'CommListener', 'Communicator', 'DataParallel', 'DataParallelOptions', 'DataTransformer', 'DisplayInfo', 'LrPolicy', 'Net', 'OutputValues', 'Solver', 'TcpOptions', 'Tensor', 'TestResult', 'UcxOptions', 'comm_hmac_sha256', 'comm_sha256', 'data_layer_queues', 'error_types', 'has_cuda', 'layer_types', 'num_threads', 'output_layer_queue', 'parse_raw_datums', 'scan_datums', 'set_num_threads', 'set_random_seed', 'ucx_built', 'update_rule_types']
class Tensor:
    @typing.overload
    def __init__(self) -> None:
        ...
    @typing.overload
    def __init__(self, arg0: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> None:
        ...
    def reshape(self, arg0: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> None:
        ...
    def share_data(self, arg0: Tensor) -> None:
        ...
    @property
    def count(self) -> int:
        ...
    @property
    def data(self) -> numpy.ndarray:
        ...
    @property
    def diff(self) -> numpy.ndarray:
        ...
    @property
    def shape(self) -> list[int]:
        ...
class BatchQueue:
    def __init__(self, name: str, capacity: typing.SupportsInt | typing.SupportsIndex, timeout: typing.SupportsFloat | typing.SupportsIndex = 120.0) -> None:
        ...
    def close(self, kind: str = '', message: str = '') -> None:
        """
        End the stream; with an error (taxonomy class name + message) consumers raise it once the queued batches are used up.
        """
    def pop(self, timeout: typing.SupportsFloat | typing.SupportsIndex | None = None) -> tuple:
        """
        The next batch as (data, labels), or (tuple of per-top arrays, None) for a multi-top batch; blocks with the GIL released.
        """
    def push(self, data: typing.Any, labels: typing.Any, timeout: typing.SupportsFloat | typing.SupportsIndex | None = None) -> bool:
        """
        Copy one batch in (uint8 (N,C,H,W) raw images or float data + N labels); blocks with the GIL released while full. False when the queue is closed.
        """
    def push_tops(self, arrays: collections.abc.Sequence, timeout: typing.SupportsFloat | typing.SupportsIndex | None = None) -> bool:
        """
        Copy one multi-top batch in (CoSData): one (N, C, H, W) array per top, uint8 raw images or float data; blocks with the GIL released while full. False when the queue is closed.
        """
    @property
    def blocked_pushes(self) -> int:
        """
        Producers blocked in push right now (the queue is full).
        """
    @property
    def capacity(self) -> int:
        ...
    @capacity.setter
    def capacity(self, arg1: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def closed(self) -> bool:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def pops(self) -> int:
        ...
    @property
    def size(self) -> int:
        ...
    @property
    def timeout(self) -> float:
        ...
    @timeout.setter
    def timeout(self, arg1: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def wait_seconds(self) -> float:
        ...
class DataTransformer:
    def __init__(self, transform_param: dict, train: bool, seed: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        ...
    def output_shape(self, arg0: typing.SupportsInt | typing.SupportsIndex, arg1: typing.SupportsInt | typing.SupportsIndex, arg2: typing.SupportsInt | typing.SupportsIndex) -> list[int]:
        ...
    def transform(self, data: typing.Any) -> tuple:
        """
        (float32 (N, C, H', W'), [(h_off, w_off, mirrored) per item])
        """
class Net:
    def __init__(self, name: str, layer_specs: list, force_backward: bool = False) -> None:
        ...
    def backward(self) -> None:
        ...
    def backward_from_to(self, arg0: typing.SupportsInt | typing.SupportsIndex, arg1: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def blob(self, arg0: str) -> Tensor:
        ...
    def bottom_ids(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> list[int]:
        ...
    def bottom_need_backward(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> list[bool]:
        ...
    def clear_param_diffs(self) -> None:
        ...
    def forward(self) -> float:
        ...
    def forward_from_to(self, arg0: typing.SupportsInt | typing.SupportsIndex, arg1: typing.SupportsInt | typing.SupportsIndex) -> float:
        ...
    def has_blob(self, arg0: str) -> bool:
        ...
    def layer_blobs(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> list[Tensor]:
        ...
    def layer_loss(self, arg0: typing.SupportsInt | typing.SupportsIndex, arg1: typing.SupportsInt | typing.SupportsIndex) -> float:
        ...
    def layer_need_backward(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> bool:
        ...
    def layer_type(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> str:
        ...
    def learnable_param_id(self, arg0: typing.SupportsInt | typing.SupportsIndex, arg1: typing.SupportsInt | typing.SupportsIndex) -> int:
        ...
    def param_propagate_down(self, arg0: typing.SupportsInt | typing.SupportsIndex, arg1: typing.SupportsInt | typing.SupportsIndex) -> bool:
        ...
    def reshape(self) -> None:
        ...
    def share_trained_layers_with(self, arg0: Net) -> None:
        ...
    def top_ids(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> list[int]:
        ...
    def update(self) -> None:
        ...
    @property
    def blob_loss_weights(self) -> list[float]:
        ...
    @property
    def blob_names(self) -> list[str]:
        ...
    @property
    def input_blob_indices(self) -> list[int]:
        ...
    @property
    def layer_names(self) -> list[str]:
        ...
    @property
    def learnable_params(self) -> list[Tensor]:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def output_blob_indices(self) -> list[int]:
        ...
    @property
    def params_lr(self) -> list[float]:
        ...
    @property
    def params_weight_decay(self) -> list[float]:
        ...
class _TensorRef:
    """
    A Python layer's view of one of its net's tensors (wrapped in engine.Blob).
    """
    def reshape(self, arg0: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> None:
        ...
    @property
    def count(self) -> int:
        ...
    @property
    def data(self) -> numpy.ndarray:
        ...
    @property
    def diff(self) -> numpy.ndarray:
        ...
    @property
    def shape(self) -> list[int]:
        ...
class _PythonLayerBlobs:
    """
    A Python layer's parameter blobs (caffe/layer.py LayerBlobs).
    """
    def __len__(self) -> int:
        ...
    def add(self, arg0: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> Tensor:
        ...
    def tensor(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> Tensor:
        ...
class OutputValues:
    @property
    def loss_weight(self) -> float:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def values(self) -> list[float]:
        ...
class DisplayInfo:
    @property
    def final(self) -> bool:
        ...
    @property
    def iter(self) -> int:
        ...
    @property
    def iters_per_second(self) -> float:
        ...
    @property
    def loss(self) -> float:
        ...
    @property
    def outputs(self) -> list[OutputValues]:
        ...
    @property
    def rate(self) -> float:
        ...
    @property
    def seconds(self) -> float:
        ...
    @property
    def smoothed_loss(self) -> float:
        ...
class TestResult:
    @property
    def has_loss(self) -> bool:
        ...
    @property
    def interrupted(self) -> bool:
        ...
    @property
    def iter(self) -> int:
        ...
    @property
    def loss(self) -> float:
        ...
    @property
    def outputs(self) -> list[OutputValues]:
        ...
    @property
    def test_iter(self) -> int:
        ...
    @property
    def test_net(self) -> int:
        ...
class LrPolicy:
    def __init__(self, solver_params: dict) -> None:
        ...
    def rate(self, iter: typing.SupportsInt | typing.SupportsIndex, current_step: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple[float, int]:
        """
        (rate, current_step after this call) for update number `iter`.
        """
    @property
    def name(self) -> str:
        ...
class Solver:
    def __init__(self, solver_params: dict, net: Net, test_nets: collections.abc.Sequence[Net]) -> None:
        ...
    def apply_update(self) -> float:
        ...
    def request_snapshot(self) -> None:
        ...
    def request_stop(self) -> None:
        ...
    def set_callback(self, name: str, fn: typing.Any) -> None:
        """
        Callbacks: start(), before_forward(net_index: -1 train, i test), gradients_ready(), display(DisplayInfo), test(TestResult), snapshot(). None clears.
        """
    def solve(self, handle_sigint: bool = False) -> bool:
        """
        Trains to max_iter; returns True when SIGINT stopped it (handle_sigint only).
        """
    def step(self, iters: typing.SupportsInt | typing.SupportsIndex, handle_sigint: bool = False) -> bool:
        """
        Runs `iters` iterations; returns True when SIGINT stopped it (handle_sigint only).
        """
    def test(self, test_net_id: typing.SupportsInt | typing.SupportsIndex) -> TestResult:
        ...
    def test_all(self) -> list[TestResult]:
        ...
    @property
    def current_step(self) -> int:
        ...
    @current_step.setter
    def current_step(self, arg1: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def history(self) -> list[Tensor]:
        ...
    @property
    def history_sets(self) -> int:
        ...
    @property
    def iter(self) -> int:
        ...
    @iter.setter
    def iter(self, arg1: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def last_loss(self) -> float:
        ...
    @property
    def lr_policy(self) -> str:
        ...
    @property
    def max_iter(self) -> int:
        ...
    @property
    def net(self) -> Net:
        ...
    @property
    def recent_losses(self) -> list[float]:
        ...
    @property
    def smoothed_loss(self) -> float:
        ...
    @property
    def stopped_early(self) -> bool:
        ...
    @property
    def test_nets(self) -> list[Net]:
        ...
    @property
    def type(self) -> str:
        ...
class TcpOptions:
    """
    The TCP ring transport's settings (comm/tcp_transport.h).
    """
    encrypt: bool
    send_thread: bool
    def __init__(self) -> None:
        ...
    @property
    def handshake_seconds(self) -> float:
        ...
    @handshake_seconds.setter
    def handshake_seconds(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def heartbeat_seconds(self) -> float:
        ...
    @heartbeat_seconds.setter
    def heartbeat_seconds(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def hello_seconds(self) -> float:
        ...
    @hello_seconds.setter
    def hello_seconds(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def max_frame_bytes(self) -> int:
        ...
    @max_frame_bytes.setter
    def max_frame_bytes(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def socket_buffer_bytes(self) -> int:
        ...
    @socket_buffer_bytes.setter
    def socket_buffer_bytes(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def timeout_seconds(self) -> float:
        ...
    @timeout_seconds.setter
    def timeout_seconds(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
class UcxOptions:
    """
    Transport choice and the UCX transport's settings (comm/ucx_transport.h).
    """
    tls: str
    transport: str
    def __init__(self) -> None:
        ...
    @property
    def max_registrations(self) -> int:
        ...
    @max_registrations.setter
    def max_registrations(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def max_sleep_seconds(self) -> float:
        ...
    @max_sleep_seconds.setter
    def max_sleep_seconds(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
class CollectiveOptions:
    """
    The ring collectives' settings (comm/collective.h).
    """
    def __init__(self) -> None:
        ...
    @property
    def segment_bytes(self) -> int:
        ...
    @segment_bytes.setter
    def segment_bytes(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def window(self) -> int:
        ...
    @window.setter
    def window(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class DataParallelOptions:
    """
    Gradient bucketing settings (solver/data_parallel.h).
    """
    check_params: bool
    def __init__(self) -> None:
        ...
    @property
    def bucket_bytes(self) -> int:
        ...
    @bucket_bytes.setter
    def bucket_bytes(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def first_bucket_bytes(self) -> int:
        ...
    @first_bucket_bytes.setter
    def first_bucket_bytes(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class CommListener:
    """
    A bound TCP listener for one rank's ring link.
    """
    def __init__(self, host: str = '127.0.0.1', port: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        ...
    def close(self) -> None:
        ...
    @property
    def address(self) -> str:
        ...
class Communicator:
    def __init__(self, listener: CommListener, rank: typing.SupportsInt | typing.SupportsIndex, addresses: collections.abc.Sequence[str], secret: bytes, job_id: str, tcp: TcpOptions = ..., ucx: UcxOptions = ..., collective: CollectiveOptions = ...) -> None:
        """
        Joins the ring: accepts rank-1 on `listener` and connects to rank+1 (blocking, GIL released, up to tcp.timeout_seconds), then runs it on the transport ucx.transport selects.
        """
    def abort(self, reason: str) -> None:
        ...
    def allreduce(self, array: numpy.ndarray, average: bool = False) -> None:
        """
        In place: array = sum over ranks (average=True: the mean).
        """
    def barrier(self) -> None:
        ...
    def broadcast(self, array: numpy.ndarray, root: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        """
        In place: every rank receives root's bytes.
        """
    def close(self) -> None:
        ...
    def idle(self, seconds: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    def peer_name(self, rank: typing.SupportsInt | typing.SupportsIndex) -> str:
        ...
    @property
    def failed(self) -> bool:
        ...
    @property
    def heartbeat_seconds(self) -> float:
        ...
    @property
    def rank(self) -> int:
        ...
    @property
    def transport(self) -> str:
        """
        What carries the data: 'tcp', 'ucx (tcp/lo.0)', ...
        """
    @property
    def transport_note(self) -> str:
        """
        Why transport='auto' chose TCP ('' otherwise).
        """
    @property
    def world_size(self) -> int:
        ...
class DataParallel:
    def __init__(self, solver: Solver, communicator: Communicator, options: DataParallelOptions = ...) -> None:
        """
        Attaches to `solver`: its gradients are averaged over the communicator's ranks.
        """
    def broadcast_state(self, extra: collections.abc.Sequence[Tensor]) -> None:
        """
        Rank 0's parameters and `extra` tensors to every rank.
        """
    def detach(self, solver: Solver) -> None:
        ...
    @property
    def buckets(self) -> list:
        ...
    @property
    def stats(self) -> dict:
        ...
    @property
    def timeline(self) -> list:
        """
        (backward_end, reduced) per recent iteration, seconds of time.monotonic()'s clock
        """
def _derive_link_keys(secret: bytes, job_id: str, world_size: typing.SupportsInt | typing.SupportsIndex, connector: typing.SupportsInt | typing.SupportsIndex, acceptor: typing.SupportsInt | typing.SupportsIndex, connector_nonce: bytes, acceptor_nonce: bytes) -> tuple[bytes, bytes]:
    """
    Test hook: one connection's session keys (to_acceptor, to_connector), handshake.h.
    """
def _small_gemm(a: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], transpose_a: bool, b: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], c: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], accumulate: bool) -> None:
    ...
def _small_gemm_gather(a: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], a_rows: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], a_cols: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], b: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], c: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], accumulate: bool) -> None:
    ...
def _transpose(arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> tuple[numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float64]]:
    ...
def comm_hmac_sha256(key: bytes, message: bytes) -> bytes:
    """
    HMAC-SHA256 (the comm layer's own, for tests).
    """
def comm_sha256(data: bytes) -> bytes:
    """
    SHA-256 (the comm layer's own, for tests).
    """
def data_layer_queues(net: ..., layer_index: typing.SupportsInt | typing.SupportsIndex) -> tuple[BatchQueue, BatchQueue]:
    """
    (feed queue, ready queue) of a MemoryData, Data or CoSData layer: feeders push into the first, Forward pops the second (its timeout and wait statistics).
    """
def error_types() -> list[tuple[str, str]]:
    """
    The engine's error taxonomy as (name, base name) pairs; base 'Error' is caffeonspark.errors.CaffeOnSparkError.
    """
def layer_types() -> list[str]:
    """
    Every Caffe type string the engine can build.
    """
def num_threads() -> int:
    ...
def output_layer_queue(net: ..., layer_index: typing.SupportsInt | typing.SupportsIndex) -> BatchQueue:
    """
    The queue an HDF5Output layer's Forward pushes (data, label) batches into; its writer thread pops them (python/caffeonspark/data/hdf5_feeder.py).
    """
def parse_raw_datums(values: collections.abc.Sequence, shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex] | None = None) -> typing.Any:
    """
    (uint8 (N, C, H, W), float32 labels) of serialized raw Datums (bytes or memoryviews), their pixels copied once with the GIL released; None when any record is not a raw Datum of one shape (`shape` (C, H, W) when given), for the caller's general path.
    """
def scan_datums(values: collections.abc.Sequence) -> numpy.typing.NDArray[numpy.int64]:
    """
    int64 (N, 9): (parsed, encoded, channels, height, width, label, data offset or -1, data size, float_data count) of serialized Datums (bytes or memoryviews).
    """
def set_num_threads(arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Threads for BLAS and OpenMP loops.
    """
def set_random_seed(arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Seeds the engine's RNG (fillers, dropout, crops).
    """
def update_rule_types() -> list[str]:
    """
    The solver types the engine implements.
    """
has_cuda: bool = False
ucx_built: bool = True
