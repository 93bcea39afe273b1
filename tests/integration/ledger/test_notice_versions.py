"""Drafting and publishing a notice version are safe to retry with an Idempotency-Key."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.ledger.conftest import Catalog

pytestmark = pytest.mark.integration

_DRAFT = {
    "texts": {"en": {"title": "Cookies", "body": "We now also measure page speed."}},
    "change_kind": "editorial",
}


async def test_a_retried_draft_and_publish_get_the_first_answer(
    client: Any, catalog: Catalog
) -> None:
    retry = {**catalog.h, "Idempotency-Key": "draft-2"}
    first = await client.post("/v1/notices/main/versions", json=_DRAFT, headers=retry)
    assert first.status_code == 201, first.text
    again = await client.post("/v1/notices/main/versions", json=_DRAFT, headers=retry)
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    plain = await client.post("/v1/notices/main/versions", json=_DRAFT, headers=catalog.h)
    assert plain.status_code == 409, plain.text  # one draft at a time, without a key

    publish = {**catalog.h, "Idempotency-Key": "publish-2"}
    path = f"/v1/notices/main/versions/{first.json()['version']}/publish"
    published = await client.post(path, headers=publish)
    assert published.status_code == 200, published.text
    assert published.json()["published_at"] is not None
    republished = await client.post(path, headers=publish)
    assert republished.status_code == 200, republished.text
    assert republished.json() == published.json()
    assert (await client.post(path, headers=catalog.h)).status_code == 409

    listed = await client.get("/v1/notices/main/versions", headers=catalog.h)
    assert [v["version"] for v in listed.json()["items"]] == [2, 1]


async def test_a_key_reused_for_another_draft_is_refused(client: Any, catalog: Catalog) -> None:
    retry = {**catalog.h, "Idempotency-Key": "draft-x"}
    first = await client.post("/v1/notices/main/versions", json=_DRAFT, headers=retry)
    assert first.status_code == 201, first.text
    other = {**_DRAFT, "change_kind": "material"}
    reused = await client.post("/v1/notices/main/versions", json=other, headers=retry)
    assert reused.status_code == 422, reused.text
    assert reused.headers["content-type"].startswith("application/problem+json")
