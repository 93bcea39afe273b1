"""The audit integrator while the database is unavailable: it retries every second and says
so once, then every 30 seconds, not on every attempt (five lines a second flooded the log);
and says when the outage is over."""

from __future__ import annotations

import io
import json
from typing import Any

from consent.audit.integrator import Outage


def _lines(log: io.BytesIO) -> list[dict[str, Any]]:
    return [json.loads(x) for x in log.getvalue().splitlines()]


def test_an_outage_is_one_line_then_one_every_thirty_seconds_and_one_at_its_end(
    service_log: io.BytesIO,
) -> None:
    now = [100.0]
    outage = Outage(clock=lambda: now[0])
    for _ in range(60):  # a minute of attempts, one a second
        outage.failed("ConnectionRefusedError")
        now[0] += 1.0
    outage.over()
    outage.over()  # nothing more: it was over already
    assert outage.retry_after == 1.0
    lines = _lines(service_log)
    assert [(x["event"], x.get("seconds")) for x in lines] == [
        ("audit.integrator_unavailable", 0.0),
        ("audit.integrator_unavailable", 30.0),
        ("audit.integrator_available", 60.0),
    ]
    assert all(x["error"] == "ConnectionRefusedError" for x in lines[:2])


def test_a_second_outage_is_said_again_from_its_own_beginning(service_log: io.BytesIO) -> None:
    now = [0.0]
    outage = Outage(clock=lambda: now[0])
    outage.failed("OSError")
    now[0] = 5.0
    outage.over()
    now[0] = 6.0
    outage.failed("OSError")
    assert [(x["event"], x.get("seconds")) for x in _lines(service_log)] == [
        ("audit.integrator_unavailable", 0.0),
        ("audit.integrator_available", 5.0),
        ("audit.integrator_unavailable", 0.0),
    ]
