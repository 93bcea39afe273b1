"""A draft notice version can be corrected (PUT) or thrown away (DELETE) before it is
published; a published version stays immutable, and consents can name published versions only."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from uuid import UUID

import pytest

from consent.audit.checkpoint import NoteSigner
from consent.audit.integrator import Integrator
from consent.audit.leaf import AdminChanged, decode_leaf
from consent.audit.verify_db import verify_all
from consent.db.database import Database
from tests.conftest import Catalog, Tenant

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
_TYPO: dict[str, Any] = {
    "texts": {"en": {"title": "Cokies", "body": "We mesure page speed."}},
    "change_kind": "material",
}
_FIXED: dict[str, Any] = {
    "texts": {
        "en": {"title": "Cookies", "body": "We measure page speed."},
        "de": {"title": "Cookies", "body": "Wir messen die Ladezeit."},
    },
    "change_kind": "editorial",
}


def _hash(texts: dict[str, Any]) -> str:
    """The documented content hash: SHA-256 of the sorted-key, whitespace-free JSON."""
    canonical = json.dumps(texts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _draft(catalog: Catalog, body: dict[str, Any] = _TYPO) -> dict[str, Any]:
    draft: dict[str, Any] = await catalog.post("/v1/notices/main/versions", body)
    assert draft["published_at"] is None
    return draft


def _path(version: int, notice: str = "main") -> str:
    return f"/v1/notices/{notice}/versions/{version}"


async def _versions(client: Any, catalog: Catalog) -> list[dict[str, Any]]:
    listed = await client.get("/v1/notices/main/versions", headers=catalog.h)
    assert listed.status_code == 200, listed.text
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


async def _admin_leaves(db: Database, tenant_id: str, entity_id: str) -> list[AdminChanged]:
    async with db.system() as conn:
        rows = await conn.fetch(
            "select leaf_bytes from audit_event where tenant_id = $1 and kind = 'admin.changed' "
            "order by event_id",
            UUID(tenant_id),
        )
    leaves = [decode_leaf(bytes(r["leaf_bytes"])) for r in rows]
    return [x for x in leaves if isinstance(x, AdminChanged) and x.entity_id == entity_id]


def _assert_problem(answer: Any, status: int, slug: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert answer.json()["type"] == f"/problems/{slug}"


# -- correcting a draft -------------------------------------------------------------------------
async def test_a_draft_with_a_typo_is_corrected_then_published(
    client: Any, catalog: Catalog
) -> None:
    draft = await _draft(catalog)
    fixed = await client.put(_path(draft["version"]), json=_FIXED, headers=catalog.h)
    assert fixed.status_code == 200, fixed.text
    body = fixed.json()
    assert (body["id"], body["version"], body["notice_key"]) == (draft["id"], 2, "main")
    assert body["texts"] == _FIXED["texts"]
    assert body["change_kind"] == "editorial"
    assert body["content_hash"] == _hash(_FIXED["texts"]) != draft["content_hash"]
    assert (body["published_at"], body["material_version"]) == (None, None)
    assert (await _versions(client, catalog))[0] == body

    published = await catalog.post(f"{_path(2)}/publish", None, status=200)
    assert published["content_hash"] == body["content_hash"]
    assert published["material_version"] == 1  # editorial: keeps version 1's number
    recorded = await catalog.consent(
        identifier={"type": "device", "value": "draft-fixed"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
        notice_version_id=draft["id"],
        language="de",
        notice_hash=body["content_hash"],
    )
    assert recorded["notice_hash"] == body["content_hash"]


async def test_a_put_replaces_the_whole_draft(client: Any, catalog: Catalog) -> None:
    """PUT replaces: an omitted `change_kind` is the default (`material`), as on creation."""
    draft = await _draft(catalog, _FIXED)
    replaced = await client.put(
        _path(draft["version"]), json={"texts": _TYPO["texts"]}, headers=catalog.h
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["texts"] == _TYPO["texts"]  # the German text is gone
    assert replaced.json()["change_kind"] == "material"


async def test_version_1_stays_material_when_corrected(client: Any, catalog: Catalog) -> None:
    await catalog.post("/v1/notices", {"key": "second", "purposes": ["ads"]})
    first = await catalog.post("/v1/notices/second/versions", _TYPO)
    fixed = await client.put(_path(1, "second"), json=_FIXED, headers=catalog.h)
    assert fixed.status_code == 200, fixed.text
    assert (fixed.json()["id"], fixed.json()["change_kind"]) == (first["id"], "material")


async def test_putting_the_same_draft_again_changes_nothing(
    client: Any, catalog: Catalog, db: Database
) -> None:
    draft = await _draft(catalog)
    first = await client.put(_path(2), json=_FIXED, headers=catalog.h)
    again = await client.put(_path(2), json=_FIXED, headers=catalog.h)
    assert (first.status_code, again.status_code) == (200, 200), again.text
    assert again.json() == first.json()
    # One leaf for the creation, one for the one change: a repeat is not a change.
    leaves = await _admin_leaves(db, catalog.tenant.id, draft["id"])
    assert [x.operation for x in leaves] == ["create", "update"]


async def test_a_bad_correction_is_refused_and_changes_nothing(
    client: Any, catalog: Catalog
) -> None:
    draft = await _draft(catalog)
    bad: dict[str, Any]
    for bad in (
        {"texts": {}},
        {"texts": {"EN": {"title": "x", "body": "y"}}},
        {**_FIXED, "extra": 1},
        {"texts": _FIXED["texts"], "change_kind": "cosmetic"},
    ):
        answer = await client.put(_path(2), json=bad, headers=catalog.h)
        _assert_problem(answer, 400, "validation-error")
    assert (await _versions(client, catalog))[0] == draft


# -- deleting a draft ---------------------------------------------------------------------------
async def test_a_deleted_draft_is_gone_and_another_can_be_drafted(
    client: Any, catalog: Catalog
) -> None:
    draft = await _draft(catalog)
    deleted = await client.delete(_path(2), headers=catalog.h)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == draft  # the draft as it was
    assert [v["version"] for v in await _versions(client, catalog)] == [1]
    _assert_problem(await client.delete(_path(2), headers=catalog.h), 404, "not-found")
    _assert_problem(await client.put(_path(2), json=_FIXED, headers=catalog.h), 404, "not-found")
    # A consent cannot name it, and the next draft takes its number.
    refused = await client.post(
        "/v1/consents",
        json={
            "identifier": {"type": "device", "value": "deleted-draft"},
            "choices": [{"purpose": "analytics", "choice": "granted"}],
            "notice_version_id": draft["id"],
            "surface": "banner",
            "channel": "web",
        },
        headers=catalog.h,
    )
    _assert_problem(refused, 400, "validation-error")
    assert refused.json()["errors"] == [
        {"field": "notice_version_id", "message": "no such notice version"}
    ]
    again = await _draft(catalog, _FIXED)
    assert again["version"] == 2
    assert again["id"] != draft["id"]


async def test_a_retried_delete_with_its_key_gets_the_first_answer(
    client: Any, catalog: Catalog
) -> None:
    draft = await _draft(catalog)
    headers = {**catalog.h, "Idempotency-Key": "drop-draft-2"}
    first = await client.delete(_path(2), headers=headers)
    again = await client.delete(_path(2), headers=headers)
    assert (first.status_code, again.status_code) == (200, 200), again.text
    assert first.json() == again.json() == draft
    # The same key for another request is refused.
    reused = await client.put(_path(2), json=_FIXED, headers=headers)
    _assert_problem(reused, 422, "idempotency-key-reused")


async def test_a_retried_correction_with_its_key_gets_the_first_answer(
    client: Any, catalog: Catalog
) -> None:
    await _draft(catalog)
    headers = {**catalog.h, "Idempotency-Key": "fix-draft-2"}
    first = await client.put(_path(2), json=_FIXED, headers=headers)
    assert first.status_code == 200, first.text
    await catalog.post(f"{_path(2)}/publish", None, status=200)
    again = await client.put(_path(2), json=_FIXED, headers=headers)
    assert again.status_code == 200, again.text  # not 409: the first answer, replayed
    assert again.json() == first.json()


# -- published versions and drafts in consents ---------------------------------------------------
async def test_a_published_version_can_be_neither_replaced_nor_deleted(
    client: Any, catalog: Catalog
) -> None:
    before = await _versions(client, catalog)
    replaced = await client.put(_path(1), json=_FIXED, headers=catalog.h)
    _assert_problem(replaced, 409, "conflict")
    assert "published" in replaced.json()["detail"]
    deleted = await client.delete(_path(1), headers=catalog.h)
    _assert_problem(deleted, 409, "conflict")
    assert "published" in deleted.json()["detail"]
    assert await _versions(client, catalog) == before


async def test_an_unknown_notice_or_version_is_not_found(client: Any, catalog: Catalog) -> None:
    for path in (_path(1, "nope"), _path(9)):
        _assert_problem(await client.delete(path, headers=catalog.h), 404, "not-found")
        answer = await client.put(path, json=_FIXED, headers=catalog.h)
        _assert_problem(answer, 404, "not-found")
    for path in (_path(0), _path(2**40)):  # no version can have that number
        _assert_problem(await client.delete(path, headers=catalog.h), 400, "validation-error")
        answer = await client.put(path, json=_FIXED, headers=catalog.h)
        _assert_problem(answer, 400, "validation-error")


async def test_another_tenants_draft_is_not_found(
    client: Any, catalog: Catalog, other_tenant: Tenant
) -> None:
    draft = await _draft(catalog)
    for answer in (
        await client.put(_path(2), json=_FIXED, headers=other_tenant.headers),
        await client.delete(_path(2), headers=other_tenant.headers),
    ):
        _assert_problem(answer, 404, "not-found")
    assert (await _versions(client, catalog))[0] == draft


async def test_a_consent_never_names_a_draft_even_a_corrected_one(
    client: Any, catalog: Catalog
) -> None:
    draft = await _draft(catalog)
    body = {
        "identifier": {"type": "device", "value": "draft-consent"},
        "choices": [{"purpose": "analytics", "choice": "granted"}],
        "notice_version_id": draft["id"],
        "surface": "banner",
        "channel": "web",
    }
    for _ in range(2):
        refused = await client.post("/v1/consents", json=body, headers=catalog.h)
        _assert_problem(refused, 400, "validation-error")
        assert refused.json()["errors"] == [
            {"field": "notice_version_id", "message": "this notice version is not published"}
        ]
        fixed = await client.put(_path(2), json=_FIXED, headers=catalog.h)
        assert fixed.status_code == 200, fixed.text


# -- the audit log --------------------------------------------------------------------------------
async def test_draft_changes_are_logged_and_the_log_verifies(
    client: Any, catalog: Catalog, db: Database, integrator: Integrator, signer: NoteSigner
) -> None:
    """Creating, correcting and deleting a draft are admin changes in the audit log, as
    creating and publishing are; a draft deleted unpublished leaves a log that verifies."""
    thrown = await _draft(catalog)
    assert (await client.put(_path(2), json=_FIXED, headers=catalog.h)).status_code == 200
    assert (await client.delete(_path(2), headers=catalog.h)).status_code == 200
    kept = await _draft(catalog, _FIXED)
    fixed = await client.put(_path(2), json=_TYPO, headers=catalog.h)
    assert fixed.status_code == 200
    await catalog.post(f"{_path(2)}/publish", None, status=200)

    thrown_ops = [x.operation for x in await _admin_leaves(db, catalog.tenant.id, thrown["id"])]
    assert thrown_ops == ["create", "update", "delete"]
    kept_leaves = await _admin_leaves(db, catalog.tenant.id, kept["id"])
    # created, corrected, then published
    assert [x.operation for x in kept_leaves] == ["create", "update", "update"]
    assert {x.entity for x in kept_leaves} == {"notice_version"}

    await integrator.integrate_all()
    reports = await verify_all(db, signer.verifier, catalog.tenant.id)
    assert len(reports) == 1
    assert reports[0].ok, reports[0].problems


# -- the API document -----------------------------------------------------------------------------
async def test_both_operations_are_documented_with_their_problems(client: Any) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    item = doc["paths"]["/v1/notices/{key}/versions/{version}"]
    for method in ("put", "delete"):
        op = item[method]
        assert op["summary"]
        assert "draft" in op["description"].lower()
        for status in ("404", "409"):
            answer = op["responses"][status]
            assert set(answer["content"]) == {PROBLEM}, (method, status)
        assert "200" in op["responses"]
    assert "requestBody" in item["put"]
    assert "requestBody" not in item["delete"]
