"""The audience path's HMAC-SHA256 (inner and outer pad states) is the standard one."""

from __future__ import annotations

import hmac
import os

import pytest

from consent.decisions.service import KeyedDigest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("key_length", [0, 1, 32, 63, 64, 65, 200])
def test_keyed_digest_is_hmac_sha256(key_length: int) -> None:
    key = os.urandom(key_length)
    keyed = KeyedDigest(key)
    for message in [b"", b"email\x00someone@example.com", os.urandom(1000)]:
        assert keyed.digest(message) == hmac.digest(key, message, "sha256")
    # The keyed states are copied, never consumed: the same message gives the same digest.
    assert keyed.digest(b"x") == keyed.digest(b"x")
