"""Tenancy rows: named SQL from queries.sql, records converted to Structs."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import msgspec

from consent.db.database import Conn
from consent.db.sql import SqlFile
from consent.pagination import Cursor
from consent.tenancy.schemas import ApiKey, Property, Tenant, TenantSettings

__all__ = ["Q", "TenancyRepository"]

Q = SqlFile.beside(__file__)


def _one(row: asyncpg.Record | None) -> dict[str, object]:
    if row is None:  # a RETURNING clause always yields a row; None means a broken invariant
        raise RuntimeError("expected a row")
    return dict(row)


def _page_args(cursor: Cursor | None) -> tuple[object, object]:
    return (cursor.at, cursor.id) if cursor else (None, None)


class TenancyRepository:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def insert_tenant(self, name: str) -> Tenant:
        return msgspec.convert(_one(await self.conn.fetchrow(Q.insert_tenant, name)), Tenant)

    async def get_tenant(self, tenant_id: UUID) -> Tenant | None:
        row = await self.conn.fetchrow(Q.get_tenant, tenant_id)
        return msgspec.convert(dict(row), Tenant) if row else None

    async def update_settings(self, tenant_id: UUID, settings: TenantSettings) -> TenantSettings:
        row = await self.conn.fetchrow(Q.update_settings, tenant_id, msgspec.to_builtins(settings))
        return msgspec.convert(_one(row)["settings"], TenantSettings)

    async def insert_property(
        self, tenant_id: UUID, name: str, kind: str, origins: list[str]
    ) -> Property:
        row = await self.conn.fetchrow(Q.insert_property, tenant_id, name, kind, origins)
        return msgspec.convert(_one(row), Property)

    async def get_property(self, property_id: UUID) -> Property | None:
        row = await self.conn.fetchrow(Q.get_property, property_id)
        return msgspec.convert(dict(row), Property) if row else None

    async def list_properties(self, cursor: Cursor | None, limit: int) -> list[Property]:
        rows = await self.conn.fetch(Q.list_properties, *_page_args(cursor), limit)
        return [msgspec.convert(dict(r), Property) for r in rows]

    async def insert_api_key(
        self,
        tenant_id: UUID,
        property_id: UUID | None,
        key_id: str,
        digest: bytes,
        name: str,
        scopes: list[str],
        origins: list[str],
    ) -> ApiKey:
        row = await self.conn.fetchrow(
            Q.insert_api_key, tenant_id, property_id, key_id, digest, name, scopes, origins
        )
        return msgspec.convert(_one(row), ApiKey)

    async def list_api_keys(self, cursor: Cursor | None, limit: int) -> list[ApiKey]:
        rows = await self.conn.fetch(Q.list_api_keys, *_page_args(cursor), limit)
        return [msgspec.convert(dict(r), ApiKey) for r in rows]

    async def revoke_api_key(self, api_key_id: UUID) -> ApiKey | None:
        """Revoke the key and tell every process (when the transaction commits)."""
        row = await self.conn.fetchrow(Q.revoke_api_key, api_key_id)
        if row is None:
            return None
        await self.conn.execute(Q.notify_revoked, row["key_id"])
        return msgspec.convert(dict(row), ApiKey)

    async def find_api_key(self, key_id: str) -> asyncpg.Record | None:
        return await self.conn.fetchrow(Q.find_api_key, key_id)
