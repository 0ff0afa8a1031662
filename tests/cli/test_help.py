"""`caffeonspark -help` / -h / --help: every flag of spark/config.py FLAGS with its help,
the extension flags under their own heading, and the verbs; `VERB -h` stays argparse's
(python/caffeonspark/cli_help.py)."""

from __future__ import annotations

import pytest

from caffeonspark.cli import build_parser
from caffeonspark.cli_help import verb_lines
from caffeonspark.spark.config import EXTENSION_FLAGS, FLAGS, ORIGINAL_FLAGS


@pytest.mark.parametrize("flag", ["-help", "-h", "--help"])
def test_help_lists_every_flag_with_its_meaning(console, flag):
    result = console(flag)
    assert result.returncode == 0 and result.stderr == ""
    out = result.stdout
    assert out.startswith("usage: caffeonspark ")
    lines = out.splitlines()
    for name, spec in FLAGS.items():
        shown = f"-{name}" if spec.kind is bool else f"-{name} <arg>"
        [line] = [line for line in lines if line.split("   ")[0].strip() == shown]
        assert spec.help in line
    extension_heading = lines.index("Flags of this version beyond the original's:")
    for name in ORIGINAL_FLAGS:
        assert out.index(f"  -{name} ") < out.index(lines[extension_heading])
    for name in EXTENSION_FLAGS:
        assert out.index(f"  -{name} ") > out.index(lines[extension_heading])


def test_help_lists_the_verbs_one_line_each(console):
    lines = console("-help").stdout.splitlines()
    verbs = verb_lines(build_parser())
    assert {"train", "test", "time", "convert-imageset", "lmdb-to-parquet"} <= {v for v, _ in verbs}
    for verb, text in verbs:
        assert text
        [line] = [line for line in lines if line.split()[:1] == [verb]]
        assert line.startswith(f"  {verb}   ") and line.endswith(f"   {text}")


def test_verb_help_stays_argparse(console):
    result = console("train", "-h")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: caffeonspark train [-h] -solver SOLVER")
    assert "solver prototxt" in result.stdout
