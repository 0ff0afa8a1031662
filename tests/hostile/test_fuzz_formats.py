"""Hostile files, fuzzed: for each input format (Datums raw and encoded, SequenceFile, IDX
plain and gzip'd, HDF5 model and solver state, binary protobuf files, prototxt text), one
hostile child (hostile_child.py) reads a seeded series of mutated copies of a small valid
file (fuzz_formats.py, fuzz_mutate.py). Every case must be read or refused with one of the
taxonomy's errors, and the child must end without a signal. 3,450 cases in all, bounded to
well under a minute; the inputs it found are fixed cases in test_fuzz_findings.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hostile_child import run_case

import caffeonspark

HERE = Path(__file__).resolve().parent
# Cases per format: the cheap parsers get more; HDF5 and image decodes cost the most.
CASES = {
    "datum_raw": 600,
    "datum_png": 250,
    "datum_jpeg": 250,
    "seqfile": 400,
    "idx": 300,
    "idx_gz": 300,
    "caffemodel_h5": 300,
    "solverstate_h5": 300,
    "caffemodel": 200,
    "solverstate": 150,
    "binaryproto": 200,
    "prototxt": 200,
}


def _child_env() -> dict[str, str]:
    package_root = Path(caffeonspark.__file__).resolve().parents[1]
    paths = [str(HERE), str(package_root), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def test_at_least_2000_cases_in_all():
    assert sum(CASES.values()) >= 2000


@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzzed_files_are_read_or_refused_with_a_taxonomy_error(name, tmp_path):
    code = f"""
from fuzz_formats import run_format
run_format({name!r}, {str(tmp_path)!r}, {CASES[name]}, seed=14)
"""
    outcome = run_case(code, timeout=60, env=_child_env())
    last = outcome.stderr.strip().splitlines()[-1:] or ["nothing"]
    assert outcome.returncode >= 0, (
        f"{name}: the child died of signal {-outcome.returncode} at {last[0]!r}; its input "
        f"is left in {tmp_path}"
    )
    assert outcome.error is None, f"{name}: {outcome.error}: {outcome.message}"
    assert f"{name}: {CASES[name]} cases done" in outcome.stderr
