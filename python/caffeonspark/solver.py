"""pycaffe-shaped Solver over the engine's training loop (docs/CAFFE.md §4).

    solver = caffeonspark.solver.get_solver("lenet_solver.prototxt")   # type from the file
    solver = caffeonspark.solver.SGDSolver("lenet_solver.prototxt")    # type forced to SGD
    solver.step(100); solver.solve(); solver.snapshot(); solver.restore("x.solverstate")
    solver.net, solver.test_nets, solver.iter, solver.test_results

Construction follows Caffe's Solver::Init: read (and upgrade) the SolverParameter, seed the
RNG with random_seed (when >= 0) BEFORE any net is built, build the train net from exactly
one of train_net_param / train_net / net_param / net with phase TRAIN (net state merged
with train_state), then the test nets (test_net_param, then test_net, then net_param / net
repeated for the remaining test_iter entries; phase TEST merged with test_state[i]); test
nets share the train net's weights by layer name. Relative net paths are tried against the
working directory first (Caffe's rule) and then against the solver file's directory.

The loop itself runs in C++ (cpp/solver/solver.h) without the GIL; Python sees it through
callbacks: Caffe-like log lines on the "caffeonspark" logger (display and test), snapshots
(`<prefix>_iter_<iter>.caffemodel` and `.solverstate`, each written to a temporary name and
renamed; add_snapshot_callback(fn) is called with both paths after each), pycaffe's
add_callback(on_start, on_gradients_ready), add_display_callback(fn) / add_test_callback(fn)
(called with the engine's DisplayInfo / TestResult after each is logged, e.g. by
caffeonspark.viz.TensorBoardLogger), and set_forward_hook(fn),
called before every forward pass with (net, index) (index -1 = train net, i = test net i).
The forward hook is for nets fed through Input blobs from Python (tests, small examples);
the real data path (Data / MemoryData layers) does not use it.

SIGINT during step()/solve() in the main thread stops the loop after the current iteration
(Caffe's sigint_effect "stop": solve() still writes its final snapshot), then raises
KeyboardInterrupt. snapshot_format HDF5 writes `.caffemodel.h5` / `.solverstate.h5`
(caffeonspark/hdf5_io.py); restore picks the format by the `.h5` suffix, as Caffe does.

restore treats the state as untrusted: iter must lie in 0..max_iter (when max_iter is set),
current_step must not be negative, and learned_net is looked for beside the state first.

Tests: tests/solver/test_solver.py, tests/solver/test_update_rules.py,
tests/solver/test_lr_policy.py, tests/hostile/test_model_files.py, tests/viz/test_tensorboard.py.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from caffeonspark import engine, hdf5_io, model_io, netspec, upgrade
from caffeonspark._native import _engine
from caffeonspark.data.feed_options import FeedOptions
from caffeonspark.errors import ConfigError, FormatError, IoError
from caffeonspark.proto import caffe_pb2

__all__ = [
    "Solver",
    "get_solver",
    "SGDSolver",
    "NesterovSolver",
    "AdaGradSolver",
    "RMSPropSolver",
    "AdaDeltaSolver",
    "AdamSolver",
    "solver_params",
]

_log = logging.getLogger("caffeonspark")

# SolverParameter fields that describe nets; the engine receives every other field.
_NET_FIELDS = (
    "net",
    "net_param",
    "train_net",
    "train_net_param",
    "test_net",
    "test_net_param",
    "train_state",
    "test_state",
)

ForwardHook = Callable[[engine.Net, int], None]


def solver_params(solver: caffe_pb2.SolverParameter) -> dict[str, Any]:
    """The dict the engine's Solver takes: every non-net field with its default filled in."""
    params = netspec.fill_defaults(solver)
    for name in _NET_FIELDS:
        params.pop(name, None)
    return params


def _fmt(value: float) -> str:
    """A float the way Caffe's logs print it (C++ ostream default: 6 significant digits)."""
    return f"{value:g}"


def _say_where_it_runs(param: caffe_pb2.SolverParameter, source: str | None) -> None:
    """A solver that asks for the GPU (`solver_mode: GPU` written out) trains on the CPU in
    this build, which has no CUDA path yet: said, never silent. Caffe's default mode is GPU,
    so only a mode written in the file is taken as a request."""
    if param.HasField("solver_mode") and param.solver_mode == caffe_pb2.SolverParameter.GPU:
        if not _engine.has_cuda:
            _log.warning("%s: solver_mode: GPU, but this build of caffeonspark has no CUDA "
                        "(the GPU path is not built yet): training on the CPU",
                        source or "<SolverParameter>")


class Solver:
    """A Caffe solver: Solver(solver_prototxt_path or SolverParameter[, edit], feed=None);
    `edit(param)` may change the SolverParameter after it is read and before anything is
    built; `feed` (data/feed_options.py; None: FeedOptions()) is how the data layers of the
    train and test nets read."""

    _forced_type: str | None = None
    # The class the train and test nets are built with (caffeonspark.caffe swaps in its
    # pycaffe Net so that solver.net has pycaffe's whole surface).
    _net_class: type[engine.Net] = engine.Net

    def __init__(
        self,
        solver: str | os.PathLike[str] | caffe_pb2.SolverParameter,
        edit: Callable[[caffe_pb2.SolverParameter], None] | None = None,
        *,
        feed: FeedOptions | None = None,
    ) -> None:
        self._feed = feed or FeedOptions()
        self.param, self._source = _read_solver(solver)
        if self._forced_type is not None:
            self.param.type = self._forced_type
        if edit is not None:  # e.g. data-parallel ranks > 0 turn display/test/snapshot off
            edit(self.param)
        self._base_dir = os.path.dirname(os.path.abspath(self._source)) if self._source else None
        _say_where_it_runs(self.param, self._source)
        if self.param.random_seed >= 0:
            _engine.set_random_seed(int(self.param.random_seed))
        self.net = self._build_train_net()
        self.test_nets = self._build_test_nets()
        for test_net in self.test_nets:
            test_net.native.share_trained_layers_with(self.net.native)
        for weights in self.param.weights:
            for path in (p.strip() for p in weights.split(",")):
                if path:
                    self.net.copy_from(self._resolve(path, "weights"))
        self._native = _engine.Solver(
            solver_params(self.param), self.net.native, [n.native for n in self.test_nets]
        )
        self.test_results: list[dict[str, Any]] = []
        self._start_callbacks: list[Callable[[], None]] = []
        self._gradient_callbacks: list[Callable[[], None]] = []
        self._snapshot_callbacks: list[Callable[[str, str], None]] = []
        self._display_callbacks: list[Callable[[Any], None]] = []
        self._test_callbacks: list[Callable[[Any], None]] = []
        self._forward_hook: ForwardHook | None = None
        self._install_callbacks()

    # -- building ----------------------------------------------------------------------

    def _where(self) -> str:
        return self._source or "<SolverParameter>"

    def _resolve(self, path: str, what: str) -> str:
        """Caffe opens relative paths from the working directory; the solver file's
        directory is tried second."""
        if os.path.isabs(path) or os.path.exists(path) or self._base_dir is None:
            return path
        beside = os.path.join(self._base_dir, path)
        if os.path.exists(beside):
            return beside
        raise IoError(
            f"{self._where()}: {what} file '{path}' exists neither relative to the working "
            f"directory ({os.getcwd()}) nor beside the solver ({self._base_dir})"
        )

    def _build_train_net(self) -> engine.Net:
        p = self.param
        given = [f for f in ("net", "net_param", "train_net", "train_net_param") if p.HasField(f)]
        if not given:
            raise ConfigError(
                f"{self._where()}: the solver must name a train net with one of net, net_param, "
                "train_net, train_net_param"
            )
        if len(given) > 1:
            raise ConfigError(
                f"{self._where()}: the solver names its train net more than once "
                f"({', '.join(given)}); keep exactly one"
            )
        source = given[0]
        _log.info("Creating training net from %s", source)
        if source in ("net_param", "train_net_param"):
            net_param = getattr(p, source)
            state = netspec.net_state_for(p, engine.TRAIN, net=net_param)
            return self._net_class(net_param, state=state, feed=self._feed)
        path = self._resolve(getattr(p, source), source)
        net_param = model_io.read_net_prototxt(path)
        state = netspec.net_state_for(p, engine.TRAIN, net=net_param)
        return self._net_class(path, state=state, feed=self._feed)

    def _build_test_nets(self) -> list[engine.Net]:
        p = self.param
        generic = "net_param" if p.HasField("net_param") else "net" if p.HasField("net") else None
        sources: list[tuple[str, Any]] = [("test_net_param", n) for n in p.test_net_param]
        sources += [("test_net", n) for n in p.test_net]
        specific = len(sources)
        if generic is None and len(p.test_iter) != specific:
            raise ConfigError(
                f"{self._where()}: {specific} test net(s) but {len(p.test_iter)} test_iter "
                "value(s); test_iter must be given once per test net"
            )
        if generic is not None and len(p.test_iter) < specific:
            raise ConfigError(
                f"{self._where()}: test_iter must be given for each test net ({specific} "
                f"test_net/test_net_param, {len(p.test_iter)} test_iter)"
            )
        if generic is not None:
            sources += [(generic, getattr(p, generic))] * (len(p.test_iter) - specific)
        if p.test_state and len(p.test_state) != len(sources):
            raise ConfigError(
                f"{self._where()}: test_state must be unspecified or given once per test net "
                f"({len(sources)} test nets, {len(p.test_state)} test_state)"
            )
        nets = []
        for index, (field, source) in enumerate(sources):
            _log.info("Creating test net (#%d) specified by %s", index, field)
            if isinstance(source, caffe_pb2.NetParameter):
                state = netspec.net_state_for(p, engine.TEST, net=source, test_index=index)
                nets.append(self._net_class(source, state=state, feed=self._feed))
            else:
                path = self._resolve(source, field)
                net_param = model_io.read_net_prototxt(path)
                state = netspec.net_state_for(p, engine.TEST, net=net_param, test_index=index)
                nets.append(self._net_class(path, state=state, feed=self._feed))
        return nets

    def _install_callbacks(self) -> None:
        # The engine holds the callbacks; they reach `self` through a weak reference so the
        # Python object and the engine's solver do not keep each other alive.
        ref = weakref.ref(self)

        def relay(method: str) -> Callable[..., None]:
            def call(*args: Any) -> None:
                solver = ref()
                if solver is not None:
                    getattr(solver, method)(*args)

            return call

        self._native.set_callback("display", relay("_on_display"))
        self._native.set_callback("test", relay("_on_test"))
        self._native.set_callback("snapshot", relay("_on_snapshot"))
        self._relay = relay

    # -- pycaffe surface ---------------------------------------------------------------

    @property
    def iter(self) -> int:
        return int(self._native.iter)

    @property
    def type(self) -> str:
        return str(self._native.type)

    @property
    def native(self) -> Any:
        """The engine's Solver (state accessors, callbacks)."""
        return self._native

    @property
    def smoothed_loss(self) -> float:
        return float(self._native.smoothed_loss)

    @property
    def history(self) -> list[np.ndarray]:
        """The update rule's history blobs (views), solverstate order."""
        return [t.data for t in self._native.history]

    def step(self, iters: int) -> None:
        """Run `iters` training iterations."""
        if self._native.step(int(iters), handle_sigint=_in_main_thread()):
            raise KeyboardInterrupt(f"training stopped at iteration {self.iter} (SIGINT)")

    def solve(self, resume_file: str | os.PathLike[str] | None = None) -> None:
        """Train to max_iter (restoring `resume_file` first), snapshot, final test."""
        _log.info("Solving %s", self.net.name)
        _log.info("Learning Rate Policy: %s", self.param.lr_policy)
        if resume_file is not None:
            self.restore(resume_file)
        interrupted = self._native.solve(handle_sigint=_in_main_thread())
        if self._native.stopped_early:
            _log.info("Optimization stopped early.")
            if interrupted:
                raise KeyboardInterrupt(f"training stopped at iteration {self.iter} (SIGINT)")
            return
        _log.info("Optimization Done.")

    def request_stop(self) -> None:
        """Stop step()/solve() after the current iteration (any thread, any callback)."""
        self._native.request_stop()

    def apply_update(self) -> None:
        """One update from the diffs already in the train net (does not advance iter)."""
        self._native.apply_update()

    def test(self, test_net_id: int = 0) -> dict[str, list[float]]:
        """Run test net `test_net_id` for its test_iter batches: output name -> means."""
        result = self._native.test(int(test_net_id))
        return {out.name: list(out.values) for out in result.outputs}

    def test_all(self) -> list[dict[str, list[float]]]:
        return [self.test(i) for i in range(len(self.test_nets))]

    def share_weights(self, net: engine.Net) -> None:
        """Make `net` share the train net's weights by layer name (pycaffe)."""
        net.native.share_trained_layers_with(self.net.native)

    def add_callback(
        self,
        on_start: Callable[[], None] | None = None,
        on_gradients_ready: Callable[[], None] | None = None,
    ) -> None:
        """pycaffe's callbacks: on_start before each iteration's forward passes,
        on_gradients_ready between backward and the update."""
        if on_start is not None:
            self._start_callbacks.append(on_start)
            self._native.set_callback("start", self._relay("_on_start"))
        if on_gradients_ready is not None:
            self._gradient_callbacks.append(on_gradients_ready)
            self._native.set_callback("gradients_ready", self._relay("_on_gradients_ready"))

    def add_snapshot_callback(self, on_snapshot: Callable[[str, str], None]) -> None:
        """Call on_snapshot(model_path, state_path) after each snapshot is written (e.g. to
        upload it)."""
        self._snapshot_callbacks.append(on_snapshot)

    def add_display_callback(self, on_display: Callable[[Any], None]) -> None:
        """Call on_display(info) at each display iteration, after the log lines; `info` is
        the engine's DisplayInfo (iter, loss, smoothed_loss, outputs, rate, seconds,
        iters_per_second, final)."""
        self._display_callbacks.append(on_display)

    def add_test_callback(self, on_test: Callable[[Any], None]) -> None:
        """Call on_test(result) after each test pass is logged; `result` is the engine's
        TestResult (iter, test_net, outputs, has_loss, loss, interrupted)."""
        self._test_callbacks.append(on_test)

    def set_forward_hook(self, hook: ForwardHook | None) -> None:
        """Call hook(net, index) before every forward pass (index -1: the train net, i: test
        net i), e.g. to load the next batch into Input blobs. None removes it."""
        self._forward_hook = hook
        self._native.set_callback(
            "before_forward", None if hook is None else self._relay("_on_before_forward")
        )

    # -- snapshots ---------------------------------------------------------------------

    def snapshot_paths(self, iteration: int | None = None) -> tuple[str, str]:
        """(`<prefix>_iter_<iter>.caffemodel`, `<prefix>_iter_<iter>.solverstate`)."""
        prefix = self.param.snapshot_prefix
        if not prefix:
            raise ConfigError(
                f"{self._where()}: snapshot_prefix is not set; set it (or snapshot_after_train: "
                "false and snapshot: 0) to train without snapshots"
            )
        it = self.iter if iteration is None else int(iteration)
        suffix = ".h5" if self._hdf5 else ""
        return (f"{prefix}_iter_{it}.caffemodel{suffix}",
                f"{prefix}_iter_{it}.solverstate{suffix}")

    @property
    def _hdf5(self) -> bool:
        return self.param.snapshot_format == caffe_pb2.SolverParameter.HDF5

    def snapshot(self) -> str:
        """Write the weights and the solver state; returns the .solverstate path."""
        model_path, state_path = self.snapshot_paths()
        kind = "HDF5" if self._hdf5 else "binary proto"
        _log.info("Snapshotting to %s file %s", kind, model_path)
        weights = self.net.to_proto(self.param.snapshot_diff)
        if self._hdf5:
            hdf5_io.write_caffemodel_h5(model_path, weights)
        else:
            model_io.write_caffemodel(model_path, weights)
        state = caffe_pb2.SolverState(
            iter=self.iter, learned_net=model_path, current_step=int(self._native.current_step)
        )
        for tensor in self._native.history:
            state.history.append(model_io.array_to_blob(tensor.data))
        _log.info("Snapshotting solver state to %s file %s", kind, state_path)
        if self._hdf5:
            hdf5_io.write_solverstate_h5(state_path, state)
        else:
            model_io.write_solverstate(state_path, state)
        for callback in self._snapshot_callbacks:
            callback(model_path, state_path)
        return state_path

    def restore(self, path: str | os.PathLike[str]) -> None:
        """Load iter, current_step, the weights of learned_net and the history."""
        state_path = os.fspath(path)
        _log.info("Restoring previous solver status from %s", state_path)
        histories = list(self._native.history)
        if hdf5_io.is_hdf5_path(state_path):
            state = hdf5_io.read_solverstate_h5(state_path, [h.count for h in histories])
        else:
            state = model_io.read_solverstate(state_path)
        _check_state_counters(state, self.param.max_iter, state_path)
        if len(state.history) != len(histories):
            raise FormatError(
                f"{state_path}: holds {len(state.history)} history blobs but this {self.type} "
                f"solver needs {len(histories)} ({self._native.history_sets} per learnable "
                f"parameter of net '{self.net.name}')"
            )
        arrays = []
        for index, (blob, target) in enumerate(zip(state.history, histories, strict=True)):
            try:
                array = model_io.blob_to_array(blob)
            except FormatError as err:
                raise FormatError(f"{state_path}: history blob {index}: {err}") from None
            if array.size != target.count:
                raise FormatError(
                    f"{state_path}: history blob {index} has shape {array.shape} but the "
                    f"parameter it belongs to has shape {tuple(target.shape)}"
                )
            arrays.append(array.reshape(tuple(target.shape)))
        if state.learned_net:
            self.net.copy_from(_learned_net_path(state.learned_net, state_path))
        for target, array in zip(histories, arrays, strict=True):
            target.data[...] = array
        self._native.iter = int(state.iter)
        self._native.current_step = int(state.current_step)
        # Caffe restarts its data layers from the first record; we continue where the
        # snapshotted run was, so a resumed run repeats the uninterrupted one's losses.
        self.net.data_feeds.skip_batches(int(state.iter) * max(1, self.param.iter_size))

    # -- engine callbacks --------------------------------------------------------------

    def _on_start(self) -> None:
        for callback in self._start_callbacks:
            callback()

    def _on_gradients_ready(self) -> None:
        for callback in self._gradient_callbacks:
            callback()

    def _on_before_forward(self, index: int) -> None:
        if self._forward_hook is not None:
            net = self.net if index < 0 else self.test_nets[index]
            self._forward_hook(net, index)

    def _on_snapshot(self) -> None:
        self.snapshot()

    def _on_display(self, info: Any) -> None:
        self._log_display(info)
        for callback in self._display_callbacks:
            callback(info)

    def _log_display(self, info: Any) -> None:
        if info.final:
            _log.info("Iteration %d, loss = %s", info.iter, _fmt(info.smoothed_loss))
            return
        _log.info(
            "Iteration %d (%s iter/s, %ss/%d iters), loss = %s",
            info.iter,
            _fmt(info.iters_per_second),
            _fmt(info.seconds),
            self.param.display,
            _fmt(info.smoothed_loss),
        )
        index = 0
        for output in info.outputs:
            for value in output.values:
                _log.info(
                    "    Train net output #%d: %s = %s%s",
                    index,
                    output.name,
                    _fmt(value),
                    _loss_note(output.loss_weight, value),
                )
                index += 1
        _log.info("Iteration %d, lr = %s", info.iter, _fmt(info.rate))

    def _on_test(self, result: Any) -> None:
        _log.info("Iteration %d, Testing net (#%d)", result.iter, result.test_net)
        if result.interrupted:
            _log.info("Test interrupted.")
            return
        if result.has_loss:
            _log.info("Test loss: %s", _fmt(result.loss))
        index = 0
        for output in result.outputs:
            for value in output.values:
                _log.info(
                    "    Test net output #%d: %s = %s%s",
                    index,
                    output.name,
                    _fmt(value),
                    _loss_note(output.loss_weight, value),
                )
                index += 1
        self.test_results.append(
            {
                "iter": int(result.iter),
                "test_net": int(result.test_net),
                "outputs": {out.name: list(out.values) for out in result.outputs},
                "loss": float(result.loss) if result.has_loss else None,
            }
        )
        for callback in self._test_callbacks:
            callback(result)


def _loss_note(weight: float, value: float) -> str:
    return f" (* {_fmt(weight)} = {_fmt(weight * value)} loss)" if weight else ""


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _read_solver(
    solver: str | os.PathLike[str] | caffe_pb2.SolverParameter,
) -> tuple[caffe_pb2.SolverParameter, str | None]:
    if isinstance(solver, caffe_pb2.SolverParameter):
        param = caffe_pb2.SolverParameter()
        param.CopyFrom(solver)
        upgrade.upgrade_solver(param)
        return param, None
    path = os.fspath(solver)
    return model_io.read_solver_prototxt(path), path


def _check_state_counters(state: caffe_pb2.SolverState, max_iter: int, path: str) -> None:
    """restore replays `iter` batches and multistep indexes stepvalue by current_step, so an
    untrusted state must not set either outside what this solver can reach. A solver
    without max_iter (driven by step()) only refuses negative values."""
    if state.iter < 0 or 0 < max_iter < state.iter:
        bound = f"0..{max_iter} (max_iter of this solver)" if max_iter > 0 else "0.."
        raise FormatError(f"{path}: iter {state.iter} is outside {bound}")
    if state.current_step < 0:
        raise FormatError(f"{path}: current_step {state.current_step} is negative")


def _learned_net_path(learned_net: str, state_path: str) -> str:
    """The weights file beside the .solverstate (by file name, then by the relative path),
    else learned_net as written (Caffe's rule: relative to the working directory). Caffe
    writes learned_net as the snapshot's own path, so the state's folder is where it lives;
    trying it first keeps an unrelated file of that name elsewhere from being loaded."""
    state_dir = os.path.dirname(os.path.abspath(state_path))
    candidates = [os.path.join(state_dir, os.path.basename(learned_net))]
    if not os.path.isabs(learned_net):
        candidates.append(os.path.join(state_dir, learned_net))
    candidates.append(learned_net)
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise IoError(
        f"{state_path}: its learned_net '{learned_net}' exists neither beside the solver "
        f"state ({candidates[0]}) nor as given"
    )


def get_solver(solver: str | os.PathLike[str] | caffe_pb2.SolverParameter) -> Solver:
    """A solver of the type the SolverParameter names (pycaffe's get_solver)."""
    return Solver(solver)


class SGDSolver(Solver):
    """A Solver of type SGD whatever the file says (pycaffe's SGDSolver)."""

    _forced_type = "SGD"


class NesterovSolver(Solver):
    """A Solver of type Nesterov (pycaffe's NesterovSolver)."""

    _forced_type = "Nesterov"


class AdaGradSolver(Solver):
    """A Solver of type AdaGrad (pycaffe's AdaGradSolver)."""

    _forced_type = "AdaGrad"


class RMSPropSolver(Solver):
    """A Solver of type RMSProp (pycaffe's RMSPropSolver)."""

    _forced_type = "RMSProp"


class AdaDeltaSolver(Solver):
    """A Solver of type AdaDelta (pycaffe's AdaDeltaSolver)."""

    _forced_type = "AdaDelta"


class AdamSolver(Solver):
    """A Solver of type Adam (pycaffe's AdamSolver)."""

    _forced_type = "Adam"
