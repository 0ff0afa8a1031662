"""Per-layer forward and backward seconds of a training net, measured once on demand.

The engine's training loop does not time its layers, so `time_layers(net)` re-runs each
compute layer of the train net once, forward then backward, on the blobs the last
iteration left (the display iteration's batch) with the engine's forward_from_to /
backward_from_to, as `caffeonspark time` does. It is meant for display iterations only:
- data layers (no bottoms) are not re-run: that would pop the next batch and change what
  training sees;
- layers whose TRAIN forward changes state (BatchNorm's running averages, Dropout's and
  other random layers' draws) are not re-run either, so timing never changes the model
  or the random sequence;
- backward adds into the parameter diffs after the update has used them; the solver
  clears them before the next iteration, and data-parallel reduction is not armed then.
Tests: tests/viz/test_tensorboard.py.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["STATEFUL_TYPES", "timed_layers", "time_layers"]

# Layer types whose TRAIN forward mutates state or draws random numbers.
STATEFUL_TYPES = frozenset({"BatchNorm", "Dropout", "RReLU", "Noise", "GaussianNoise"})


def timed_layers(net: Any) -> list[int]:
    """Indices of the layers time_layers re-runs: those with bottoms, not stateful."""
    native = net.native
    return [
        i
        for i, kind in enumerate(net.layer_types)
        if native.bottom_ids(i) and kind not in STATEFUL_TYPES
    ]


def time_layers(net: Any) -> tuple[dict[str, float], dict[str, float]]:
    """({layer: forward seconds}, {layer: backward seconds}) for one pass of each layer in
    timed_layers(net)."""
    native = net.native
    names = net.layer_names
    indices = timed_layers(net)
    forward: dict[str, float] = {}
    backward: dict[str, float] = {}
    for i in indices:
        start = time.perf_counter()
        native.forward_from_to(i, i)
        forward[names[i]] = time.perf_counter() - start
    for i in reversed(indices):
        start = time.perf_counter()
        native.backward_from_to(i, i)
        backward[names[i]] = time.perf_counter() - start
    return forward, backward
