"""A logged failure names where and what kind, never the values in an exception's message:
the message of an unexpected error may hold what a request sent (an e-mail address, a key)."""

from __future__ import annotations

import io
import json

import pytest
import structlog

pytestmark = pytest.mark.integration

EMAIL = "ann@example.com"


def _lines(log: io.BytesIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.getvalue().splitlines() if line.strip()]


def _lookup(identifiers: dict[str, str], value: str) -> str:
    return identifiers[value]


def test_an_unexpected_errors_message_is_not_logged(service_log: io.BytesIO) -> None:
    log = structlog.get_logger("consent.errors")
    try:
        _lookup({}, EMAIL)
    except KeyError as exc:
        log.error("request.failed", error=type(exc).__name__, exc_info=exc)  # noqa: TRY400 - as errors._on_unexpected
    (line,) = _lines(service_log)
    assert EMAIL not in json.dumps(line)
    exception = str(line["exception"])
    assert "KeyError" in exception
    assert "_lookup" in exception  # where it failed: the frames stay
    assert line["error"] == "KeyError"


def test_a_chained_errors_messages_are_not_logged_either(service_log: io.BytesIO) -> None:
    log = structlog.get_logger("consent.errors")
    try:
        try:
            _lookup({}, EMAIL)
        except KeyError as exc:
            raise ValueError(f"no subject for {EMAIL}") from exc
    except ValueError:
        log.exception("request.failed")
    (line,) = _lines(service_log)
    assert EMAIL not in json.dumps(line)
    exception = str(line["exception"])
    assert "ValueError" in exception
    assert "KeyError" in exception
