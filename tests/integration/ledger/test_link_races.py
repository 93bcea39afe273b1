"""Links racing writes, links and erasures: nobody waits forever, nothing is lost, no 500."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import msgspec
import pytest

from consent.audit.outbox import AuditWriter
from consent.consents.schemas import ConsentCreate
from consent.consents.service import ConsentService
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.preferences.schemas import PreferenceCreate
from consent.preferences.service import PreferenceService
from consent.settings_defaults import DEFAULT_AUDIT_ORIGIN
from consent.subjects.resolver import SubjectResolver
from consent.subjects.schemas import IdentifierIn, SubjectRef
from tests.conftest import Catalog

pytestmark = pytest.mark.integration


def _ref(id_type: str, value: str) -> SubjectRef:
    return SubjectRef(identifier=IdentifierIn(type=id_type, value=value))


async def test_a_link_racing_the_first_write_of_its_new_identifier_merges_it(
    client: Any, catalog: Catalog, db: Database, keyring: KeyRing
) -> None:
    """A device is linked to an e-mail address the ledger has not seen, while a consent under
    that e-mail address (its first) is being written: the link waits for the write and then
    merges its new subject, instead of failing on the identifier the write just created."""
    device = await catalog.consent(
        identifier={"type": "device", "value": "cookie-race"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )
    tenant_id = UUID(catalog.tenant.id)
    resolver = SubjectResolver(keyring)
    email = _ref("email", "first.sight@example.com")
    writing = db.tenant(tenant_id)
    conn = await writing.__aenter__()
    try:
        # The write's first statement has created the e-mail's subject; it has not committed.
        created = await resolver.resolve_for_write(conn, tenant_id, email)

        async def link() -> Any:
            async with db.tenant(tenant_id) as other:
                return await resolver.link(
                    other,
                    tenant_id,
                    [_ref("device", "cookie-race"), email],
                    AuditWriter(DEFAULT_AUDIT_ORIGIN),
                )

        linking = asyncio.ensure_future(link())
        await asyncio.sleep(0.3)  # the link waits for the write's identifier
        assert not linking.done()
    finally:
        await writing.__aexit__(None, None, None)  # the write commits
    linked = await asyncio.wait_for(linking, 10)
    assert str(linked.subject_id) == device["subject_id"]
    assert linked.merged == [created.id]
    found = await client.post(
        "/v1/subjects/lookup",
        json={"identifier": {"type": "email", "value": "first.sight@example.com"}},
        headers=catalog.h,
    )
    assert found.status_code == 200, found.text
    assert found.json()["subject_id"] == device["subject_id"]


async def test_links_both_ways_racing_writes_lose_nothing_and_never_deadlock(
    catalog: Catalog, db: Database, keyring: KeyRing
) -> None:
    """Six devices of one person, linked pairwise in both directions at once while consents
    and preferences are written under each device and under each device's first subject id:
    every link and every write is acknowledged (no deadlock, no error), every acknowledged
    event is in the survivor's history, its state is the fold of that history, and every
    identifier and every old subject id finds the survivor."""
    tenant_id = UUID(catalog.tenant.id)
    audit = AuditWriter(DEFAULT_AUDIT_ORIGIN)
    consents = ConsentService(db, keyring, tenant_id, audit)
    preferences = PreferenceService(db, keyring, tenant_id, audit)
    resolver = SubjectResolver(keyring)
    devices = [f"device-{i}" for i in range(6)]
    first_ids = []
    for i, device in enumerate(devices):
        written = await catalog.consent(
            identifier={"type": "device", "value": device},
            choices=[{"purpose": "analytics", "choice": "granted" if i % 2 else "withdrawn"}],
        )
        first_ids.append(written["subject_id"])

    def who(i: int) -> dict[str, Any]:
        if i % 2:
            return {"subject_id": first_ids[i % 6]}
        return {"identifier": {"type": "device", "value": devices[i % 6]}}

    async def consent(i: int) -> None:
        choice = {
            "purpose": ("ads", "analytics")[i % 2],
            "choice": ("granted", "denied")[i % 3 % 2],
        }
        body = {**who(i), "choices": [choice], "surface": "banner", "channel": "web"}
        body["notice_version_id"] = catalog.versions[1]
        await consents.record(msgspec.convert(body, ConsentCreate))

    async def preference(i: int) -> None:
        item = {"kind": "channel", "key": "email", "value": ("opt_in", "opt_out")[i % 2]}
        body = {**who(i), "items": [item], "surface": "portal", "channel": "web"}
        await preferences.record(msgspec.convert(body, PreferenceCreate))

    async def link(a: int, b: int) -> None:
        async with db.tenant(tenant_id) as conn:
            await resolver.link(
                conn,
                tenant_id,
                [_ref("device", devices[a]), SubjectRef(subject_id=UUID(first_ids[b]))],
                audit,
            )

    work = []
    for n in range(60):
        a, b = n % 6, (n + 1) % 6  # a chain through all six, each pair both ways
        work += [link(a, b), link(b, a)]
        work += [consent(n), preference(n)]
    await asyncio.wait_for(asyncio.gather(*work), 60)

    async with db.tenant(tenant_id) as conn:
        survivors = {
            await resolver.resolve(conn, tenant_id, _ref("device", d), create=False)
            for d in devices
        } | {
            await resolver.resolve(conn, tenant_id, SubjectRef(subject_id=UUID(s)), create=False)
            for s in first_ids
        }
        assert len(survivors) == 1
        survivor = survivors.pop()
        assert survivor is not None
        members = await resolver.group(conn, survivor)
        stored = await conn.fetchval(
            "select count(*) from consent_event where subject_id = any($1::uuid[])", members
        )
        kept = await conn.fetchval(
            "select count(*) from preference_event where subject_id = any($1::uuid[])", members
        )
        state = "select purpose_key, choice, event_id from consent_state order by 1"
        before = [tuple(r) for r in await conn.fetch(state)]
        await resolver.rebuild_state(conn, tenant_id, survivor)  # the fold of the history
        assert [tuple(r) for r in await conn.fetch(state)] == before
    assert stored == 6 + 60
    assert kept == 60
