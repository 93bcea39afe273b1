"""Tenancy operations: create tenants (operators), properties and API keys (tenant admins)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg
import msgspec

from consent.audit.outbox import AuditWriter
from consent.audit.policy_leaves import record_policy_for_new_tenant
from consent.consents.service import write_contexts
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.errors import Conflict, NotFound, ValidationFailed
from consent.idempotency import run_idempotent
from consent.locales import Localized
from consent.pagination import check_limit, decode_cursor, encode_cursor, page_of
from consent.settings_defaults import DEFAULT_AUDIT_ORIGIN
from consent.tenancy.auth import BANNER_SCOPES, key_cache
from consent.tenancy.keys import generate_api_key
from consent.tenancy.repository import Q, TenancyRepository
from consent.tenancy.schemas import (
    ApiKey,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPage,
    Property,
    PropertyCreate,
    PropertyPage,
    Tenant,
    TenantSettings,
)

__all__ = [
    "TenancyService",
    "TenantSummary",
    "create_tenant_with_admin_key",
    "issue_admin_key",
    "list_tenants",
]

_enc = msgspec.json.Encoder()


class TenantSummary(msgspec.Struct, frozen=True):
    """A tenant as `consent tenant list` shows it (never a secret)."""

    id: UUID
    name: str
    created_at: datetime
    active_keys: int


async def create_tenant_with_admin_key(
    db: Database, name: str, audit: AuditWriter | None = None
) -> tuple[Tenant, str]:
    """Operator action (CLI): a new tenant and its first admin key (returned once). Its audit
    log starts with the policy revision served last (`record_policy_for_new_tenant`)."""
    name = name.strip()
    if not 1 <= len(name) <= 200:  # noqa: PLR2004
        raise ValidationFailed.field("name", Localized("name-length"))
    async with db.system() as conn:
        repo = TenancyRepository(conn)
        tenant = await repo.insert_tenant(name)
        full, key_id, digest = generate_api_key()
        await repo.insert_api_key(tenant.id, None, key_id, digest, "initial admin", ["admin"], [])
        writer = audit or AuditWriter(DEFAULT_AUDIT_ORIGIN)
        await record_policy_for_new_tenant(conn, writer, tenant.id)
    return tenant, full


async def issue_admin_key(db: Database, tenant_id: UUID, name: str) -> str:
    """Operator action (CLI): a new admin key for an existing tenant, e.g. when its admins
    lost theirs (returned once; raises NotFound for an unknown tenant)."""
    name = name.strip()
    if not 1 <= len(name) <= 200:  # noqa: PLR2004
        raise ValidationFailed.field("name", Localized("name-length"))
    async with db.system() as conn:
        repo = TenancyRepository(conn)
        if await repo.get_tenant(tenant_id) is None:
            raise NotFound(Localized("no-tenant", tenant_id=tenant_id))
        full, key_id, digest = generate_api_key()
        await repo.insert_api_key(tenant_id, None, key_id, digest, name, ["admin"], [])
    return full


async def list_tenants(db: Database) -> list[TenantSummary]:
    """Operator action (CLI): every tenant, oldest first."""
    async with db.system() as conn:
        rows = await conn.fetch(Q.list_tenants)
    return [msgspec.convert(dict(r), TenantSummary) for r in rows]


class TenancyService:
    def __init__(self, db: Database, keyring: KeyRing, tenant_id: UUID) -> None:
        self.db = db
        self.keyring = keyring  # for the keyed request hashes of idempotency records
        self.tenant_id = tenant_id

    async def tenant(self) -> Tenant:
        async with self.db.tenant(self.tenant_id) as conn:
            tenant = await TenancyRepository(conn).get_tenant(self.tenant_id)
        if tenant is None:
            raise NotFound(Localized("tenant-not-found"))
        return tenant

    async def update_settings(
        self, data: TenantSettings, *, actor: str, audit: AuditWriter
    ) -> TenantSettings:
        """Replace the tenant's settings; the change is an `admin.changed` audit leaf. This
        process sees it at once, other workers within the write-context TTL (2 s)."""
        async with self.db.tenant(self.tenant_id) as conn:
            settings = await TenancyRepository(conn).update_settings(self.tenant_id, data)
            await audit.admin_changed(
                conn,
                self.tenant_id,
                actor=actor,
                entity="tenant_settings",
                entity_id=str(self.tenant_id),
                operation="update",
                change=settings,
            )
        write_contexts.clear()
        return settings

    async def create_property(self, data: PropertyCreate, idem_key: str | None) -> Property:
        async with self.db.tenant(self.tenant_id) as conn:
            repo = TenancyRepository(conn)

            async def produce() -> Property:
                try:
                    async with conn.transaction():
                        return await repo.insert_property(
                            self.tenant_id,
                            data.name,
                            data.kind,
                            [origin.lower() for origin in data.allowed_origins],
                        )
                except asyncpg.UniqueViolationError:
                    raise Conflict(Localized("property-exists")) from None

            result, _ = await run_idempotent(
                conn, self.keyring, self.tenant_id, idem_key, _enc.encode(data), Property, produce
            )
            return result

    async def list_properties(self, cursor: str | None, limit: int) -> PropertyPage:
        check_limit(limit)
        async with self.db.tenant(self.tenant_id) as conn:
            rows = await TenancyRepository(conn).list_properties(decode_cursor(cursor), limit + 1)
        items, next_cursor = page_of(rows, limit, lambda p: encode_cursor(p.created_at, p.id))
        return PropertyPage(items=items, next_cursor=next_cursor)

    async def create_api_key(self, data: ApiKeyCreate, idem_key: str | None) -> ApiKeyCreated:
        """Under an Idempotency-Key only the key's public part is stored as the answer: a retry
        gets a 409 naming the key created, never the secret (kept nowhere) nor a second key."""
        if data.allowed_origins and set(data.scopes) - BANNER_SCOPES:
            # A banner key is published in web pages and `Origin` is forged by any non-browser
            # client: the origin list protects nothing. Reading would give every visitor every
            # customer's consents (lookup by e-mail), deciding their status; admin the tenant.
            raise ValidationFailed.field("scopes", Localized("banner-key-scopes"))
        secret: list[str] = []
        async with self.db.tenant(self.tenant_id) as conn:
            repo = TenancyRepository(conn)

            async def produce() -> ApiKey:
                if data.property_id and await repo.get_property(data.property_id) is None:
                    raise ValidationFailed.field("property_id", Localized("no-such-property"))
                full, key_id, digest = generate_api_key()
                secret.append(full)
                return await repo.insert_api_key(
                    self.tenant_id,
                    data.property_id,
                    key_id,
                    digest,
                    data.name,
                    sorted(set(data.scopes)),
                    # Browsers send scheme and host in lower case; the check compares exactly.
                    [origin.lower() for origin in data.allowed_origins],
                )

            key, replayed = await run_idempotent(
                conn, self.keyring, self.tenant_id, idem_key, _enc.encode(data), ApiKey, produce
            )
        if replayed:
            raise Conflict(Localized("key-secret-shown-once", key_id=key.id))
        return ApiKeyCreated(key=key, secret=secret[0])

    async def list_api_keys(self, cursor: str | None, limit: int) -> ApiKeyPage:
        check_limit(limit)
        async with self.db.tenant(self.tenant_id) as conn:
            rows = await TenancyRepository(conn).list_api_keys(decode_cursor(cursor), limit + 1)
        items, next_cursor = page_of(rows, limit, lambda k: encode_cursor(k.created_at, k.id))
        return ApiKeyPage(items=items, next_cursor=next_cursor)

    async def revoke_api_key(self, api_key_id: UUID) -> ApiKey:
        async with self.db.tenant(self.tenant_id) as conn:
            key = await TenancyRepository(conn).revoke_api_key(api_key_id)
        if key is None:
            raise NotFound(Localized("no-such-api-key"))
        key_cache.forget(key.key_id)
        return key
