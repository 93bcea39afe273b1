"""The access log names the route a request took, never its path: a path holds subject ids,
and whatever a client typed into it (an e-mail address where a subject id belongs)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from tests.conftest import Tenant

pytestmark = pytest.mark.integration


def _access_lines(log: io.BytesIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.getvalue().splitlines() if line.strip()]
    return [line for line in lines if line.get("event") == "request"]


async def test_the_access_log_names_the_route_not_the_path(
    client: Any, tenant: Tenant, service_log: io.BytesIO
) -> None:
    subject = "0190a000-0000-7000-8000-000000000001"
    typed = await client.get("/v1/subjects/ann@example.com/consents", headers=tenant.headers)
    assert typed.status_code == 404
    unknown = await client.get(f"/v1/subjects/{subject}/consents", headers=tenant.headers)
    assert unknown.status_code == 404
    decided = await client.post(  # the decision fast path logs its line itself
        "/v1/decisions",
        json={
            "subject": {"identifier": {"type": "email", "value": "bob@example.com"}},
            "action": "email.marketing",
            "context": {"requester": "esp"},
        },
        headers=tenant.headers,
    )
    assert decided.status_code == 200, decided.text
    text = service_log.getvalue().decode()
    assert "example.com" not in text
    assert subject not in text
    routes = [
        (line["method"], line.get("route"), line["status"]) for line in _access_lines(service_log)
    ]
    assert routes == [
        ("GET", None, 404),  # no route takes an e-mail address where a subject id belongs
        ("GET", "/v1/subjects/{subject_id}/consents", 404),
        ("POST", "/v1/decisions", 200),
    ]
