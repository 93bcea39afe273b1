"""Resolve identifiers to subjects (creating them on first sight) and link identities.

Concurrency: writes resolve their subject `for key share`; linking takes a per-tenant advisory
lock and locks the subjects `for update`, so a write racing a link waits and then lands on the
surviving subject. Identifier values are stored only as an HMAC (for lookup) and encrypted
under the owning subject's data key.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Final
from uuid import UUID, uuid4

import asyncpg
import msgspec

from consent.audit.leaf import SubjectLinked
from consent.audit.outbox import AuditWriter
from consent.consents.rules import ChoiceRecord, PreferenceRecord, fold, latest_by
from consent.crypto.datakeys import DataKeys, dek_aad
from consent.crypto.keys import KeyRing
from consent.db.database import Conn, Database
from consent.db.sql import SqlFile
from consent.errors import FieldError, NotFound, ValidationFailed
from consent.ids import uuid7
from consent.locales import Localized, localized
from consent.subjects.identifiers import BUILTIN_TYPES, InvalidIdentifier, normalize
from consent.subjects.schemas import ExportedIdentifier, IdentifierIn, LinkResult, SubjectRef

__all__ = [
    "LookupKey",
    "SubjectResolver",
    "WriteSubject",
    "checked_reference",
]

Q = SqlFile.beside(__file__)
_ONE_OF: Final = Localized("subject-id-or-identifier")
_NO_SUCH_SUBJECT: Final = Localized("no-such-subject")


def _id_context(id_type: str) -> bytes:
    return b"identifier/" + id_type.encode()


class _Normalized(msgspec.Struct, frozen=True):
    type: str
    value: str
    digest: bytes


class _Claimed(Exception):
    """An identifier a link was adding got a subject of its own from a concurrent write."""


class LookupKey(msgspec.Struct, frozen=True, kw_only=True):
    """A subject id, or an identifier type and its keyed HMAC (`SubjectResolver.lookup_key`)."""

    subject_id: UUID | None = None
    id_type: str | None = None
    digest: bytes | None = None


class WriteSubject(msgspec.Struct, frozen=True):
    """A subject about to be written to, with its data key and audit token when known."""

    id: UUID
    dek: bytes | None
    token: bytes | None


def _at(field: str, name: str) -> str:
    """The path of `name` inside the reference at `field` ("": the body's top level)."""
    return f"{field}.{name}" if field else name


def checked_reference(
    subject_id: UUID | None, identifier: IdentifierIn | None
) -> tuple[list[FieldError], str | None]:
    """Problems, found without the database, with a write's top-level reference to its
    subject: exactly one of `subject_id` and `identifier`, and a built-in type's value valid
    (a tenant's own types need its catalogue: `SubjectResolver.identifier_errors`). With them,
    the normalised value of a valid built-in identifier (else None), for
    `SubjectResolver.resolve_for_write` to use instead of normalising again."""
    if (subject_id is None) == (identifier is None):
        return [FieldError("subject_id", _ONE_OF)], None
    if identifier is not None and identifier.type in BUILTIN_TYPES:
        try:
            return [], normalize(identifier.type, identifier.value)
        except InvalidIdentifier as exc:
            return [FieldError("identifier.value", localized(str(exc)))], None
    return [], None


class SubjectResolver:
    """Subject lookups and linking, inside the caller's tenant transaction."""

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring
        self.datakeys = DataKeys(keyring)

    async def identifier_errors(
        self, conn: Conn, tenant_id: UUID, ident: IdentifierIn, field: str = "identifier"
    ) -> list[FieldError]:
        """What `_normalize` would refuse about `ident`, as field errors (none: it is valid)."""
        try:
            await self._normalize(conn, tenant_id, ident, field)
        except ValidationFailed as exc:
            return list(exc.errors or [FieldError(field, exc.detail or "invalid")])
        return []

    async def _normalize(
        self,
        conn: Conn | None,
        tenant_id: UUID,
        ident: IdentifierIn,
        field: str,
        normalized: str | None = None,
    ) -> _Normalized:
        """The normalised identifier and its keyed HMAC. A tenant's own identifier type is
        looked up on `conn` (a tenant transaction), which only built-in types may omit.
        `normalized`: a built-in identifier's value as `checked_reference` already normalised."""
        if normalized is not None and ident.type in BUILTIN_TYPES:
            digest = self.keyring.lookup_digest(str(tenant_id), ident.type, normalized)
            return _Normalized(ident.type, normalized, digest)
        if ident.type not in BUILTIN_TYPES:
            if conn is None:
                raise RuntimeError("a tenant's own identifier type needs a tenant transaction")
            if not await conn.fetchval(
                "select exists (select 1 from identifier_type where key = $1)", ident.type
            ):
                raise ValidationFailed.field(
                    f"{field}.type", Localized("unknown-identifier-type", type=ident.type)
                )
        try:
            value = normalize(ident.type, ident.value)
        except InvalidIdentifier as exc:
            raise ValidationFailed.field(f"{field}.value", localized(str(exc))) from None
        digest = self.keyring.lookup_digest(str(tenant_id), ident.type, value)
        return _Normalized(ident.type, value, digest)

    async def _attach(
        self, conn: Conn, tenant_id: UUID, subject_id: UUID, ident: _Normalized
    ) -> None:
        """Give `ident` to `subject_id` (_Claimed if a concurrent write gave it a subject)."""
        dek = await self.datakeys.ensure(conn, tenant_id, subject_id)
        enc = DataKeys.encrypt(
            dek, tenant_id, subject_id, ident.value.encode(), _id_context(ident.type)
        )
        if (
            await conn.fetchval(
                Q.insert_identifier, tenant_id, ident.type, ident.digest, subject_id, enc
            )
            is None
        ):
            raise _Claimed

    @staticmethod
    def _check_ref(ref: SubjectRef, field: str) -> None:
        if (ref.subject_id is None) == (ref.identifier is None):
            raise ValidationFailed.field(field or "subject_id", _ONE_OF)

    async def resolve(
        self,
        conn: Conn,
        tenant_id: UUID,
        ref: SubjectRef,
        *,
        create: bool,
        field: str = "",
    ) -> UUID | None:
        """The surviving subject of `ref`. Reads take no lock (a read must not write: row locks
        do); `create=True` is the write path (`resolve_for_write`)."""
        if create:
            return (await self.resolve_for_write(conn, tenant_id, ref, field)).id
        self._check_ref(ref, field)
        if ref.subject_id is not None:
            found = await conn.fetchval(Q.resolve_subject_unlocked, ref.subject_id)
            if found is None:
                raise NotFound(_NO_SUCH_SUBJECT)
            return UUID(str(found))
        assert ref.identifier is not None  # noqa: S101 - narrowed by _check_ref
        ident = await self._normalize(conn, tenant_id, ref.identifier, _at(field, "identifier"))
        found = await conn.fetchval(Q.find_identifier_unlocked, tenant_id, ident.type, ident.digest)
        return UUID(str(found)) if found is not None else None

    async def lookup_key(
        self, conn: Conn | None, tenant_id: UUID, ref: SubjectRef, field: str = ""
    ) -> LookupKey:
        """What finds `ref` in the ledger without reading it (a subject id, or an identifier
        type and keyed HMAC), for a query that resolves and reads in one statement. `conn` (a
        tenant transaction) is needed only for a tenant's own identifier types."""
        self._check_ref(ref, field)
        if ref.subject_id is not None:
            return LookupKey(subject_id=ref.subject_id)
        assert ref.identifier is not None  # noqa: S101 - narrowed by _check_ref
        ident = await self._normalize(conn, tenant_id, ref.identifier, _at(field, "identifier"))
        return LookupKey(id_type=ident.type, digest=ident.digest)

    async def lookup_key_alone(
        self, db: Database, tenant_id: UUID, ref: SubjectRef, field: str = ""
    ) -> LookupKey:
        """`lookup_key` for a read outside a transaction: a tenant transaction is opened only
        for a tenant's own identifier type (built-in types need no database)."""
        if ref.identifier is not None and ref.identifier.type not in BUILTIN_TYPES:
            async with db.tenant(tenant_id) as conn:
                return await self.lookup_key(conn, tenant_id, ref, field)
        return await self.lookup_key(None, tenant_id, ref, field)

    def _write_subject(self, tenant_id: UUID, row: asyncpg.Record) -> WriteSubject:
        subject_id = UUID(str(row["id"]))
        dek = None
        if row["dek_wrapped"] is not None:
            dek = self.keyring.unwrap(
                row["kek_id"], bytes(row["dek_wrapped"]), dek_aad(tenant_id, subject_id)
            )
        token = bytes(row["token"]) if row["token"] is not None else None
        return WriteSubject(subject_id, dek, token)

    async def resolve_for_write(
        self,
        conn: Conn,
        tenant_id: UUID,
        ref: SubjectRef,
        field: str = "",
        normalized: str | None = None,
    ) -> WriteSubject:
        """The surviving subject, locked against a concurrent link (`for key share`), with its
        data key and audit token; an identifier seen for the first time creates the subject,
        its identifier, data key and token in one statement. `normalized`: the identifier's
        value as `checked_reference` normalised it (a built-in type), if the caller has it."""
        self._check_ref(ref, field)
        if ref.subject_id is not None:
            row = await conn.fetchrow(Q.write_context_by_id, tenant_id, ref.subject_id)
            if row is None:
                raise NotFound(_NO_SUCH_SUBJECT)
            return self._write_subject(tenant_id, row)
        assert ref.identifier is not None  # noqa: S101 - narrowed by _check_ref
        ident = await self._normalize(
            conn, tenant_id, ref.identifier, _at(field, "identifier"), normalized
        )
        args = (tenant_id, ident.type, ident.digest)
        row = await conn.fetchrow(Q.write_context_by_identifier, *args)
        if row is not None:
            return self._write_subject(tenant_id, row)
        subject_id = uuid4()
        dek = self.keyring.new_data_key()
        kek_id, wrapped = self.keyring.wrap(dek, dek_aad(tenant_id, subject_id))
        value = DataKeys.encrypt(
            dek, tenant_id, subject_id, ident.value.encode(), _id_context(ident.type)
        )
        token = os.urandom(32)
        created = await conn.fetchval(
            Q.create_subject_for_identifier,
            tenant_id,
            subject_id,
            ident.type,
            ident.digest,
            value,
            kek_id,
            wrapped,
            token,
        )
        if created is not None:
            return WriteSubject(subject_id, dek, token)
        # A concurrent writer created it first (and has committed: the insert waited for it).
        row = await conn.fetchrow(Q.write_context_by_identifier, *args)
        if row is None:
            raise RuntimeError("the identifier's subject vanished")
        return self._write_subject(tenant_id, row)

    @staticmethod
    async def _new_subject(conn: Conn, tenant_id: UUID) -> UUID:
        return UUID(str(await conn.fetchval(Q.insert_subject, tenant_id)))

    async def identifiers(
        self, conn: Conn, tenant_id: UUID, members: list[UUID]
    ) -> list[ExportedIdentifier]:
        """The identifiers of a group of subjects (`group` gives it), decrypted, each under its
        owning subject's data key, oldest first (for the person's own access request)."""
        deks: dict[UUID, bytes] = {}
        found: list[ExportedIdentifier] = []
        for row in await conn.fetch(Q.group_identifiers, members):
            owner: UUID = row["subject_id"]
            if owner not in deks:
                deks[owner] = await self.datakeys.get(conn, tenant_id, owner)
            value = DataKeys.decrypt(
                deks[owner], tenant_id, owner, row["value_enc"], _id_context(row["id_type"])
            )
            found.append(
                ExportedIdentifier(
                    type=row["id_type"], value=value.decode(), first_seen_at=row["created_at"]
                )
            )
        return found

    async def group(self, conn: Conn, subject_id: UUID) -> list[UUID]:
        """The subject and every subject linked into it."""
        return [UUID(str(r["id"])) for r in await conn.fetch(Q.group_members, subject_id)]

    # -- linking -------------------------------------------------------------------------------
    async def link(
        self,
        conn: Conn,
        tenant_id: UUID,
        refs: list[SubjectRef],
        audit: AuditWriter | None = None,
    ) -> LinkResult:
        """Merge the subjects of `refs` into the oldest of them, in the caller's transaction
        (an asyncpg `Transaction`: a link that finds one of its new identifiers taken by a
        concurrent first write rolls back to a savepoint and starts over, now merging the
        subject that write created; each identifier can be taken only once, so it ends)."""
        errors: list[FieldError] = []
        for i, ref in enumerate(refs):
            if (ref.subject_id is None) == (ref.identifier is None):
                errors.append(FieldError(f"subjects[{i}]", _ONE_OF))
            elif ref.identifier is not None:
                field = f"subjects[{i}].identifier"
                errors += await self.identifier_errors(conn, tenant_id, ref.identifier, field)
        if errors:  # every bad reference at once, before an unknown subject id's 404
            raise ValidationFailed(errors[0].message, errors=errors)
        await conn.execute(Q.lock_tenant_links, str(tenant_id))
        for _ in range(len(refs)):
            try:
                async with conn.transaction():
                    return await self._link_once(conn, tenant_id, refs, audit)
            except _Claimed:
                continue
        return await self._link_once(conn, tenant_id, refs, audit)

    async def _link_once(
        self,
        conn: Conn,
        tenant_id: UUID,
        refs: list[SubjectRef],
        audit: AuditWriter | None,
    ) -> LinkResult:
        existing: set[UUID] = set()
        unknown: list[_Normalized] = []
        for i, ref in enumerate(refs):
            found = await self.resolve(conn, tenant_id, ref, create=False, field=f"subjects[{i}]")
            if found is not None:
                existing.add(found)
            elif ref.identifier is not None:
                unknown.append(
                    await self._normalize(
                        conn, tenant_id, ref.identifier, f"subjects[{i}].identifier"
                    )
                )
        if not existing:
            existing.add(await self._new_subject(conn, tenant_id))
        locked = await conn.fetch(Q.lock_subjects, list(existing))
        # The oldest subject survives, whatever the order of the request: linking commutes.
        ordered = sorted(locked, key=lambda r: (r["created_at"], r["id"]))
        survivor = UUID(str(ordered[0]["id"]))
        losers = [UUID(str(r["id"])) for r in ordered[1:]]
        for loser in losers:
            await self._move_identifiers(conn, tenant_id, loser, survivor)
            await conn.execute(Q.mark_merged, loser, survivor)
        # Before any audit leaf (AuditWriter caches the log it may create): a _Claimed here
        # rolls back database rows only, and link() starts over.
        seen: set[bytes] = set()
        for ident in unknown:
            if ident.digest not in seen:
                seen.add(ident.digest)
                await self._attach(conn, tenant_id, survivor, ident)
        linked_at = datetime.now(UTC)
        if losers:
            await self.rebuild_state(conn, tenant_id, survivor)
            if audit is not None:
                await self._log_links(conn, audit, tenant_id, survivor, losers, linked_at)
        return LinkResult(subject_id=survivor, merged=losers, linked_at=linked_at)

    @staticmethod
    async def _log_links(
        conn: Conn,
        audit: AuditWriter,
        tenant_id: UUID,
        survivor: UUID,
        losers: list[UUID],
        at: datetime,
    ) -> None:
        log_id, origin = await audit.log(conn, tenant_id)
        token = await audit.subject_token(conn, tenant_id, survivor)
        for loser in losers:
            leaf = SubjectLinked(
                event_uuid=uuid7(),
                occurred_at=at,
                log=origin,
                subject_token=token,
                linked_subject_token=await audit.subject_token(conn, tenant_id, loser),
            )
            await audit.append(conn, tenant_id, log_id, leaf, subject_id=survivor)

    async def _move_identifiers(
        self, conn: Conn, tenant_id: UUID, loser: UUID, survivor: UUID
    ) -> None:
        rows = await conn.fetch(Q.identifiers_of, loser)
        if not rows:
            return
        old = await self.datakeys.get(conn, tenant_id, loser)
        new = await self.datakeys.ensure(conn, tenant_id, survivor)
        types, digests, values = [], [], []
        for r in rows:
            context = _id_context(r["id_type"])
            plain = DataKeys.decrypt(old, tenant_id, loser, r["value_enc"], context)
            types.append(r["id_type"])
            digests.append(r["lookup_hmac"])
            values.append(DataKeys.encrypt(new, tenant_id, survivor, plain, context))
        await conn.execute(Q.repoint_identifiers, tenant_id, survivor, types, digests, values)

    async def rebuild_state(self, conn: Conn, tenant_id: UUID, survivor: UUID) -> None:
        """Recompute the survivor's consent and preference state from the group's history."""
        members = await self.group(conn, survivor)
        rows = await conn.fetch(Q.group_choice_records, tenant_id, members)
        state = fold(
            ChoiceRecord(
                purpose=r["purpose"],
                choice=r["choice"],
                occurred_at=r["occurred_at"],
                seq=r["seq"],
                event_id=str(r["event_id"]),
            )
            for r in rows
        )
        notice_of = {str(r["event_id"]): r["notice_version_id"] for r in rows}
        versions = [v for v in {notice_of[s.event_id] for s in state.values()} if v is not None]
        material = {
            r["id"]: r["material_version"]
            for r in await conn.fetch(Q.material_of_versions, versions)
        }
        await conn.execute(Q.delete_consent_state, tenant_id, members)
        records = list(state.values())
        await conn.execute(
            Q.insert_consent_state_rows,
            tenant_id,
            survivor,
            [s.purpose for s in records],
            [s.choice for s in records],
            [UUID(s.event_id) for s in records],
            [s.occurred_at for s in records],
            [s.seq for s in records],
            [notice_of[s.event_id] for s in records],
            [material.get(notice_of[s.event_id]) for s in records],
        )
        await self._rebuild_preferences(conn, tenant_id, survivor, members)

    async def _rebuild_preferences(
        self, conn: Conn, tenant_id: UUID, survivor: UUID, members: list[UUID]
    ) -> None:
        rows = await conn.fetch(Q.group_preference_records, tenant_id, members)
        latest = latest_by(
            (
                PreferenceRecord(
                    kind=r["kind"],
                    key=r["key"],
                    value=r["value"],
                    occurred_at=r["occurred_at"],
                    seq=r["seq"],
                    event_id=str(r["event_id"]),
                )
                for r in rows
            ),
            lambda p: (p.kind, p.key),
        )
        await conn.execute(Q.delete_preference_state, tenant_id, members)
        chosen = list(latest.values())
        await conn.execute(
            Q.insert_preference_state_rows,
            tenant_id,
            survivor,
            [p.kind for p in chosen],
            [p.key for p in chosen],
            [p.value for p in chosen],
            [UUID(p.event_id) for p in chosen],
            [p.occurred_at for p in chosen],
            [p.seq for p in chosen],
        )
