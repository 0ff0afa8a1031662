"""The thread shape every data feeder shares: run() in a daemon thread; stop() ends the
stream (so a blocked push returns) and joins. Subclasses: lmdb_feeder.LmdbFeeder,
source_feeder.SourceFeeder (their tests cover this)."""

from __future__ import annotations

import threading
from typing import Any


class FeederThread:
    _thread: threading.Thread | None = None

    def run(self) -> None:
        raise NotImplementedError

    def thread_name(self) -> str:
        raise NotImplementedError

    def end_stream(self) -> None:
        """Close the feed so the consumer sees the end and a blocked push returns."""
        raise NotImplementedError

    def start(self) -> Any:
        self._thread = threading.Thread(target=self.run, name=self.thread_name(), daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """End the stream and join the thread."""
        self.end_stream()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
