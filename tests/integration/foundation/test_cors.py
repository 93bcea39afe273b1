"""Browsers on other origins may call the API (CORS), without credentials; what a key may do
from which origin stays the service's own check."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Catalog

pytestmark = pytest.mark.integration

SHOP = "https://shop.example"


async def test_a_preflight_is_answered_for_any_origin(client: Any) -> None:
    response = await client.options(
        "/v1/consents",
        headers={
            "Origin": SHOP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )
    assert response.status_code == 204, response.text
    assert response.headers["access-control-allow-origin"] == SHOP
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    assert "access-control-allow-credentials" not in response.headers


async def test_answers_to_other_origins_are_readable_and_errors_too(
    client: Any, catalog: Catalog
) -> None:
    """The page reads the answer (and its request id); a refusal by the service's own origin
    check is readable as well, so the banner can tell the visitor what happened."""
    created = await catalog.post(
        "/v1/api-keys",
        {"name": "banner", "scopes": ["write"], "allowed_origins": [SHOP]},
    )
    banner = {"Authorization": f"Bearer {created['secret']}"}
    body = {
        "identifier": {"type": "device", "value": "cors-device-1"},
        "choices": [{"purpose": "analytics", "choice": "granted"}],
        "notice_version_id": catalog.versions[max(catalog.versions)],
        "surface": "banner",
        "channel": "web",
    }
    ok = await client.post("/v1/consents", json=body, headers={**banner, "Origin": SHOP})
    assert ok.status_code == 201, ok.text
    assert ok.headers["access-control-allow-origin"] == SHOP
    assert "x-request-id" in ok.headers["access-control-expose-headers"]
    assert "Origin" in ok.headers.get_list("vary")

    other = "https://evil.example"
    refused = await client.post("/v1/consents", json=body, headers={**banner, "Origin": other})
    assert refused.status_code == 403, refused.text
    assert refused.headers["access-control-allow-origin"] == other
    assert refused.headers["content-type"].startswith("application/problem+json")


async def test_no_cors_headers_without_an_origin_or_for_a_null_origin(client: Any) -> None:
    plain = await client.get("/health/live")
    assert "access-control-allow-origin" not in plain.headers
    opaque = await client.get("/health/live", headers={"Origin": "null"})
    assert "access-control-allow-origin" not in opaque.headers


async def test_the_decision_fast_path_answers_other_origins_too(
    client: Any, catalog: Catalog
) -> None:
    """The fast path sits in front of Litestar; its answers carry the CORS headers as well."""
    ask = {
        "subject": {"identifier": {"type": "device", "value": "nobody"}},
        "action": "web.analytics",
        "context": {"requester": "site"},
    }
    fast = client.app.state.decision_fast_path
    await client.post("/v1/decisions", json=ask, headers=catalog.h)  # caches the key
    answered = fast.answered
    response = await client.post("/v1/decisions", json=ask, headers={**catalog.h, "Origin": SHOP})
    assert response.status_code == 200, response.text
    assert fast.answered == answered + 1
    assert response.headers["access-control-allow-origin"] == SHOP
