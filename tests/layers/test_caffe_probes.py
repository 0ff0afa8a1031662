"""Every single-layer probe recorded with real BVLC Caffe (shared/anchors/caffe-ref, 28 of
them) matches: tops, bottom diffs and parameter diffs. The layer tests check each probe
next to their own cases too; this file makes sure none is left out."""

from __future__ import annotations

import pytest
from caffe_ref import CAFFE_REF, check_probe

PROBES = sorted(p.stem.removeprefix("probe_") for p in CAFFE_REF.glob("probe_*.prototxt"))


def test_all_28_probes_are_present():
    if not CAFFE_REF.is_dir():
        pytest.skip(f"Caffe reference outputs not found at {CAFFE_REF.resolve()}")
    assert len(PROBES) == 28, PROBES


@pytest.mark.parametrize("name", PROBES)
def test_probe_matches_real_caffe(name):
    check_probe(name)
