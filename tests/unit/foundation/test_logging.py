from __future__ import annotations

import json
import logging
import sys

import pytest

from consent.logging import GRANIAN_LOG_CONFIG, JsonLineFormatter, redact_personal_data

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


def test_granian_records_become_json_lines_with_their_traceback() -> None:
    formatter = JsonLineFormatter()
    try:
        raise RuntimeError("worker start-up failed")  # noqa: TRY301
    except RuntimeError:
        record = logging.getLogger("_granian").makeRecord(
            "_granian",
            logging.ERROR,
            __file__,
            1,
            "Unexpected exit from %s",
            ("worker-1",),
            sys.exc_info(),
        )
    line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["event"] == "Unexpected exit from worker-1"
    assert (entry["logger"], entry["level"]) == ("granian", "error")
    assert entry["timestamp"].endswith("Z")
    assert "RuntimeError: worker start-up failed" in entry["exception"]
    assert GRANIAN_LOG_CONFIG["formatters"].keys() == {"generic", "access"}
