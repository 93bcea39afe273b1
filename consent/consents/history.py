"""History entries of consent and preference events, with their network proof decrypted.

The network evidence kept with an event (`evidence_enc`) is sealed under its subject's data key
with associated data naming the event (`evidence_context`): a ciphertext copied onto another
event of the same subject does not open there, so history never shows one event's address and
browser as another's proof. Evidence written before that binding (migration 0025) was sealed
under the kind's context alone; it is still opened so, but only for events whose id (a UUID v7)
was made before the binding began: an old ciphertext copied onto a newer event does not open
either. Evidence that does not open is left out of the entry, and the log names the event.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
import structlog

from consent.consents.schemas import NetworkProof
from consent.crypto.aead import DecryptionError
from consent.crypto.datakeys import DataKeys
from consent.db.database import Conn, Database
from consent.errors import NotFound
from consent.ids import uuid7_ms
from consent.locales import Localized
from consent.pagination import (
    SubjectList,
    check_limit,
    decode_subject_cursor,
    encode_subject_cursor,
    page_of,
)
from consent.subjects.resolver import SubjectResolver
from consent.subjects.schemas import SubjectRef

__all__ = ["HistoryReader", "evidence_context", "subject_history"]

_HIDDEN = frozenset({"evidence_enc", "seq"})
_log = structlog.get_logger("consent.history")


def evidence_context(kind: bytes, event_id: UUID) -> bytes:
    """The associated-data context of an event's network evidence: its kind and its id."""
    return kind + b"/" + event_id.bytes


class HistoryReader:
    """Turns one page of history rows into the fields of their event structs. The network
    evidence kept with an event (`evidence_enc`, sealed under `evidence_context(kind, event)`)
    is decrypted under its subject's data key, each key fetched once per page."""

    def __init__(self, conn: Conn, datakeys: DataKeys, tenant_id: UUID, kind: bytes) -> None:
        self.conn = conn
        self.datakeys = datakeys
        self.tenant_id = tenant_id
        self.kind = kind
        self._deks: dict[UUID, bytes] = {}
        self._bound_since_ms: int | None = None

    async def fields(self, row: Any) -> dict[str, Any]:
        fields = {k: v for k, v in dict(row).items() if k not in _HIDDEN}
        if row["evidence_enc"] is not None:
            subject_id: UUID = row["subject_id"]
            dek = self._deks.get(subject_id)
            if dek is None:
                dek = await self.datakeys.get(self.conn, self.tenant_id, subject_id)
                self._deks[subject_id] = dek
            plain = await self._open(dek, subject_id, row["event_id"], bytes(row["evidence_enc"]))
            if plain is not None:
                fields["network"] = msgspec.json.decode(plain, type=NetworkProof)
        return fields

    async def _open(
        self, dek: bytes, subject_id: UUID, event_id: UUID, blob: bytes
    ) -> bytes | None:
        context = evidence_context(self.kind, event_id)
        try:
            return DataKeys.decrypt(dek, self.tenant_id, subject_id, blob, context)
        except DecryptionError:
            pass
        made = uuid7_ms(event_id)
        if made is not None and made < await self._bound_since():
            try:
                return DataKeys.decrypt(dek, self.tenant_id, subject_id, blob, self.kind)
            except DecryptionError:
                pass
        _log.warning("history.evidence_not_its_own", event_id=str(event_id))
        return None

    async def _bound_since(self) -> int:
        if self._bound_since_ms is None:
            since = await self.conn.fetchval("select evidence_bound_since()")
            self._bound_since_ms = int(since.timestamp() * 1000)
        return self._bound_since_ms


async def subject_history(
    db: Database,
    tenant_id: UUID,
    subjects: SubjectResolver,
    datakeys: DataKeys,
    *,
    name: SubjectList,
    query: str,
    kind: bytes,
    subject_id: UUID,
    cursor: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page, newest first, of the events of `subject_id` and every subject linked into it
    (`query` with the group, the cursor's position and `limit + 1`), as the fields of their
    event structs, and the next page's cursor. `name` is the list the cursor is bound to."""
    check_limit(limit)
    before = decode_subject_cursor(name, subject_id, cursor)
    async with db.tenant_hot(tenant_id) as conn:
        survivor = await subjects.resolve(
            conn, tenant_id, SubjectRef(subject_id=subject_id), create=False
        )
        if survivor is None:
            raise NotFound(Localized("no-such-subject"))
        members = await subjects.group(conn, survivor)
        rows = await conn.fetch(query, members, before, limit + 1)
        page, next_cursor = page_of(
            rows, limit, lambda r: encode_subject_cursor(name, subject_id, r["seq"])
        )
        reader = HistoryReader(conn, datakeys, tenant_id, kind)
        return [await reader.fields(r) for r in page], next_cursor
