"""Tenant isolation holds in the schema itself (migrations/0015): a ledger row can reference a
subject, event, notice version or property of its own tenant only, even when written as the
database owner, whom row-level security does not restrict. Each case writes the same row twice:
with the tenant's own reference (accepted, so the statement is otherwise valid) and with
another tenant's (refused by a foreign key); nothing is kept either way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from consent.db.database import Database
from tests.conftest import Catalog, Tenant

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Side:
    tenant: UUID
    subject: UUID
    event: UUID
    notice_version: UUID
    property: UUID
    preference_event: UUID


async def _side(db: Database, catalog: Catalog, device: str) -> Side:
    written = await catalog.consent(
        identifier={"type": "device", "value": device},
        choices=[{"purpose": "ads", "choice": "granted"}],
    )
    await catalog.post(
        "/v1/preferences",
        {
            "subject_id": written["subject_id"],
            "items": [{"kind": "channel", "key": "email", "value": "opt_in"}],
            "surface": "portal",
            "channel": "web",
        },
    )
    prop = await catalog.post("/v1/properties", {"name": f"site {device}", "kind": "website"})
    async with db.pool.acquire() as conn:
        row = await conn.fetchrow(
            "select e.id as event, e.notice_version_id,"
            " (select id from preference_event p where p.subject_id = e.subject_id) as pref"
            " from consent_event e where e.subject_id = $1",
            UUID(written["subject_id"]),
        )
    assert row is not None
    return Side(
        tenant=UUID(catalog.tenant.id),
        subject=UUID(written["subject_id"]),
        event=row["event"],
        notice_version=row["notice_version_id"],
        property=UUID(prop["id"]),
        preference_event=row["pref"],
    )


async def _other_catalog(client: Any, other_tenant: Tenant) -> Catalog:
    theirs = Catalog(client, other_tenant)
    await theirs.post("/v1/purposes", {"key": "ads", "name": "Ads", "legal_basis": "consent"})
    await theirs.post("/v1/notices", {"key": "main", "purposes": ["ads"]})
    await theirs.publish_version()
    return theirs


_EVENT = (
    "insert into consent_event (tenant_id, subject_id, occurred_at, choices, notice_version_id,"
    " surface, channel, method, property_id) values ($1, $2, now(), '[]', $3, 'banner', 'web',"
    " 'explicit', $4)"
)
_STATE = (
    "insert into consent_state (tenant_id, subject_id, purpose_key, choice, event_id,"
    " occurred_at, event_seq, notice_version_id) values ($1, $2, 'other', 'granted', $3, now(),"
    " 1, $4)"
)
_PREF_EVENT = (
    "insert into preference_event (tenant_id, subject_id, occurred_at, items, surface, channel,"
    " method, property_id) values ($1, $2, now(), '[]', 'portal', 'web', 'explicit', $3)"
)
_PREF_STATE = (
    "insert into preference_state (tenant_id, subject_id, kind, key, value, event_id,"
    " occurred_at, event_seq) values ($1, $2, 'topic', 'other', 'opt_in', $3, now(), 1)"
)
_IDENTIFIER = (
    "insert into subject_identifier (tenant_id, id_type, lookup_hmac, subject_id, value_enc)"
    " values ($1, 'device', $3, $2, '\\x00')"
)
_MERGE = "insert into subject (tenant_id, merged_into) values ($1, $2)"


def _cases(mine: Side, theirs: Side) -> dict[str, tuple[str, list[Any], list[Any]]]:
    """name -> (statement, arguments with my references, the same with one of theirs)."""
    digest = bytes(range(32))
    return {
        "event of their subject": (
            _EVENT,
            [mine.tenant, mine.subject, mine.notice_version, mine.property],
            [mine.tenant, theirs.subject, mine.notice_version, mine.property],
        ),
        "event under their notice version": (
            _EVENT,
            [mine.tenant, mine.subject, mine.notice_version, mine.property],
            [mine.tenant, mine.subject, theirs.notice_version, mine.property],
        ),
        "event on their property": (
            _EVENT,
            [mine.tenant, mine.subject, mine.notice_version, mine.property],
            [mine.tenant, mine.subject, mine.notice_version, theirs.property],
        ),
        "state of their subject": (
            _STATE,
            [mine.tenant, mine.subject, mine.event, mine.notice_version],
            [mine.tenant, theirs.subject, mine.event, mine.notice_version],
        ),
        "state from their event": (
            _STATE,
            [mine.tenant, mine.subject, mine.event, mine.notice_version],
            [mine.tenant, mine.subject, theirs.event, mine.notice_version],
        ),
        "state under their notice version": (
            _STATE,
            [mine.tenant, mine.subject, mine.event, mine.notice_version],
            [mine.tenant, mine.subject, mine.event, theirs.notice_version],
        ),
        "preference event of their subject": (
            _PREF_EVENT,
            [mine.tenant, mine.subject, mine.property],
            [mine.tenant, theirs.subject, mine.property],
        ),
        "preference state from their event": (
            _PREF_STATE,
            [mine.tenant, mine.subject, mine.preference_event],
            [mine.tenant, mine.subject, theirs.preference_event],
        ),
        "identifier of their subject": (
            _IDENTIFIER,
            [mine.tenant, mine.subject, digest],
            [mine.tenant, theirs.subject, digest],
        ),
        "subject linked into theirs": (
            _MERGE,
            [mine.tenant, mine.subject],
            [mine.tenant, theirs.subject],
        ),
    }


async def _attempt(db: Database, statement: str, args: list[Any]) -> None:
    """Run `statement` as the owner and roll it back; raises what the database raised."""
    async with db.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute(statement, *args)
        finally:
            await transaction.rollback()


async def test_no_ledger_row_can_reference_another_tenants_rows(
    client: Any, catalog: Catalog, other_tenant: Tenant, db: Database
) -> None:
    mine = await _side(db, catalog, "mine")
    theirs = await _side(db, await _other_catalog(client, other_tenant), "theirs")
    async with db.pool.acquire() as conn:
        before = await conn.fetchval(
            "select row(count(*), (select count(*) from consent_state))::text from consent_event"
        )
    refused: dict[str, str] = {}
    for name, (statement, own, other) in _cases(mine, theirs).items():
        await _attempt(db, statement, own)  # valid with my own references
        with pytest.raises(asyncpg.ForeignKeyViolationError) as caught:
            await _attempt(db, statement, other)
        refused[name] = caught.value.constraint_name or ""
    assert refused == {
        "event of their subject": "consent_event_subject_id_fkey",
        "event under their notice version": "consent_event_notice_version_id_fkey",
        "event on their property": "consent_event_property_id_fkey",
        "state of their subject": "consent_state_subject_id_fkey",
        "state from their event": "consent_state_event_id_fkey",
        "state under their notice version": "consent_state_notice_version_id_fkey",
        "preference event of their subject": "preference_event_subject_id_fkey",
        "preference state from their event": "preference_state_event_id_fkey",
        "identifier of their subject": "subject_identifier_subject_id_fkey",
        "subject linked into theirs": "subject_merged_into_fkey",
    }
    async with db.pool.acquire() as conn:
        after = await conn.fetchval(
            "select row(count(*), (select count(*) from consent_state))::text from consent_event"
        )
    assert after == before
