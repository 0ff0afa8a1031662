"""caffe.Timer: pycaffe's wall-clock timer (start, stop, `ms`), as python/train.py uses it
to time layers; milliseconds() and seconds() follow Caffe's C++ Timer.

Reading the time of a running timer stops it first, and each start() begins a new interval
(the time is the last start-to-stop interval, not a running total), as Caffe's Timer does.

Tests: tests/caffe/test_classifier.py.
"""

from __future__ import annotations

import time


class Timer:
    def __init__(self) -> None:
        self._start = 0.0
        self._stop = 0.0
        self._running = False
        self._has_run = False

    def start(self) -> None:
        if not self._running:
            self._start = time.perf_counter()
            self._running = True
            self._has_run = True

    def stop(self) -> None:
        if self._running:
            self._stop = time.perf_counter()
            self._running = False

    def seconds(self) -> float:
        if not self._has_run:
            return 0.0  # Caffe warns and answers 0 for a timer never started
        self.stop()
        return self._stop - self._start

    def milliseconds(self) -> float:
        return self.seconds() * 1000.0

    @property
    def ms(self) -> float:
        return self.milliseconds()
