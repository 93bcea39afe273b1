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


def _an_address() -> str:
    return "ann@" + "example.com"


def test_a_librarys_log_record_is_a_json_line_without_the_exceptions_message() -> None:
    """asyncpg's pool, or any library logging through the standard library, writes into the
    service's log: as JSON lines like the service's own (Litestar's text format before), and
    an exception's message, which may hold what a request sent, is never written."""
    import io

    import structlog

    from consent.logging import configure_logging

    root = logging.getLogger()
    saved, saved_level, saved_config = root.handlers[:], root.level, structlog.get_config()
    out = io.TextIOWrapper(io.BytesIO(), write_through=True)
    try:
        configure_logging("info", json=True, cache=False, stream=out)
        try:
            _empty: dict[str, int] = {}
            _empty[_an_address()]
        except KeyError:
            logging.getLogger("asyncpg.pool").warning("connection lost", exc_info=True)
        logging.getLogger("asyncpg.pool").info("below the root's level")
    finally:
        root.handlers, structlog_config = saved, saved_config
        root.setLevel(saved_level)
        structlog.configure(**structlog_config)
    written = out.buffer.getvalue().decode()
    (line,) = [json.loads(x) for x in written.splitlines()]
    assert (line["event"], line["logger"], line["level"]) == (
        "connection lost",
        "asyncpg.pool",
        "warning",
    )
    assert "KeyError (message not logged)" in line["exception"]
    assert "ann@example.com" not in written
