"""An event's network evidence is its own: a ciphertext copied onto another event of the same
subject is not shown as that event's proof.

The evidence (truncated IP, user agent) is sealed under the subject's data key, with the event
id in its associated data. Before that binding (migration 0025) it was sealed under the kind's
context alone, and an operator could copy one event's evidence onto another: the history showed
one visit's address and browser as another choice's proof.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from consent.app import create_app
from consent.config import Settings
from consent.consents.history import HistoryReader
from consent.crypto.datakeys import DataKeys
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.ids import uuid7
from tests.conftest import Catalog, Tenant
from tests.support.peer import client_from

pytestmark = pytest.mark.integration


@pytest.fixture
async def visitor(
    settings: Settings, db: Database, keyring: KeyRing
) -> AsyncIterator[AsyncTestClient[Any]]:
    async with client_from(create_app(settings, keyring=keyring), "203.0.113.77") as c:
        yield c


async def _two_visits(client: Any, tenant: Tenant, path: str, body: dict[str, Any]) -> Any:
    """Two writes about one device from two browsers; returns (subject, [event ids])."""
    enabled = await client.put(
        "/v1/tenant/settings", json={"store_network_evidence": True}, headers=tenant.headers
    )
    assert enabled.status_code == 200
    events = []
    for browser in ("Browser/One", "Browser/Two"):
        made = await client.post(path, json=body, headers={**tenant.headers, "user-agent": browser})
        assert made.status_code == 201, made.text
        events.append(made.json()["event_id"])
    return made.json()["subject_id"], events


async def _copy_evidence(db: Database, table: str, source: str, target: str) -> None:
    """What an operator with full database access could do (the append-only trigger off)."""
    async with db.system() as conn:
        await conn.execute("set local session_replication_role = replica")
        await conn.execute(
            f"update {table} set evidence_enc = (select evidence_enc from {table} where id = $1)"
            " where id = $2",
            UUID(source),
            UUID(target),
        )


async def _networks(client: Any, tenant: Tenant, url: str) -> dict[str, Any]:
    history = await client.get(url, headers=tenant.headers)
    assert history.status_code == 200, history.text
    return {e["event_id"]: e.get("network") for e in history.json()["items"]}


async def test_a_consent_events_evidence_copied_onto_another_is_not_shown(
    visitor: Any, tenant: Tenant, db: Database
) -> None:
    catalog = Catalog(visitor, tenant)
    await catalog.post("/v1/purposes", {"key": "ads", "name": "Ads", "legal_basis": "consent"})
    await catalog.post("/v1/notices", {"key": "main", "purposes": ["ads"]})
    await catalog.publish_version()
    body = {
        "identifier": {"type": "device", "value": "cookie-bound"},
        "choices": [{"purpose": "ads", "choice": "granted"}],
        "surface": "banner",
        "channel": "web",
        "notice_version_id": catalog.versions[1],
    }
    subject, (first, second) = await _two_visits(visitor, tenant, "/v1/consents", body)
    url = f"/v1/subjects/{subject}/consents/history"
    before = await _networks(visitor, tenant, url)
    assert before[second]["user_agent"] == "Browser/Two"
    await _copy_evidence(db, "consent_event", first, second)
    after = await _networks(visitor, tenant, url)
    assert after[first]["user_agent"] == "Browser/One"
    assert after[second] is None  # not Browser/One's visit passed off as this choice's proof


async def test_a_preference_events_evidence_copied_onto_another_is_not_shown(
    visitor: Any, tenant: Tenant, db: Database
) -> None:
    body = {
        "identifier": {"type": "device", "value": "cookie-prefs"},
        "items": [{"kind": "channel", "key": "email", "value": "opt_in"}],
        "surface": "portal",
        "channel": "web",
    }
    subject, (first, second) = await _two_visits(visitor, tenant, "/v1/preferences", body)
    url = f"/v1/subjects/{subject}/preferences/history"
    await _copy_evidence(db, "preference_event", first, second)
    after = await _networks(visitor, tenant, url)
    assert after[first]["user_agent"] == "Browser/One"
    assert after[second] is None


async def test_evidence_sealed_before_the_binding_still_reads_but_only_for_older_events(
    visitor: Any, tenant: Tenant, db: Database, keyring: KeyRing
) -> None:
    """A row written before migration 0025 holds evidence sealed without its event id: history
    still shows it, for an event made before the binding began, and for no later event."""
    body = {
        "identifier": {"type": "device", "value": "cookie-legacy"},
        "items": [{"kind": "channel", "key": "sms", "value": "opt_out"}],
        "surface": "portal",
        "channel": "web",
    }
    subject_text, _ = await _two_visits(visitor, tenant, "/v1/preferences", body)
    tenant_id, subject = UUID(tenant.id), UUID(subject_text)
    proof = msgspec.json.encode({"ip_prefix": "198.51.100.0", "user_agent": "Old/1.0"})
    async with db.tenant(tenant_id) as conn:
        datakeys = DataKeys(keyring)
        dek = await datakeys.get(conn, tenant_id, subject)
        legacy = DataKeys.encrypt(dek, tenant_id, subject, proof, b"preference-evidence")
        reader = HistoryReader(conn, datakeys, tenant_id, b"preference-evidence")
        old_event = uuid7(int(datetime(2025, 3, 1, tzinfo=UTC).timestamp() * 1e9))
        old = await reader.fields(
            {"event_id": old_event, "subject_id": subject, "evidence_enc": legacy, "seq": 1}
        )
        new = await reader.fields(
            {"event_id": uuid7(), "subject_id": subject, "evidence_enc": legacy, "seq": 2}
        )
    assert msgspec.to_builtins(old["network"]) == {
        "ip_prefix": "198.51.100.0",
        "user_agent": "Old/1.0",
    }
    assert "network" not in new
