"""Runs one hostile case in a child process with a 4 GiB address-space limit, so that a case
that would crash or exhaust memory ends the child, never the test run: every case must end in
a Python exception or a refusal, never a signal (docs/ARCHITECTURE.md, "Hostile input").

    outcome = run_case("from caffeonspark import engine; engine.Net('bad.prototxt')")
    outcome.expect_error("ConfigError", r"layer 'pool'")
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import resource
import subprocess
import sys
import textwrap

ADDRESS_SPACE_BYTES = 4 << 30

_WRAPPER = """
import json, sys, traceback
try:
{body}
except BaseException as error:
    print(json.dumps({{"error": type(error).__name__, "message": str(error)[:4000],
                      "classes": [c.__name__ for c in type(error).__mro__]}}))
else:
    print(json.dumps({{"error": None}}))
"""


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES))


@dataclasses.dataclass
class Outcome:
    returncode: int
    error: str | None
    message: str
    classes: list[str]  # the exception's class and its bases
    stderr: str

    def expect_error(self, kind: str, pattern: str = "") -> None:
        """The case raised `kind` (or a subclass) with a message matching `pattern`."""
        assert self.returncode >= 0, f"the child died of signal {-self.returncode}: {self.stderr}"
        assert self.error is not None, "the hostile input was accepted without an error"
        assert kind in self.classes, f"expected {kind}, got {self.error}: {self.message}"
        assert re.search(pattern, self.message), f"{self.message!r} does not match {pattern!r}"

    def expect_no_signal(self) -> None:
        assert self.returncode >= 0, f"the child died of signal {-self.returncode}: {self.stderr}"


def run_case(code: str, timeout: float = 120.0, env: dict[str, str] | None = None) -> Outcome:
    """Runs `code` (statements) in a memory-limited child and reports how it ended."""
    body = textwrap.indent(textwrap.dedent(code), "    ")
    child_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER.format(body=body)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_limit_address_space,
        env=child_env,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"error": None}
    return Outcome(
        returncode=proc.returncode,
        error=result.get("error"),
        message=result.get("message", ""),
        classes=result.get("classes", []),
        stderr=proc.stderr[-4000:],
    )
