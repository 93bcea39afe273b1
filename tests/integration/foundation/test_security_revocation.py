"""A key revoked by another worker process stops at once here too, not after the key cache's
5 seconds: the revocation's notification makes every listening process forget it."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest

from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.db.listening import Listener
from consent.errors import Unauthorized
from consent.tenancy.auth import authenticate, key_cache
from consent.tenancy.keys import parse_api_key
from consent.tenancy.repository import TenancyRepository
from consent.tenancy.revocations import follow_revocations
from consent.tenancy.schemas import ApiKeyCreate
from consent.tenancy.service import TenancyService
from tests.conftest import Tenant

pytestmark = pytest.mark.integration


async def _revoked_elsewhere(db: Database, tenant_id: UUID, api_key_id: UUID) -> None:
    """What another worker does on `DELETE /v1/api-keys/{id}` (its own key cache is not this
    process's)."""
    async with db.tenant(tenant_id) as conn:
        assert await TenancyRepository(conn).revoke_api_key(api_key_id) is not None


async def _refused_within(db: Database, header: str, seconds: float) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        try:
            await authenticate(db, header)
        except Unauthorized:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_key_revoked_by_another_process_is_refused_at_once(
    db: Database, keyring: KeyRing, tenant: Tenant
) -> None:
    tenant_id = UUID(tenant.id)
    service = TenancyService(db, keyring, tenant_id)
    created = await service.create_api_key(ApiKeyCreate(name="reader", scopes=["read"]), None)
    header = f"Bearer {created.secret}"
    listener = Listener(db)
    follow_revocations(listener)
    listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), timeout=10)
        who = await authenticate(db, header)  # verified, and cached for 5 seconds
        assert who.key_id == created.key.key_id
        parsed = parse_api_key(created.secret)
        assert parsed is not None
        assert key_cache.get(*parsed) is not None
        await _revoked_elsewhere(db, tenant_id, created.key.id)
        assert await _refused_within(db, header, 1.0)
    finally:
        await listener.aclose()


async def test_a_listener_back_after_losing_its_connection_forgets_every_cached_key(
    db: Database, keyring: KeyRing, tenant: Tenant
) -> None:
    """A notification may have been missed while no connection listened."""
    tenant_id = UUID(tenant.id)
    service = TenancyService(db, keyring, tenant_id)
    created = await service.create_api_key(ApiKeyCreate(name="reader", scopes=["read"]), None)
    header = f"Bearer {created.secret}"
    await authenticate(db, header)
    await _revoked_elsewhere(db, tenant_id, created.key.id)  # nobody listening yet
    listener = Listener(db)
    follow_revocations(listener)
    listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), timeout=10)
        with pytest.raises(Unauthorized):
            await authenticate(db, header)
    finally:
        await listener.aclose()
