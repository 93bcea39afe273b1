"""A key revoked by another worker process stops at once here too, not after the key cache's
5 seconds: the revocation's notification makes every listening process forget it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
from consent.tenancy.schemas import ApiKeyCreate, ApiKeyCreated
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


async def _reader_key(db: Database, keyring: KeyRing, tenant_id: UUID) -> ApiKeyCreated:
    service = TenancyService(db, keyring, tenant_id)
    return await service.create_api_key(ApiKeyCreate(name="reader", scopes=["read"]), None)


@asynccontextmanager
async def _following_revocations(db: Database) -> AsyncIterator[None]:
    """This process follows revocations, as a worker of the service does, while the block runs."""
    listener = Listener(db)
    follow_revocations(listener)
    listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), timeout=10)
        yield
    finally:
        await listener.aclose()


async def test_a_key_revoked_by_another_process_is_refused_at_once(
    db: Database, keyring: KeyRing, tenant: Tenant
) -> None:
    tenant_id = UUID(tenant.id)
    created = await _reader_key(db, keyring, tenant_id)
    header = f"Bearer {created.secret}"
    async with _following_revocations(db):
        who = await authenticate(db, header)  # verified, and cached for 5 seconds
        assert who.key_id == created.key.key_id
        parsed = parse_api_key(created.secret)
        assert parsed is not None
        assert key_cache.get(*parsed) is not None
        await _revoked_elsewhere(db, tenant_id, created.key.id)
        assert await _refused_within(db, header, 1.0)


async def test_a_listener_that_starts_listening_forgets_every_cached_key(
    db: Database, keyring: KeyRing, tenant: Tenant
) -> None:
    """A revocation sent while no connection listened (before the first, or while a lost one
    is taken again: the same callback) is not missed: listening begins with an empty cache."""
    tenant_id = UUID(tenant.id)
    created = await _reader_key(db, keyring, tenant_id)
    header = f"Bearer {created.secret}"
    await authenticate(db, header)
    await _revoked_elsewhere(db, tenant_id, created.key.id)  # nobody listening yet
    async with _following_revocations(db):
        with pytest.raises(Unauthorized):
            await authenticate(db, header)
