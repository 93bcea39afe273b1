"""Catalog operations. Published notice versions are immutable; only a draft can be published,
replaced or deleted."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Literal, TypeVar
from uuid import UUID

import asyncpg
import msgspec

from consent.audit.outbox import AuditWriter
from consent.catalog.schemas import (
    IdentifierType,
    IdentifierTypeCreate,
    IdentifierTypePage,
    Notice,
    NoticeCreate,
    NoticePage,
    NoticeText,
    NoticeVersion,
    NoticeVersionCreate,
    NoticeVersionPage,
    NoticeVersionUpdate,
    Purpose,
    PurposeCreate,
    PurposePage,
    Vendor,
    VendorCreate,
    VendorPage,
)
from consent.crypto.keys import KeyRing
from consent.db.database import Conn, Database
from consent.db.sql import SqlFile
from consent.errors import Conflict, NotFound, ValidationFailed
from consent.idempotency import run_idempotent
from consent.locales import Localized
from consent.pagination import (
    check_limit,
    decode_key_cursor,
    decode_seq_cursor,
    encode_key_cursor,
    encode_seq_cursor,
    page_of,
)
from consent.settings_defaults import DEFAULT_AUDIT_ORIGIN
from consent.subjects.identifiers import BUILTIN_TYPES
from consent.timestamps import past_time_errors

__all__ = ["CatalogService", "content_hash", "missing_purposes"]

Q = SqlFile.beside(__file__)
_sorted = msgspec.json.Encoder(order="sorted")
_MAX_VERSION = 2**31 - 1  # notice_version.version is an integer


def content_hash(texts: dict[str, NoticeText]) -> bytes:
    """SHA-256 of the canonical (sorted-key) JSON of a notice version's texts."""
    return hashlib.sha256(_sorted.encode(texts)).digest()


async def missing_purposes(conn: Conn, keys: list[str]) -> list[str]:
    found = {r["key"] for r in await conn.fetch(Q.existing_purpose_keys, keys)}
    return sorted(set(keys) - found)


_Keyed = TypeVar("_Keyed", Purpose, Notice, Vendor)
_T = TypeVar("_T")


def _key(item: Purpose | Notice) -> str:
    return item.key


def _refuse_repeats(purposes: list[str]) -> None:
    """400 naming the first purpose listed a second time."""
    seen: set[str] = set()
    for i, key in enumerate(purposes):
        if key in seen:
            raise ValidationFailed.field(f"purposes[{i}]", Localized("listed-twice", key=key))
        seen.add(key)


def _refuse_bad_shown_since(shown_since: datetime | None) -> None:
    """400 when a version's first showing is not a time in the past with a zone."""
    errors = past_time_errors("shown_since", shown_since, datetime.now(UTC))
    if errors:
        raise ValidationFailed.field(errors[0].field, errors[0].message)


def _row(row: asyncpg.Record | None) -> dict[str, object]:
    if row is None:
        raise RuntimeError("expected a row")
    return dict(row)


class CatalogService:
    def __init__(
        self,
        db: Database,
        keyring: KeyRing,
        tenant_id: UUID,
        *,
        actor: str = "system",
        audit: AuditWriter | None = None,
    ) -> None:
        self.db = db
        self.keyring = keyring  # for the keyed request hashes of idempotency records
        self.tenant_id = tenant_id
        self.actor = actor
        self.audit = audit or AuditWriter(DEFAULT_AUDIT_ORIGIN)

    async def _changed(
        self,
        conn: Conn,
        entity: str,
        entity_id: str,
        operation: Literal["create", "update", "delete"],
        change: msgspec.Struct,
    ) -> None:
        """An admin change is a leaf of the audit log, in the transaction that makes it."""
        await self.audit.admin_changed(
            conn,
            self.tenant_id,
            actor=self.actor,
            entity=entity,
            entity_id=entity_id,
            operation=operation,
            change=change,
        )

    # -- purposes ------------------------------------------------------------------------------
    async def _by_key(
        self,
        query: str,
        struct: type[_Keyed],
        cursor: str | None,
        limit: int,
        key_of: Callable[[_Keyed], str],
    ) -> tuple[list[_Keyed], str | None]:
        """A page of a list ordered by a unique text key (`query` takes the key after which to
        start and how many rows to read)."""
        after = decode_key_cursor(cursor)
        async with self.db.tenant(self.tenant_id) as conn:
            rows = await conn.fetch(query, after, check_limit(limit) + 1)
        return page_of(
            [msgspec.convert(dict(r), struct) for r in rows],
            limit,
            lambda item: encode_key_cursor(key_of(item)),
        )

    async def _create_once(
        self,
        idem_key: str | None,
        kind: bytes,
        data: msgspec.Struct,
        result_type: type[_T],
        produce: Callable[[Conn], Awaitable[_T]],
    ) -> _T:
        """Run a create in one tenant transaction, once per `Idempotency-Key`: a retry with the
        same key and body gets the first answer instead of the 409 its first attempt causes."""
        async with self.db.tenant(self.tenant_id) as conn:
            fingerprint = kind + b":" + msgspec.json.encode(data)
            result, _ = await run_idempotent(
                conn,
                self.keyring,
                self.tenant_id,
                idem_key,
                fingerprint,
                result_type,
                lambda: produce(conn),
            )
            return result

    async def create_purpose(self, data: PurposeCreate, idem_key: str | None = None) -> Purpose:
        if data.strictly_necessary and data.legal_basis == "consent":
            raise ValidationFailed.field("legal_basis", Localized("necessary-not-consent"))

        async def produce(conn: Conn) -> Purpose:
            try:
                row = await conn.fetchrow(
                    Q.insert_purpose,
                    self.tenant_id,
                    data.key,
                    data.name,
                    data.description,
                    data.legal_basis,
                    data.max_age_days,
                    data.strictly_necessary,
                    data.sensitive,
                )
            except asyncpg.UniqueViolationError:
                raise Conflict(Localized("purpose-exists", key=data.key)) from None
            purpose = msgspec.convert(_row(row), Purpose)
            await self._changed(conn, "purpose", purpose.key, "create", purpose)
            return purpose

        return await self._create_once(idem_key, b"purpose", data, Purpose, produce)

    async def list_purposes(self, cursor: str | None, limit: int) -> PurposePage:
        items, next_cursor = await self._by_key(Q.list_purposes, Purpose, cursor, limit, _key)
        return PurposePage(items=items, next_cursor=next_cursor)

    async def get_purpose(self, key: str) -> Purpose:
        async with self.db.tenant(self.tenant_id) as conn:
            row = await conn.fetchrow(Q.get_purpose, key)
        if row is None:
            raise NotFound(Localized("no-purpose", key=key))
        return msgspec.convert(dict(row), Purpose)

    # -- notices -------------------------------------------------------------------------------
    async def create_notice(self, data: NoticeCreate, idem_key: str | None = None) -> Notice:
        _refuse_repeats(data.purposes)

        async def produce(conn: Conn) -> Notice:
            missing = await missing_purposes(conn, data.purposes)
            if missing:
                raise ValidationFailed.field(
                    "purposes", Localized("unknown-purposes", purposes=", ".join(missing))
                )
            try:
                row = await conn.fetchrow(Q.insert_notice, self.tenant_id, data.key, data.purposes)
            except asyncpg.UniqueViolationError:
                raise Conflict(Localized("notice-exists", key=data.key)) from None
            notice = msgspec.convert(_row(row), Notice)
            await self._changed(conn, "notice", notice.key, "create", notice)
            return notice

        return await self._create_once(idem_key, b"notice", data, Notice, produce)

    async def list_notices(self, cursor: str | None, limit: int) -> NoticePage:
        items, next_cursor = await self._by_key(Q.list_notices, Notice, cursor, limit, _key)
        return NoticePage(items=items, next_cursor=next_cursor)

    async def add_version(
        self, notice_key: str, data: NoticeVersionCreate, idem_key: str | None = None
    ) -> NoticeVersion:
        _refuse_bad_shown_since(data.shown_since)
        async with self.db.tenant(self.tenant_id) as conn:

            async def produce() -> NoticeVersion:
                return await self._add_version(conn, notice_key, data)

            fingerprint = b"version:" + notice_key.encode() + b":" + msgspec.json.encode(data)
            result, _ = await run_idempotent(
                conn, self.keyring, self.tenant_id, idem_key, fingerprint, NoticeVersion, produce
            )
            return result

    async def _add_version(
        self, conn: Conn, notice_key: str, data: NoticeVersionCreate
    ) -> NoticeVersion:
        notice_id = await conn.fetchval(Q.lock_notice, notice_key)
        if notice_id is None:
            raise NotFound(Localized("no-notice", key=notice_key))
        latest = await conn.fetchrow(Q.latest_version, notice_id)
        if latest is not None and latest["published_at"] is None:
            raise Conflict(Localized("version-draft-open", version=latest["version"]))
        version = 1 if latest is None else latest["version"] + 1
        texts = msgspec.to_builtins(data.texts)
        await conn.execute(
            Q.insert_notice_version,
            self.tenant_id,
            notice_id,
            version,
            texts,
            content_hash(data.texts),
            "material" if version == 1 else data.change_kind,
            data.shown_since,
        )
        created = await self._version(conn, notice_key, version)
        await self._changed(conn, "notice_version", str(created.id), "create", created)
        return created

    async def publish(
        self, notice_key: str, version: int, idem_key: str | None = None
    ) -> NoticeVersion:
        async with self.db.tenant(self.tenant_id) as conn:

            async def produce() -> NoticeVersion:
                return await self._publish(conn, notice_key, version)

            fingerprint = f"publish:{notice_key}:{version}".encode()
            result, _ = await run_idempotent(
                conn, self.keyring, self.tenant_id, idem_key, fingerprint, NoticeVersion, produce
            )
            return result

    async def _publish(self, conn: Conn, notice_key: str, version: int) -> NoticeVersion:
        notice_id = await conn.fetchval(Q.lock_notice, notice_key)
        if notice_id is None:
            raise NotFound(Localized("no-notice", key=notice_key))
        current = await self._version(conn, notice_key, version)
        if current.published_at is not None:
            raise Conflict(Localized("version-already-published", version=version))
        material = int(await conn.fetchval(Q.latest_published_material, notice_id))
        if current.change_kind == "material":
            material += 1
        await conn.execute(Q.publish_version, notice_id, version, material)
        published = await self._version(conn, notice_key, version)
        await self._changed(conn, "notice_version", str(published.id), "update", published)
        return published

    async def _draft(self, conn: Conn, notice_key: str, version: int) -> tuple[UUID, NoticeVersion]:
        """The notice's id (locked, as drafting and publishing lock it) and its version
        `version`, which must be a draft: 404 when either is missing, 409 when published."""
        notice_id = await conn.fetchval(Q.lock_notice, notice_key)
        if notice_id is None:
            raise NotFound(Localized("no-notice", key=notice_key))
        current = await self._version(conn, notice_key, version)
        if current.published_at is not None:
            raise Conflict(Localized("version-immutable", version=version))
        return notice_id, current

    async def replace_draft(
        self,
        notice_key: str,
        version: int,
        data: NoticeVersionUpdate,
        idem_key: str | None = None,
    ) -> NoticeVersion:
        """A draft's texts, change kind and first showing replaced, its content hash computed
        again. The same content again changes nothing (and logs nothing)."""
        _refuse_bad_shown_since(data.shown_since)
        async with self.db.tenant(self.tenant_id) as conn:

            async def produce() -> NoticeVersion:
                return await self._replace_draft(conn, notice_key, version, data)

            asked = f"replace-version:{notice_key}:{version}:".encode()
            fingerprint = asked + msgspec.json.encode(data)
            result, _ = await run_idempotent(
                conn, self.keyring, self.tenant_id, idem_key, fingerprint, NoticeVersion, produce
            )
            return result

    async def _replace_draft(
        self, conn: Conn, notice_key: str, version: int, data: NoticeVersionUpdate
    ) -> NoticeVersion:
        notice_id, current = await self._draft(conn, notice_key, version)
        change_kind = "material" if version == 1 else data.change_kind
        digest = content_hash(data.texts)
        if (current.content_hash, current.change_kind, current.shown_since) == (
            digest.hex(),
            change_kind,
            data.shown_since,
        ):
            return current
        texts = msgspec.to_builtins(data.texts)
        await conn.execute(
            Q.replace_draft, notice_id, version, texts, digest, change_kind, data.shown_since
        )
        replaced = await self._version(conn, notice_key, version)
        await self._changed(conn, "notice_version", str(replaced.id), "update", replaced)
        return replaced

    async def delete_draft(
        self, notice_key: str, version: int, idem_key: str | None = None
    ) -> NoticeVersion:
        """A draft deleted; returns it as it was."""
        async with self.db.tenant(self.tenant_id) as conn:

            async def produce() -> NoticeVersion:
                notice_id, current = await self._draft(conn, notice_key, version)
                await conn.execute(Q.delete_draft, notice_id, version)
                await self._changed(conn, "notice_version", str(current.id), "delete", current)
                return current

            fingerprint = f"delete-version:{notice_key}:{version}".encode()
            result, _ = await run_idempotent(
                conn, self.keyring, self.tenant_id, idem_key, fingerprint, NoticeVersion, produce
            )
            return result

    async def versions(self, notice_key: str, cursor: str | None, limit: int) -> NoticeVersionPage:
        before = decode_seq_cursor(cursor)
        if before is not None and not 1 <= before <= _MAX_VERSION:
            raise ValidationFailed.field("cursor", Localized("cursor-not-ours"))
        async with self.db.tenant(self.tenant_id) as conn:
            rows = await conn.fetch(Q.notice_versions, notice_key, before, check_limit(limit) + 1)
            if not rows and await conn.fetchrow(Q.get_notice, notice_key) is None:
                raise NotFound(Localized("no-notice", key=notice_key))
        items, next_cursor = page_of(
            [msgspec.convert(dict(r), NoticeVersion) for r in rows],
            limit,
            lambda v: encode_seq_cursor(v.version),
        )
        return NoticeVersionPage(items=items, next_cursor=next_cursor)

    async def _version(self, conn: Conn, notice_key: str, version: int) -> NoticeVersion:
        # A number no version can have (the column is an integer) is not one to look up.
        row = (
            None
            if version > _MAX_VERSION
            else await conn.fetchrow(Q.get_version, notice_key, version)
        )
        if row is None:
            raise NotFound(Localized("notice-has-no-version", key=notice_key, version=version))
        return msgspec.convert(dict(row), NoticeVersion)

    # -- vendors and identifier types ----------------------------------------------------------
    async def create_vendor(self, data: VendorCreate, idem_key: str | None = None) -> Vendor:
        _refuse_repeats(data.purposes)

        async def produce(conn: Conn) -> Vendor:
            missing = await missing_purposes(conn, data.purposes)
            if missing:
                raise ValidationFailed.field(
                    "purposes", Localized("unknown-purposes", purposes=", ".join(missing))
                )
            try:
                row = await conn.fetchrow(
                    Q.insert_vendor,
                    self.tenant_id,
                    data.name,
                    data.purposes,
                    data.url,
                    data.tcf_vendor_id,
                )
            except asyncpg.UniqueViolationError:
                raise Conflict(Localized("vendor-exists", name=data.name)) from None
            vendor = msgspec.convert(_row(row), Vendor)
            await self._changed(conn, "vendor", str(vendor.id), "create", vendor)
            return vendor

        return await self._create_once(idem_key, b"vendor", data, Vendor, produce)

    async def list_vendors(self, cursor: str | None, limit: int) -> VendorPage:
        items, next_cursor = await self._by_key(
            Q.list_vendors, Vendor, cursor, limit, lambda v: v.name
        )
        return VendorPage(items=items, next_cursor=next_cursor)

    async def create_identifier_type(
        self, data: IdentifierTypeCreate, idem_key: str | None = None
    ) -> IdentifierType:
        if data.key in BUILTIN_TYPES:
            raise Conflict(Localized("builtin-identifier-type", key=data.key))

        async def produce(conn: Conn) -> IdentifierType:
            try:
                row = await conn.fetchrow(
                    Q.insert_identifier_type, self.tenant_id, data.key, data.description
                )
            except asyncpg.UniqueViolationError:
                raise Conflict(Localized("identifier-type-exists", key=data.key)) from None
            created = msgspec.convert(_row(row), IdentifierType)
            await self._changed(conn, "identifier_type", created.key, "create", created)
            return created

        kind = b"identifier_type"
        return await self._create_once(idem_key, kind, data, IdentifierType, produce)

    async def list_identifier_types(self, cursor: str | None, limit: int) -> IdentifierTypePage:
        """Built-in and custom types in one list by key."""
        after = decode_key_cursor(cursor)
        async with self.db.tenant(self.tenant_id) as conn:
            rows = await conn.fetch(Q.list_identifier_types, after, check_limit(limit) + 1)
        builtin = [
            IdentifierType(key=k, description="built-in", builtin=True)
            for k in BUILTIN_TYPES
            if after is None or k > after
        ]
        custom = [msgspec.convert(dict(r), IdentifierType) for r in rows]
        items, next_cursor = page_of(
            sorted(builtin + custom, key=lambda t: t.key), limit, lambda t: encode_key_cursor(t.key)
        )
        return IdentifierTypePage(items=items, next_cursor=next_cursor)
