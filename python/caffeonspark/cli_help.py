"""`caffeonspark -help` (also -h, --help): the verbs, one line each, and every flag of the
Spark driver with its meaning, in Apache Commons CLI's layout (`-flag <arg>   help`).

The flags and their meanings have one home, spark/config.py FLAGS (the original's flags,
then ours under their own heading); the verbs and their lines are read from the argparse
parser, so a verb added there is listed here without more code. `caffeonspark VERB -h` is
argparse's own help for that verb.
Tests: tests/cli/test_help.py.
"""

from __future__ import annotations

import argparse

__all__ = ["overview_help", "flag_lines", "verb_lines"]

_INDENT = 2
_GAP = 3


def _table(rows: list[tuple[str, str]]) -> list[str]:
    width = max((len(left) for left, _ in rows), default=0) + _GAP
    return [(" " * _INDENT + left.ljust(width) + right).rstrip() for left, right in rows]


def verb_lines(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """(verb, its one-line help) in the order the parser declares them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return [(choice.dest, choice.help or "") for choice in action._choices_actions]
    return []


def flag_lines(flags: dict) -> list[tuple[str, str]]:
    """(`-name <arg>` or `-name` for a switch, help) for each Flag; the captioning tools'
    flags say that a job refuses them."""
    from caffeonspark.spark.config import CAPTIONING_FLAGS

    return [
        (
            f"-{flag.name}" if flag.kind is bool else f"-{flag.name} <arg>",
            flag.help + (" (refused: not in this version)" if name in CAPTIONING_FLAGS else ""),
        )
        for name, flag in flags.items()
    ]


def overview_help(parser: argparse.ArgumentParser) -> str:
    from caffeonspark.spark.config import EXTENSION_FLAGS, ORIGINAL_FLAGS

    lines = [
        "usage: caffeonspark VERB [options]        Caffe's tools on this machine",
        "       caffeonspark -flag [<arg>] ...     CaffeOnSpark's Spark driver",
        "",
        "Verbs (caffeonspark VERB -h lists a verb's options):",
        *_table(verb_lines(parser)),
        "",
        "CaffeOnSpark's flags (the original's):",
        *_table(flag_lines(ORIGINAL_FLAGS)),
        "",
        "Flags of this version beyond the original's:",
        *_table(flag_lines(EXTENSION_FLAGS)),
        "",
        "Everywhere:",
        *_table([
            ("--debug", "show the traceback of an error (also CAFFEONSPARK_DEBUG=1)"),
            ("--version", "the version and what this build includes"),
            ("-h, -help, --help", "this help"),
        ]),
    ]
    return "\n".join(lines)
