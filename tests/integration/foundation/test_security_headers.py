"""Security and cache headers: no answer holding a tenant's data is kept by a browser or proxy
cache; the service's HTML pages run only its own scripts and may not be framed."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest

from tests.conftest import Catalog, Tenant

pytestmark = pytest.mark.integration

_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script\s*>", re.DOTALL)


def _directives(policy: str) -> dict[str, list[str]]:
    parts = (d.split() for d in policy.split(";") if d.strip())
    return {p[0]: p[1:] for p in parts}


async def test_an_api_key_secret_and_a_persons_consents_are_never_cached(
    client: Any, catalog: Catalog
) -> None:
    created = await client.post(
        "/v1/api-keys", json={"name": "reader", "scopes": ["read"]}, headers=catalog.h
    )
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    consent = await client.post(
        "/v1/consents",
        json={
            "identifier": {"type": "email", "value": "ann@example.com"},
            "choices": [{"purpose": "analytics", "choice": "granted"}],
            "notice_version_id": catalog.versions[1],
            "surface": "banner",
            "channel": "web",
        },
        headers=catalog.h,
    )
    assert consent.status_code == 201, consent.text
    subject = consent.json()["subject_id"]
    for answer in (
        await client.post(
            "/v1/subjects/lookup",
            json={"identifier": {"type": "email", "value": "ann@example.com"}},
            headers=catalog.h,
        ),
        await client.get(f"/v1/subjects/{subject}/consents", headers=catalog.h),
        await client.get(f"/v1/subjects/{subject}/consents/history", headers=catalog.h),
        await client.get(f"/v1/subjects/{subject}/export", headers=catalog.h),
    ):
        assert answer.status_code == 200, answer.text
        assert answer.headers.get_list("cache-control") == ["no-store"]
        assert answer.headers["x-content-type-options"] == "nosniff"


async def test_a_decision_on_the_fast_path_is_not_cached_either(
    client: Any, catalog: Catalog
) -> None:
    body = {
        "subject": {"identifier": {"type": "email", "value": "bob@example.com"}},
        "action": "analytics.measure",
        "context": {"requester": "site", "jurisdiction": "DE"},
    }
    for _ in range(2):  # the second is answered by the fast path (the key is cached)
        answer = await client.post("/v1/decisions", json=body, headers=catalog.h)
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"


async def test_problems_of_the_api_are_not_cached(client: Any, tenant: Tenant) -> None:
    missing = await client.get(
        "/v1/subjects/00000000-0000-4000-8000-000000000000/consents", headers=tenant.headers
    )
    assert missing.status_code == 404
    assert missing.headers["cache-control"] == "no-store"
    unauthenticated = await client.get("/v1/tenant")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ["/audit/verify", "/schema/swagger", "/problems/not-found"])
async def test_html_pages_run_only_their_own_scripts_and_are_never_framed(
    client: Any, path: str
) -> None:
    page = await client.get(path, headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    policy = _directives(page.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    # Each inline script of the page (Swagger UI's start-up, the texts of the proof checker)
    # is allowed by its hash, and nothing else inline.
    inline = {
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in _INLINE_SCRIPT.findall(page.text)
    }
    assert set(policy["script-src"]) == {"'self'", *inline}
    assert page.headers.get("cache-control") != "no-store"  # a public page may be cached


async def test_an_injected_script_would_not_be_allowed(client: Any) -> None:
    """What a visitor puts in the page's `log` field is escaped, and even were it not, the
    policy names only the page's own inline scripts."""
    injected = "<script>alert(1)</script>"
    page = await client.get("/audit/verify", params={"log": injected})
    assert page.status_code == 200
    assert injected not in page.text
    digest = base64.b64encode(hashlib.sha256(b"alert(1)").digest()).decode()
    assert digest not in page.headers["content-security-policy"]
