"""What a remote peer sends, made safe to log: clean() strips terminal escapes and control
characters (keeping newline and tab), quote() shows an unauthenticated peer's bytes escaped
and cut short, and RateLimitedLog logs the first of a kind of event and then only counts.
Used by the listeners behind hello_gate.py (rendezvous.py, spark/console.py).
Tests: tests/hostile/test_console_hostile.py, tests/hostile/test_rendezvous_hostile.py.
"""

from __future__ import annotations

import logging
import re
import time

__all__ = ["clean", "quote", "RateLimitedLog"]

# CSI / OSC escape sequences first (so their parameters do not show up as text), then any
# other C0/C1 control character except \t and \n.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)?|\x1b.?")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

QUOTE_BYTES = 80


def clean(text: str, newlines: bool = True) -> str:
    """`text` without escape sequences or control characters (tab kept; newlines kept
    unless `newlines` is False, then they become spaces)."""
    text = _CONTROLS.sub("", _ESCAPES.sub("", text.replace("\r\n", "\n")))
    return text if newlines else text.replace("\n", " ")


def quote(data: bytes) -> str:
    """The first QUOTE_BYTES bytes of `data`, escaped (repr), marked when cut."""
    return repr(data[:QUOTE_BYTES]) + ("..." if len(data) > QUOTE_BYTES else "")


class RateLimitedLog:
    """Logs the first event in full, then at most one "N more" line per `every` seconds
    (and the rest at flush()), so a flood of events cannot flood the log."""

    def __init__(self, logger: logging.Logger, what: str, every: float = 30.0) -> None:
        self._log = logger
        self._what = what
        self._every = every
        self.count = 0
        self._unlogged = 0
        self._logged_at = 0.0

    def event(self, message: str, *args: object) -> None:
        self.count += 1
        now = time.monotonic()
        if self.count == 1:
            self._log.warning(message, *args)
            self._logged_at = now
            return
        self._unlogged += 1
        if now - self._logged_at >= self._every:
            self.flush()

    def flush(self) -> None:
        if self._unlogged:
            self._log.warning("console: %d more %s", self._unlogged, self._what)
            self._unlogged = 0
            self._logged_at = time.monotonic()
