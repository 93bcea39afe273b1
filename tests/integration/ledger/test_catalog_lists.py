"""Catalogue lists (purposes, notices, versions, vendors, identifier types): every item once,
in order, a page at a time, with the tenant's items only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Catalog, Tenant
from tests.support.lists import pages

pytestmark = pytest.mark.integration


async def _walk(client: Any, path: str, headers: dict[str, str], limit: int) -> list[Any]:
    """Every item of a list endpoint, page after page (see `pages`)."""
    return [item for page in await pages(client, path, headers, limit) for item in page]


@pytest.mark.parametrize("limit", [1, 2, 3, 50])
async def test_every_list_pages_through_everything_in_order(
    client: Any, catalog: Catalog, other_tenant: Tenant, limit: int
) -> None:
    for n in (2, 3, 4):
        await catalog.publish_version(change_kind="editorial", title=f"Cookies v{n}")
    for name in ("Zeta Ads", "Alpha Analytics", "Mu Mail"):
        await catalog.post("/v1/vendors", {"name": name, "purposes": ["ads"]})
    for key in ("store_card", "crm_id"):
        await catalog.post("/v1/identifier-types", {"key": key, "description": key})
    theirs = Catalog(client, other_tenant)  # never seen by the first tenant
    await theirs.post("/v1/purposes", {"key": "aaa", "name": "A", "legal_basis": "consent"})
    await theirs.post("/v1/vendors", {"name": "Aardvark", "purposes": ["aaa"]})

    h = catalog.h
    purposes = await _walk(client, "/v1/purposes", h, limit)
    assert [p["key"] for p in purposes] == ["ads", "analytics", "essential", "newsletter"]
    notices = await _walk(client, "/v1/notices", h, limit)
    assert [n["key"] for n in notices] == ["main"]
    versions = await _walk(client, "/v1/notices/main/versions", h, limit)
    assert [v["version"] for v in versions] == [4, 3, 2, 1]
    assert versions[0]["texts"]["en"]["title"] == "Cookies v4"
    vendors = await _walk(client, "/v1/vendors", h, limit)
    assert [v["name"] for v in vendors] == ["Alpha Analytics", "Mu Mail", "Zeta Ads"]
    types = await _walk(client, "/v1/identifier-types", h, limit)
    assert [(t["key"], t["builtin"]) for t in types] == [
        ("crm_id", False),
        ("customer_id", True),
        ("device", True),
        ("email", True),
        ("loyalty_card", True),
        ("phone", True),
        ("store_card", False),
    ]


@pytest.mark.parametrize(
    "path",
    ["/v1/purposes", "/v1/notices", "/v1/notices/main/versions", "/v1/vendors"],
)
@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"cursor": "%%%"}, "cursor")],
)
async def test_bad_page_parameters_are_a_problem(
    client: Any, catalog: Catalog, path: str, params: dict[str, Any], field: str
) -> None:
    response = await client.get(path, params=params, headers=catalog.h)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.text


async def test_versions_of_an_unknown_notice_are_not_found(client: Any, catalog: Catalog) -> None:
    response = await client.get("/v1/notices/nope/versions", headers=catalog.h)
    assert response.status_code == 404


async def test_vendors_with_the_longest_names_page_through(client: Any, catalog: Catalog) -> None:
    """A vendor list's cursor carries the last name of its page: 200 characters of any script
    must make a cursor the next request accepts."""
    names = sorted(f"{letter}{'ü' * 199}" for letter in "abc")
    for name in names:
        await catalog.post("/v1/vendors", {"name": name, "purposes": ["ads"]})
    vendors = await _walk(client, "/v1/vendors", catalog.h, 1)
    assert [v["name"] for v in vendors] == names
