"""A key bound to a property records for it alone; a property's origins admit browsers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Catalog

pytestmark = pytest.mark.integration

_PREFERENCE = {
    "items": [{"kind": "channel", "key": "email", "value": "opt_in"}],
    "surface": "banner",
    "channel": "web",
}


async def _property(catalog: Catalog, name: str, origins: list[str] | None = None) -> str:
    body: dict[str, Any] = {"name": name, "kind": "website"}
    if origins is not None:
        body["allowed_origins"] = origins
    created = await catalog.post("/v1/properties", body)
    return str(created["id"])


async def _key_for(catalog: Catalog, property_id: str) -> dict[str, str]:
    body = {"name": "shop banner", "scopes": ["write"], "property_id": property_id}
    created = await catalog.post("/v1/api-keys", body)
    return {"Authorization": f"Bearer {created['secret']}"}


def _consent(catalog: Catalog, device: str, **extra: Any) -> dict[str, Any]:
    return {
        "identifier": {"type": "device", "value": device},
        "choices": [{"purpose": "analytics", "choice": "granted"}],
        "notice_version_id": catalog.versions[max(catalog.versions)],
        "surface": "banner",
        "channel": "web",
        **extra,
    }


async def _history(catalog: Catalog, device: str) -> list[dict[str, Any]] | None:
    found = await catalog.client.post(
        "/v1/subjects/lookup",
        json={"identifier": {"type": "device", "value": device}},
        headers=catalog.h,
    )
    if found.status_code == 404:
        return None
    assert found.status_code == 200, found.text
    subject_id = found.json()["subject_id"]
    history = await catalog.client.get(
        f"/v1/subjects/{subject_id}/consents/history", headers=catalog.h
    )
    items: list[dict[str, Any]] = history.json()["items"]
    return items


def _refused(response: Any, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == f"/problems/{slug}"


async def test_a_bound_key_records_its_property_and_no_other(catalog: Catalog) -> None:
    shop = await _property(catalog, "shop")
    blog = await _property(catalog, "blog")
    banner = await _key_for(catalog, shop)
    client = catalog.client

    unnamed = await client.post("/v1/consents", json=_consent(catalog, "d-1"), headers=banner)
    assert unnamed.status_code == 201, unnamed.text
    named = await client.post(
        "/v1/consents", json=_consent(catalog, "d-1", property_id=shop), headers=banner
    )
    assert named.status_code == 201, named.text
    history = await _history(catalog, "d-1")
    assert history is not None
    assert [e["property_id"] for e in history] == [shop, shop]

    other = await client.post(
        "/v1/consents", json=_consent(catalog, "d-2", property_id=blog), headers=banner
    )
    _refused(other, 403, "forbidden")
    assert await _history(catalog, "d-2") is None  # no subject was created

    preference = await client.post(
        "/v1/preferences",
        json={**_PREFERENCE, "identifier": {"type": "device", "value": "d-3"}, "property_id": blog},
        headers=banner,
    )
    _refused(preference, 403, "forbidden")
    bound = await client.post(
        "/v1/preferences",
        json={**_PREFERENCE, "identifier": {"type": "device", "value": "d-1"}},
        headers=banner,
    )
    assert bound.status_code == 201, bound.text
    prefs = await client.get(
        f"/v1/subjects/{bound.json()['subject_id']}/preferences/history", headers=catalog.h
    )
    assert [e["property_id"] for e in prefs.json()["items"]] == [shop]


async def test_an_unbound_key_records_what_the_body_names(catalog: Catalog) -> None:
    blog = await _property(catalog, "blog")
    await catalog.consent(
        identifier={"type": "device", "value": "d-9"},
        choices=[{"purpose": "ads", "choice": "denied"}],
        property_id=blog,
    )
    history = await _history(catalog, "d-9")
    assert history is not None
    assert history[0]["property_id"] == blog


async def test_a_property_admits_browsers_only_from_its_origins(catalog: Catalog) -> None:
    shop = await _property(catalog, "shop", ["https://Shop.Example"])
    listed = await catalog.client.get("/v1/properties", headers=catalog.h)
    assert listed.json()["items"][0]["allowed_origins"] == ["https://shop.example"]
    client = catalog.client
    body = _consent(catalog, "d-5", property_id=shop)

    foreign = await client.post(
        "/v1/consents", json=body, headers={**catalog.h, "Origin": "https://evil.example"}
    )
    _refused(foreign, 403, "forbidden")
    preference = await client.post(
        "/v1/preferences",
        json={**_PREFERENCE, "identifier": {"type": "device", "value": "d-5"}, "property_id": shop},
        headers={**catalog.h, "Origin": "https://evil.example"},
    )
    _refused(preference, 403, "forbidden")
    assert await _history(catalog, "d-5") is None

    browser = await client.post(
        "/v1/consents", json=body, headers={**catalog.h, "Origin": "https://shop.example"}
    )
    assert browser.status_code == 201, browser.text
    server = await client.post("/v1/consents", json=body, headers=catalog.h)
    assert server.status_code == 201, server.text
    history = await _history(catalog, "d-5")
    assert history is not None
    assert len(history) == 2


async def test_a_property_without_origins_admits_any_browser(catalog: Catalog) -> None:
    open_site = await _property(catalog, "open")
    response = await catalog.client.post(
        "/v1/consents",
        json=_consent(catalog, "d-7", property_id=open_site),
        headers={**catalog.h, "Origin": "https://anywhere.example"},
    )
    assert response.status_code == 201, response.text
