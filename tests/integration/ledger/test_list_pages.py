"""Every cursor-paginated list ends without an empty page: `next_cursor` is null on the last
page, also when that page is full, and paging returns every item exactly once."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.integration.ledger.conftest import Catalog
from tests.support.lists import pages

pytestmark = pytest.mark.integration

Listing = tuple[str, str, int]  # its path, the field naming an item, how many items it holds


async def _purposes(catalog: Catalog) -> Listing:  # the catalogue's four, and one more
    await catalog.post("/v1/purposes", {"key": "zz", "name": "Z", "legal_basis": "consent"})
    return "/v1/purposes", "key", 5


async def _notices(catalog: Catalog) -> Listing:
    for i in range(3):
        await catalog.post("/v1/notices", {"key": f"n{i}", "purposes": ["ads"]})
    return "/v1/notices", "key", 4


async def _notice_versions(catalog: Catalog) -> Listing:
    for _ in range(3):
        await catalog.publish_version(change_kind="editorial")
    return "/v1/notices/main/versions", "version", 4


async def _vendors(catalog: Catalog) -> Listing:
    for i in range(4):
        await catalog.post("/v1/vendors", {"name": f"v{i}", "purposes": ["ads"]})
    return "/v1/vendors", "name", 4


async def _identifier_types(catalog: Catalog) -> Listing:  # five built-in, two custom
    for key in ("crm_id", "store_card"):
        await catalog.post("/v1/identifier-types", {"key": key, "description": key})
    return "/v1/identifier-types", "key", 7


async def _properties(catalog: Catalog) -> Listing:
    for i in range(4):
        await catalog.post("/v1/properties", {"name": f"p{i}", "kind": "app"})
    return "/v1/properties", "id", 4


async def _api_keys(catalog: Catalog) -> Listing:  # the admin key, and three more
    for i in range(3):
        await catalog.post("/v1/api-keys", {"name": f"k{i}", "scopes": ["read"]})
    return "/v1/api-keys", "id", 4


async def _consenting_subject(catalog: Catalog) -> str:
    """The path of a subject with four consent events (and nothing else)."""
    first = await catalog.consent(
        identifier={"type": "device", "value": "d-1"},
        choices=[{"purpose": "ads", "choice": "granted"}],
    )
    for choice in ("withdrawn", "granted", "withdrawn"):
        await catalog.consent(
            subject_id=first["subject_id"], choices=[{"purpose": "ads", "choice": choice}]
        )
    return f"/v1/subjects/{first['subject_id']}"


async def _consent_history(catalog: Catalog) -> Listing:
    return f"{await _consenting_subject(catalog)}/consents/history", "event_id", 4


async def _activity(catalog: Catalog) -> Listing:
    return f"{await _consenting_subject(catalog)}/activity", "event_uuid", 4


async def _preference_history(catalog: Catalog) -> Listing:
    body = {"identifier": {"type": "device", "value": "d-2"}, "surface": "form", "channel": "web"}
    for value in ("opt_in", "opt_out", "opt_in", "opt_out"):
        recorded = await catalog.post(
            "/v1/preferences",
            body | {"items": [{"kind": "channel", "key": "email", "value": value}]},
        )
    return f"/v1/subjects/{recorded['subject_id']}/preferences/history", "event_id", 4


LISTS: dict[str, Callable[[Catalog], Awaitable[Listing]]] = {
    "purposes": _purposes,
    "notices": _notices,
    "notice versions": _notice_versions,
    "vendors": _vendors,
    "identifier types": _identifier_types,
    "properties": _properties,
    "api keys": _api_keys,
    "consent history": _consent_history,
    "preference history": _preference_history,
    "activity": _activity,
}


@pytest.mark.parametrize("name", LISTS)
async def test_a_full_last_page_has_no_cursor(client: Any, catalog: Catalog, name: str) -> None:
    path, _, n = await LISTS[name](catalog)
    response = await client.get(path, params={"limit": n}, headers=catalog.h)
    assert response.status_code == 200, response.text
    page = response.json()
    assert len(page["items"]) == n
    assert page["next_cursor"] is None
    shorter = (await client.get(path, params={"limit": n - 1}, headers=catalog.h)).json()
    assert len(shorter["items"]) == n - 1
    assert shorter["next_cursor"] is not None


@pytest.mark.parametrize("name", LISTS)
async def test_paging_returns_every_item_once_and_no_empty_page(
    client: Any, catalog: Catalog, name: str
) -> None:
    path, field, n = await LISTS[name](catalog)
    everything = [item[field] for item in (await pages(client, path, catalog.h, 200))[0]]
    assert len(set(everything)) == len(everything) == n
    for limit in range(1, n + 2):
        found = await pages(client, path, catalog.h, limit)
        assert len(found) == math.ceil(n / limit), limit
        assert all(len(page) == limit for page in found[:-1]), limit
        assert 0 < len(found[-1]) <= limit, limit
        assert [item[field] for page in found for item in page] == everything, limit
