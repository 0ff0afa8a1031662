"""The hostile-case runner itself (tests/hostile/hostile_child.py): an exception is reported
with its class and message, memory beyond the 4 GiB limit is a MemoryError in the child, and
a child killed by a signal is told apart from one that raised."""

from __future__ import annotations

import pytest
from hostile_child import run_case


def test_an_exception_is_reported_with_its_class_chain():
    outcome = run_case("raise TimeoutError('slow peer')")
    outcome.expect_error("OSError", "slow peer")  # TimeoutError is an OSError
    assert outcome.error == "TimeoutError"


def test_memory_past_the_limit_is_a_memory_error_not_a_kill():
    run_case("bytearray(8 << 30)").expect_error("MemoryError")


def test_a_signal_is_a_failure():
    outcome = run_case("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert outcome.returncode < 0
    with pytest.raises(AssertionError, match="signal 11"):
        outcome.expect_no_signal()


def test_an_accepted_input_is_not_a_refusal():
    with pytest.raises(AssertionError, match="accepted without an error"):
        run_case("x = 1").expect_error("ValueError")
