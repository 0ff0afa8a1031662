"""How every command-line entry point reports a failure to a person.

    return run_reported("caffeonspark", body, argv)

A user error (a CaffeOnSparkError other than InternalError, an OSError such as a missing
file, NotImplementedError for a feature this version does not build, pyspark not
installed, a UsageError from argparse) prints one line, `caffeonspark: error: <message>`
(the lines after the first of a multi-line message indented below it), and exits 2 for
usage errors, 1 otherwise. A bug (InternalError or any other exception) prints its
traceback and a line asking to report it. KeyboardInterrupt exits 130 without a word.
`--debug` anywhere on the command line (removed before the entry point parses it) or
CAFFEONSPARK_DEBUG=1 adds the traceback to user errors too. An error whose message was
already logged at ERROR level on the "caffeonspark" logger during the command is not
printed a second time.
Tests: tests/cli/test_errors.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

from caffeonspark.errors import CaffeOnSparkError, InternalError

__all__ = [
    "DEBUG_ENV", "DEBUG_FLAG", "REPORT_LINE", "ReportingParser", "UsageError", "debug_requested",
    "error_line", "run_reported", "split_debug",
]

DEBUG_FLAG = "--debug"
DEBUG_ENV = "CAFFEONSPARK_DEBUG"
REPORT_LINE = (
    "This is a bug in caffeonspark: please report it with the traceback above "
    "and the command line."
)
EXIT_USAGE = 2
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it


class UsageError(Exception):
    """The command line itself is wrong (argparse's errors): exit status 2."""

    def __str__(self) -> str:
        return " ".join(str(arg) for arg in self.args)


class ReportingParser(argparse.ArgumentParser):
    """argparse, except that an error is raised for run_reported to print on one line
    (argparse would print its usage block first). Sub-parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        verb = self.prog.partition(" ")[2]  # "caffeonspark train" -> "train"
        raise UsageError(f"{verb}: {message}" if verb else message, f"(see {self.prog} -h)")


def split_debug(argv: Sequence[str]) -> tuple[list[str], bool]:
    """argv without --debug, and whether it was there."""
    rest = [arg for arg in argv if arg != DEBUG_FLAG]
    return rest, len(rest) != len(argv)


def debug_requested(flag_given: bool = False) -> bool:
    return flag_given or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _missing_module(err: BaseException) -> str | None:
    if isinstance(err, ModuleNotFoundError) and (err.name or "").split(".")[0] in (
        "pyspark", "py4j"
    ):
        return f"{err.name} is not installed: pip install 'caffeonspark[spark]' for the Spark driver"
    return None


def user_message(err: BaseException) -> str | None:
    """The message to show for a user error, None for a bug."""
    if isinstance(err, InternalError):
        return None
    missing = _missing_module(err)
    if missing is not None:
        return missing
    if isinstance(err, (UsageError, CaffeOnSparkError, NotImplementedError)):
        return str(err) or type(err).__name__
    if isinstance(err, OSError):
        if err.strerror and err.filename is not None:
            return f"{err.filename}: {err.strerror}"
        return str(err) or type(err).__name__
    return None


def error_line(prog: str, message: str) -> str:
    """`prog: error: first line`, the other lines indented under it."""
    first, *rest = message.strip().splitlines() or [""]
    return "\n".join([f"{prog}: error: {first}", *(f"    {line}" for line in rest)])


class _LoggedErrors(logging.Handler):
    """Remembers the ERROR records logged while the command runs."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # a malformed record is logging's business, not ours
            pass

    def already_said(self, message: str) -> bool:
        # Equal, or the tail of a line that adds where it came from ("rank 0 failed: ...").
        return any(
            logged == message or logged.endswith(f": {message}") for logged in self.messages
        )


def run_reported(
    prog: str, body: Callable[[list[str]], int], argv: Sequence[str] | None = None
) -> int:
    """Run body(argv without --debug) and report what it raises as a person expects."""
    args, flag = split_debug(list(sys.argv[1:] if argv is None else argv))
    debug = debug_requested(flag)
    logged = _LoggedErrors()
    # On our logger, not the root: a root handler would turn logging.basicConfig into a no-op.
    ours = logging.getLogger("caffeonspark")
    ours.addHandler(logged)
    try:
        return body(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as err:
        message = user_message(err)
        if message is None:
            traceback.print_exc()
            print(REPORT_LINE, file=sys.stderr)
            return EXIT_ERROR
        if debug:
            traceback.print_exc()
        if not logged.already_said(message.strip()):
            print(error_line(prog, message), file=sys.stderr)
        return EXIT_USAGE if isinstance(err, UsageError) else EXIT_ERROR
    finally:
        ours.removeHandler(logged)
        sys.stderr.flush()
