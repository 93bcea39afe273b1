"""Truncated IP and user agent are kept with a consent only when the tenant enables it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from consent.app import create_app
from consent.config import Settings
from consent.consents.history import evidence_context
from consent.crypto.datakeys import DataKeys, EncryptedForErasedSubject
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from tests.conftest import Catalog, Tenant
from tests.support.peer import client_from

pytestmark = pytest.mark.integration

VISITOR_IP = "203.0.113.77"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Evidence/1.0"


@pytest.fixture
async def visitor(
    settings: Settings, db: Database, keyring: KeyRing
) -> AsyncIterator[AsyncTestClient[Any]]:
    """The app as a visitor at VISITOR_IP reaches it directly."""
    async with client_from(create_app(settings, keyring=keyring), VISITOR_IP) as c:
        yield c


@pytest.fixture
async def behind_proxy(
    settings: Settings, db: Database, keyring: KeyRing
) -> AsyncIterator[AsyncTestClient[Any]]:
    """The app behind a load balancer at 10.0.0.2, trusted by CONSENT_TRUSTED_PROXIES."""
    trusting = msgspec.structs.replace(settings, trusted_proxies="10.0.0.0/24")
    async with client_from(create_app(trusting, keyring=keyring), "10.0.0.2") as c:
        yield c


async def _catalog(client: Any, tenant: Tenant) -> Catalog:
    catalog = Catalog(client, tenant)
    await catalog.post("/v1/purposes", {"key": "ads", "name": "Ads", "legal_basis": "consent"})
    await catalog.post("/v1/notices", {"key": "main", "purposes": ["ads"]})
    await catalog.publish_version()
    return catalog


def _banner_consent(catalog: Catalog, device: str) -> dict[str, Any]:
    return {
        "identifier": {"type": "device", "value": device},
        "choices": [{"purpose": "ads", "choice": "granted"}],
        "surface": "banner",
        "channel": "web",
        "notice_version_id": catalog.versions[1],
    }


async def _evidence(db: Database, keyring: KeyRing, tenant_id: str, event_id: str) -> Any:
    async with db.system() as conn:
        row = await conn.fetchrow(
            "select subject_id, evidence_enc from consent_event where id = $1", UUID(event_id)
        )
        assert row is not None
        if row["evidence_enc"] is None:
            return None
        tenant, subject = UUID(tenant_id), row["subject_id"]
        dek = await DataKeys(keyring).get(conn, tenant, subject)
        context = evidence_context(b"consent-evidence", UUID(event_id))
        plain = DataKeys.decrypt(dek, tenant, subject, row["evidence_enc"], context)
        return msgspec.json.decode(plain)


async def test_network_evidence_only_when_the_tenant_enables_it(
    visitor: Any, tenant: Tenant, db: Database, keyring: KeyRing
) -> None:
    catalog = await _catalog(visitor, tenant)
    headers = {**tenant.headers, "user-agent": BROWSER}
    body = _banner_consent(catalog, "cookie-ev")
    me = (await visitor.get("/v1/tenant", headers=tenant.headers)).json()
    assert me["settings"] == {"store_network_evidence": False}
    off = await visitor.post("/v1/consents", json=body, headers=headers)
    assert off.status_code == 201, off.text
    assert await _evidence(db, keyring, tenant.id, off.json()["event_id"]) is None

    changed = await visitor.put(
        "/v1/tenant/settings", json={"store_network_evidence": True}, headers=tenant.headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"store_network_evidence": True}
    me = (await visitor.get("/v1/tenant", headers=tenant.headers)).json()
    assert me["settings"] == {"store_network_evidence": True}

    on = await visitor.post("/v1/consents", json=body, headers=headers)
    assert on.status_code == 201, on.text
    kept = await _evidence(db, keyring, tenant.id, on.json()["event_id"])
    assert kept == {"ip_prefix": "203.0.113.0", "user_agent": BROWSER}
    async with db.system() as conn:
        stored = await conn.fetchval(
            "select evidence_enc from consent_event where id = $1", UUID(on.json()["event_id"])
        )
        audited = await conn.fetch(
            "select leaf_bytes from audit_event where kind = 'admin.changed' and tenant_id = $1",
            UUID(tenant.id),
        )
    assert VISITOR_IP.encode() not in stored
    assert BROWSER.encode() not in stored
    assert sum(b'"entity":"tenant_settings"' in bytes(r["leaf_bytes"]) for r in audited) == 1

    # Erasure destroys the key the evidence is sealed under.
    subject = on.json()["subject_id"]
    assert (await visitor.delete(f"/v1/subjects/{subject}", headers=tenant.headers)).is_success
    with pytest.raises(EncryptedForErasedSubject):
        await _evidence(db, keyring, tenant.id, on.json()["event_id"])

    reset = await visitor.put("/v1/tenant/settings", json={}, headers=tenant.headers)
    assert reset.json() == {"store_network_evidence": False}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"store_network_evidence": "yes"}, "store_network_evidence"),
        ({"keep_ip_forever": True}, "keep_ip_forever"),
    ],
)
async def test_bad_settings_are_refused_and_change_nothing(
    client: Any, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    response = await client.put("/v1/tenant/settings", json=body, headers=tenant.headers)
    assert response.status_code == 400, response.text
    assert field in response.text
    me = (await client.get("/v1/tenant", headers=tenant.headers)).json()
    assert me["settings"] == {"store_network_evidence": False}


async def test_only_an_admin_key_changes_settings(client: Any, tenant: Tenant) -> None:
    made = await client.post(
        "/v1/api-keys", json={"name": "crm", "scopes": ["write", "read"]}, headers=tenant.headers
    )
    writer = {"Authorization": f"Bearer {made.json()['secret']}"}
    response = await client.put(
        "/v1/tenant/settings", json={"store_network_evidence": True}, headers=writer
    )
    assert response.status_code == 403
    assert response.json()["type"] == "/problems/forbidden"


async def test_behind_a_trusted_proxy_the_visitor_address_is_kept(
    behind_proxy: Any, tenant: Tenant, db: Database, keyring: KeyRing
) -> None:
    catalog = await _catalog(behind_proxy, tenant)
    enabled = await behind_proxy.put(
        "/v1/tenant/settings", json={"store_network_evidence": True}, headers=tenant.headers
    )
    assert enabled.status_code == 200
    body = _banner_consent(catalog, "cookie-proxied")
    # The visitor claims 1.2.3.4; the load balancer appends the address it saw.
    forwarded = {"x-forwarded-for": f"1.2.3.4, {VISITOR_IP}", "user-agent": BROWSER}
    written = await behind_proxy.post(
        "/v1/consents", json=body, headers={**tenant.headers, **forwarded}
    )
    assert written.status_code == 201, written.text
    kept = await _evidence(db, keyring, tenant.id, written.json()["event_id"])
    assert kept == {"ip_prefix": "203.0.113.0", "user_agent": BROWSER}


async def test_history_shows_the_network_evidence_kept_with_each_event(
    visitor: Any, tenant: Tenant
) -> None:
    """The truncated IP and user agent are proof a regulator asks for: the history shows them
    for an event recorded while the tenant kept them, and null for one recorded before."""
    catalog = await _catalog(visitor, tenant)
    headers = {**tenant.headers, "user-agent": BROWSER}
    body = _banner_consent(catalog, "cookie-history")
    before = await visitor.post("/v1/consents", json=body, headers=headers)
    assert before.status_code == 201, before.text
    on = await visitor.put(
        "/v1/tenant/settings", json={"store_network_evidence": True}, headers=tenant.headers
    )
    assert on.status_code == 200, on.text
    kept = await visitor.post("/v1/consents", json=body, headers=headers)
    assert kept.status_code == 201, kept.text

    subject = kept.json()["subject_id"]
    history = await visitor.get(f"/v1/subjects/{subject}/consents/history", headers=tenant.headers)
    assert history.status_code == 200, history.text
    network = {e["event_id"]: e["network"] for e in history.json()["items"]}
    assert network == {
        kept.json()["event_id"]: {"ip_prefix": "203.0.113.0", "user_agent": BROWSER},
        before.json()["event_id"]: None,
    }


async def test_preferences_keep_network_evidence_as_consents_do(
    visitor: Any, tenant: Tenant, db: Database
) -> None:
    """Preferences have the same proof as consents: with `store_network_evidence` on, the
    truncated IP and user agent are kept (encrypted) and shown in the preference history."""
    headers = {**tenant.headers, "user-agent": BROWSER}
    body = {
        "identifier": {"type": "device", "value": "cookie-prefs"},
        "items": [{"kind": "channel", "key": "email", "value": "opt_in"}],
        "surface": "portal",
        "channel": "web",
    }
    before = await visitor.post("/v1/preferences", json=body, headers=headers)
    assert before.status_code == 201, before.text
    on = await visitor.put(
        "/v1/tenant/settings", json={"store_network_evidence": True}, headers=tenant.headers
    )
    assert on.status_code == 200, on.text
    kept = await visitor.post("/v1/preferences", json=body, headers=headers)
    assert kept.status_code == 201, kept.text

    subject = kept.json()["subject_id"]
    url = f"/v1/subjects/{subject}/preferences/history"
    history = await visitor.get(url, headers=tenant.headers)
    assert history.status_code == 200, history.text
    network = {e["event_id"]: e["network"] for e in history.json()["items"]}
    assert network == {
        kept.json()["event_id"]: {"ip_prefix": "203.0.113.0", "user_agent": BROWSER},
        before.json()["event_id"]: None,
    }
    async with db.system() as conn:
        stored = await conn.fetchval(
            "select evidence_enc from preference_event where id = $1", UUID(kept.json()["event_id"])
        )
    assert VISITOR_IP.encode() not in stored
    assert BROWSER.encode() not in stored
