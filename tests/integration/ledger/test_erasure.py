"""Erasure: the person is forgotten for good, the pseudonymous proof stays and still verifies."""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from uuid import UUID

import msgspec
import pytest

from consent.audit.checkpoint import NoteSigner
from consent.audit.integrator import Integrator
from consent.audit.outbox import AuditWriter
from consent.audit.verify_db import verify_all
from consent.audit.verify_offline import verify_consistency_notes, verify_inclusion_proof
from consent.consents.schemas import ConsentCreate
from consent.consents.service import ConsentService
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.errors import NotFound
from consent.settings_defaults import DEFAULT_AUDIT_ORIGIN
from consent.subjects.erasure import erase_subject
from consent.subjects.resolver import SubjectResolver
from tests.conftest import Catalog as _Catalog
from tests.conftest import Tenant
from tests.integration.ledger.conftest import Catalog

pytestmark = pytest.mark.integration

EMAIL = {"type": "email", "value": "Erin.Example@Mail.EXAMPLE"}
DEVICE = {"type": "device", "value": "cookie-erin"}


async def _person(client: Any, catalog: Catalog) -> tuple[str, str, str]:
    """A known customer (e-mail) linked with an anonymous device; returns (survivor, other,
    first consent event id)."""
    first, device = await catalog.linked_person(EMAIL, DEVICE)
    return first["subject_id"], device["subject_id"], first["event_id"]


async def _rows(db: Database, subjects: list[str]) -> dict[str, int]:
    ids = [UUID(s) for s in subjects]
    async with db.system() as conn:
        return {
            table: await conn.fetchval(
                f"select count(*) from {table} where subject_id = any($1::uuid[])",
                ids,
            )
            for table in (
                "subject_key",
                "subject_identifier",
                "audit_subject_token",
                "consent_state",
                "preference_state",
            )
        } | {
            "audit_evidence": await conn.fetchval(
                "select count(*) from audit_evidence where event_uuid in "
                "(select event_uuid from audit_event where subject_id = any($1::uuid[]))",
                ids,
            )
        }


async def test_erasure_forgets_the_person_and_every_proof_still_verifies(
    client: Any, catalog: Catalog, db: Database, integrator: Integrator, signer: NoteSigner
) -> None:
    survivor, other, first_event = await _person(client, catalog)
    await integrator.integrate_all()
    before = (await client.get("/v1/audit/checkpoint", headers=catalog.h)).text
    assert all(n > 0 for n in (await _rows(db, [survivor, other])).values())

    # Either subject id of the linked group erases the whole group.
    response = await client.delete(f"/v1/subjects/{other}", headers=catalog.h)
    assert response.status_code == 200, response.text
    erased = response.json()
    assert erased["subject_id"] == survivor
    assert sorted(erased["erased_subjects"]) == sorted([survivor, other])
    assert len(erased["audit_events"]) == 2

    # Keys, identifier mappings, tokens, evidence and state are gone; the subjects are marked.
    assert await _rows(db, [survivor, other]) == dict.fromkeys(
        (
            "subject_key",
            "subject_identifier",
            "audit_subject_token",
            "consent_state",
            "preference_state",
            "audit_evidence",
        ),
        0,
    )
    async with db.system() as conn:
        marked = await conn.fetchval(
            "select count(*) from subject where id = any($1::uuid[]) and erased_at is not null",
            [UUID(survivor), UUID(other)],
        )
        events_kept = await conn.fetchval(
            "select count(*) from consent_event where subject_id = any($1::uuid[])",
            [UUID(survivor), UUID(other)],
        )
    assert marked == 2
    assert events_kept == 2  # pseudonymous proof of what was chosen stays

    # The person is unknown everywhere, like a subject that never existed.
    for subject in (survivor, other):
        for path in ("consents", "consents/history", "preferences", "activity"):
            got = await client.get(f"/v1/subjects/{subject}/{path}", headers=catalog.h)
            assert got.status_code == 404, (path, got.text)
            assert got.json()["type"] == "/problems/not-found"
    for ident in (EMAIL, DEVICE):
        got = await client.post(
            "/v1/subjects/lookup", json={"identifier": ident}, headers=catalog.h
        )
        assert got.status_code == 404
    again = await client.delete(f"/v1/subjects/{survivor}", headers=catalog.h)
    assert again.status_code == 404
    linked = await client.post(
        "/v1/subjects/link",
        json={
            "subjects": [{"subject_id": survivor}, {"identifier": {"type": "device", "value": "x"}}]
        },
        headers=catalog.h,
    )
    assert linked.status_code == 404
    written = await client.post(
        "/v1/consents",
        json={
            "subject_id": survivor,
            "choices": [{"purpose": "ads", "choice": "granted"}],
            "surface": "banner",
            "channel": "web",
            "notice_version_id": catalog.versions[1],
        },
        headers=catalog.h,
    )
    assert written.status_code == 404

    # Seeing the same e-mail again is a new person, with a new audit token.
    fresh = await catalog.consent(
        identifier=EMAIL, choices=[{"purpose": "ads", "choice": "granted"}]
    )
    assert fresh["subject_id"] not in (survivor, other)

    # The log verifies; the erasure leaves are in it; proofs of earlier events still verify.
    await integrator.integrate_all()
    reports = await verify_all(db, signer.verifier, catalog.tenant.id)
    assert len(reports) == 1
    assert reports[0].problems == []
    vkey = signer.vkey
    for event_id in erased["audit_events"]:
        info = (await client.get(f"/v1/audit/events/{event_id}", headers=catalog.h)).json()
        assert info["kind"] == "subject.erased"
        assert info["leaf_index"] is not None
    info = (await client.get(f"/v1/audit/events/{first_event}", headers=catalog.h)).json()
    proof = await client.get(f"/v1/audit/events/{first_event}/proof", headers=catalog.h)
    assert proof.status_code == 200
    result = verify_inclusion_proof(
        proof.text, base64.b64decode(info["leaf"]), vkey, origin=info["log"]
    )
    assert result.ok, result.reason
    after = (await client.get("/v1/audit/checkpoint", headers=catalog.h)).text
    old_size, new_size = int(before.splitlines()[1]), int(after.splitlines()[1])
    hashes = (
        await client.get(
            "/v1/audit/consistency", params={"from": old_size, "to": new_size}, headers=catalog.h
        )
    ).json()
    consistent = verify_consistency_notes(
        before, after, [base64.b64decode(h) for h in hashes], vkey, origin=info["log"]
    )
    assert consistent.ok, consistent.reason


async def test_a_retried_erasure_gets_the_first_answer(client: Any, catalog: Catalog) -> None:
    survivor, _, _ = await _person(client, catalog)
    headers = {**catalog.h, "Idempotency-Key": "erase-erin-1"}
    first = await client.delete(f"/v1/subjects/{survivor}", headers=headers)
    retry = await client.delete(f"/v1/subjects/{survivor}", headers=headers)
    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json()
    without_key = await client.delete(f"/v1/subjects/{survivor}", headers=catalog.h)
    assert without_key.status_code == 404


async def test_an_erasure_request_by_e_mail_erases_the_person_in_one_call(
    client: Any, catalog: Catalog
) -> None:
    """What an erasure request usually says: 'delete me, I am erin@…' (in any letter case)."""
    survivor, other, _ = await _person(client, catalog)
    ask = {"identifier": {"type": "email", "value": "erin.example@mail.example"}}
    headers = {**catalog.h, "Idempotency-Key": "dsr-4711"}
    erased = await client.post("/v1/subjects/erase", json=ask, headers=headers)
    assert erased.status_code == 200, erased.text
    body = erased.json()
    assert body["subject_id"] == survivor
    assert sorted(body["erased_subjects"]) == sorted([survivor, other])
    assert len(body["audit_events"]) == 2
    for identifier in (EMAIL, DEVICE):  # every linked identifier is forgotten
        await catalog.post("/v1/subjects/lookup", {"identifier": identifier}, status=404)

    retry = await client.post("/v1/subjects/erase", json=ask, headers=headers)
    assert (retry.status_code, retry.json()) == (200, body)
    again = await client.post("/v1/subjects/erase", json=ask, headers=catalog.h)
    assert again.status_code == 404
    assert again.json()["detail"] == "No subject with this identifier."

    bad = await client.post(
        "/v1/subjects/erase",
        json={"identifier": {"type": "email", "value": "not an address"}},
        headers=catalog.h,
    )
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "identifier.value"
    both = await client.post(
        "/v1/subjects/erase", json={**ask, "subject_id": survivor}, headers=catalog.h
    )
    assert both.status_code == 400
    writer = await catalog.post("/v1/api-keys", {"name": "crm", "scopes": ["write", "read"]})
    forbidden = await client.post(
        "/v1/subjects/erase", json=ask, headers={"Authorization": f"Bearer {writer['secret']}"}
    )
    assert forbidden.status_code == 403


async def test_erasure_needs_the_admin_scope_and_stays_in_its_tenant(
    client: Any, catalog: Catalog, other_tenant: Tenant
) -> None:
    survivor, _, _ = await _person(client, catalog)
    theirs = _Catalog(client, other_tenant)
    await theirs.post("/v1/purposes", {"key": "ads", "name": "Ads", "legal_basis": "consent"})
    await theirs.post("/v1/notices", {"key": "main", "purposes": ["ads"]})
    await theirs.publish_version()
    same_person = await theirs.consent(
        identifier=EMAIL, choices=[{"purpose": "ads", "choice": "granted"}]
    )

    writer = await catalog.post("/v1/api-keys", {"name": "crm", "scopes": ["write", "read"]})
    forbidden = await client.delete(
        f"/v1/subjects/{survivor}", headers={"Authorization": f"Bearer {writer['secret']}"}
    )
    assert forbidden.status_code == 403
    foreign = await client.delete(f"/v1/subjects/{survivor}", headers=other_tenant.headers)
    assert foreign.status_code == 404

    assert (await client.delete(f"/v1/subjects/{survivor}", headers=catalog.h)).status_code == 200
    found = await theirs.post("/v1/subjects/lookup", {"identifier": EMAIL}, status=200)
    assert found["subject_id"] == same_person["subject_id"]
    assert [c["purpose"] for c in found["consents"]] == ["ads"]


async def test_writes_racing_an_erasure_leave_nothing_behind(
    client: Any, catalog: Catalog, db: Database, keyring: KeyRing
) -> None:
    """Consent writes to the subject while it is being erased either commit before the erasure
    (and are erased with it) or find no subject: never a state row or key after it."""
    survivor, other, _ = await _person(client, catalog)
    tenant_id = UUID(catalog.tenant.id)
    audit = AuditWriter(DEFAULT_AUDIT_ORIGIN)
    service = ConsentService(db, keyring, tenant_id, audit)

    async def write(i: int) -> str:
        data = msgspec.convert(
            {
                "subject_id": other if i % 2 else survivor,
                "choices": [{"purpose": "ads", "choice": "granted" if i % 3 else "denied"}],
                "surface": "banner",
                "channel": "web",
                "notice_version_id": catalog.versions[1],
            },
            ConsentCreate,
        )
        try:
            await service.record(data)
        except NotFound:
            return "not found"
        return "written"

    async def keep_writing(i: int) -> list[str]:
        """Write until the subject is gone (a write every few milliseconds)."""
        seen: list[str] = []
        for n in range(1000):
            seen.append(await write(i + 2 * n))
            if seen[-1] == "not found":
                break
        return seen

    async def erase() -> None:
        await asyncio.sleep(0.2)  # the writers are under way
        async with db.tenant(tenant_id) as conn:
            await erase_subject(conn, tenant_id, UUID(survivor), SubjectResolver(keyring), audit)

    erasing = asyncio.ensure_future(erase())
    writers = await asyncio.gather(*(keep_writing(i) for i in range(4)))
    await erasing
    for seen in writers:  # each wrote before the erasure and was refused after it
        assert seen[0] == "written"
        assert seen[-1] == "not found"
        assert seen.count("not found") == 1
    assert (await _rows(db, [survivor, other]))["consent_state"] == 0
    assert (await _rows(db, [survivor, other]))["subject_key"] == 0
    got = await client.get(f"/v1/subjects/{survivor}/consents", headers=catalog.h)
    assert got.status_code == 404
