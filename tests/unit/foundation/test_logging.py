from __future__ import annotations

import pytest

from consent.logging import redact_personal_data

pytestmark = pytest.mark.unit


def test_personal_and_secret_fields_are_dropped_at_any_depth() -> None:
    event = {
        "event": "consent.recorded",
        "email": "ann@example.com",
        "user_email": "ann@example.com",
        "ip": "203.0.113.9",
        "api_key": "csk_x",
        "authorization": "Bearer x",
        "purpose": "analytics",
        "context": {"phone": "+4915112345678", "channel": "web", "nested": [{"token": "t"}]},
    }
    out = redact_personal_data(None, "info", dict(event))
    assert out == {
        "event": "consent.recorded",
        "purpose": "analytics",
        "context": {"channel": "web", "nested": [{}]},
    }
