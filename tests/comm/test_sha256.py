"""The comm layer's own SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) against Python's
hashlib and hmac: padding edge lengths (55/56/63/64/65 bytes), multi-block messages, keys
shorter than, equal to and longer than the 64-byte block (long keys are hashed first)."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pytest

from caffeonspark._native import _engine

LENGTHS = [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 100_003]


@pytest.mark.parametrize("length", LENGTHS)
def test_sha256_matches_hashlib(length):
    data = np.random.default_rng(length).integers(0, 256, length, dtype=np.uint8).tobytes()
    assert _engine.comm_sha256(data) == hashlib.sha256(data).digest()


def test_sha256_known_vectors():
    assert _engine.comm_sha256(b"abc").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert _engine.comm_sha256(b"").hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.parametrize("key_length", [0, 1, 20, 63, 64, 65, 131])
@pytest.mark.parametrize("message_length", [0, 50, 64, 1000])
def test_hmac_matches_python(key_length, message_length):
    rng = np.random.default_rng([key_length, message_length])
    key = rng.integers(0, 256, key_length, dtype=np.uint8).tobytes()
    message = rng.integers(0, 256, message_length, dtype=np.uint8).tobytes()
    expected = hmac.new(key, message, hashlib.sha256).digest()
    assert _engine.comm_hmac_sha256(key, message) == expected
