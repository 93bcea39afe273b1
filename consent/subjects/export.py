"""A data subject access export (GDPR Art 15 and 20; CCPA right to know): everything the
service holds about one person, as one JSON document (`SubjectExport`).

The document is written as it is read, a page of one list at a time, so that a person with
millions of logged decisions costs no more memory than one page: `SubjectExporter.open` finds
the subject (an unknown or erased one is a 404 before any byte is sent) and records the export;
`SubjectDocument.pieces` then reads the head (identifiers, current state, the latest
checkpoint) and walks the consent history, the preference history and the activity with the
services that answer the paginated endpoints, so each list is exactly what walking those gives.

Every export is a disclosure of the person's data, accountable like every other use of it: the
opening transaction appends a `subject.exported` audit leaf (the subject's pseudonymous token,
who asked, when; never an identifier), so an export whose opening committed is always in the
log, in the subject's activity, and so in this document's activity and every later one. The
opening locks the subject as a write does: an erasure waits for it (and then erases the token
the leaf names with the others), or the export finds the subject erased.

The whole document is read in one REPEATABLE READ snapshot (consent/subjects/snapshot.py), on
one connection held while the client downloads it: a consent or preference written meanwhile
is in none of its lists or all of them, never in a history but not in the current state. A
subject erased while its document is being written fails the rest of it, and the answer ends
before the document does (not valid JSON: never a complete-looking document that is not).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Final, Literal
from uuid import UUID

import msgspec
import structlog

from consent.audit.leaf import SubjectExported
from consent.audit.outbox import AuditWriter, token_text
from consent.audit.schemas import ActivityItem
from consent.audit.service import AuditReader
from consent.consents.schemas import ConsentEvent, SubjectConsents
from consent.consents.service import ConsentService
from consent.crypto.keys import KeyRing
from consent.db.database import Conn, Database
from consent.errors import NotFound
from consent.ids import uuid7
from consent.locales import Localized
from consent.pagination import MAX_LIMIT
from consent.preferences.schemas import PreferenceEvent, PreferenceState, SubjectPreferences
from consent.preferences.service import PreferenceService
from consent.subjects.resolver import SubjectResolver
from consent.subjects.schemas import ExportedIdentifier, SubjectRef
from consent.subjects.snapshot import HeldDatabase, snapshot, still_there

__all__ = ["FORMAT", "AuditPointers", "SubjectDocument", "SubjectExport", "SubjectExporter"]

FORMAT: Final = "consent.subject-export/v1"
PROOF_PATH: Final = "/v1/audit/events/{event_uuid}/proof"
_enc = msgspec.json.Encoder()
_log = structlog.get_logger("consent.subjects.export")

_Page = tuple[Sequence[msgspec.Struct], str | None]


class AuditPointers(msgspec.Struct, frozen=True, kw_only=True):
    """How to check the document's events against the tamper-evident audit log: each
    consent, preference change and use of the data in `activity` names its audit event
    (`event_uuid`) and leaf index; its inclusion proof is fetched by that id."""

    checkpoint: Annotated[
        str | None,
        msgspec.Meta(
            description="The tenant's latest signed checkpoint (a C2SP signed note: origin, "
            "tree size, root hash, signature) when the document was made, or null when its "
            "log has none yet. A proof against a later checkpoint is checked for consistency "
            "with this one through `GET /v1/audit/consistency`."
        ),
    ]
    vkey: Annotated[
        str,
        msgspec.Meta(
            description="The verifier key (C2SP vkey) that signs the checkpoints, as "
            "`GET /.well-known/consent-audit-keys` serves it. Check it against a copy you "
            "trust, never against this document alone."
        ),
    ]
    proof_path: Annotated[
        str,
        msgspec.Meta(
            description="Where the inclusion proof of an event is (`event_uuid` of an "
            "`activity` entry, `event_id` of a history entry): "
            "`/v1/audit/events/{event_uuid}/proof`."
        ),
    ]


class ExportHead(msgspec.Struct, frozen=True, kw_only=True):
    """The fields of a subject's export before its lists (see `SubjectExport`)."""

    format: Annotated[
        Literal["consent.subject-export/v1"],
        msgspec.Meta(description="The version of this document's layout."),
    ]
    exported_at: Annotated[
        datetime,
        msgspec.Meta(
            description="When the service began writing the document: an ISO 8601 timestamp "
            "in UTC. What was recorded after it may be missing."
        ),
    ]
    subject_id: Annotated[
        UUID,
        msgspec.Meta(
            description="The person's subject (UUID): the one asked for, or the surviving "
            "subject it has been merged into by a link."
        ),
    ]
    linked_subjects: Annotated[
        list[UUID],
        msgspec.Meta(
            description="The subjects (UUIDs) linked into `subject_id`: the same person, "
            "seen earlier under another identifier. Their events are in the lists below."
        ),
    ]
    identifiers: Annotated[
        list[ExportedIdentifier],
        msgspec.Meta(
            description="Every identifier of the person, decrypted, oldest first. The service "
            "keeps them only encrypted under the subject's own data key; this is the only "
            "answer that shows them."
        ),
    ]
    consents: Annotated[
        SubjectConsents,
        msgspec.Meta(
            description="The current consent state per purpose, as "
            "`GET /v1/subjects/{subject_id}/consents` answers it."
        ),
    ]
    preferences: Annotated[
        SubjectPreferences,
        msgspec.Meta(
            description="Every current preference, as "
            "`GET /v1/subjects/{subject_id}/preferences` walked to its end gives them "
            "(`next_cursor` null)."
        ),
    ]
    audit: Annotated[
        AuditPointers,
        msgspec.Meta(description="How to check the events below against the audit log."),
    ]


class SubjectExport(ExportHead, frozen=True, kw_only=True):
    """Everything the service holds about one person (GDPR Art 15 right of access and
    Art 20 portability; CCPA right to know): identifiers, current consents and preferences,
    their full histories with proof, and every logged use of the data, with the audit
    events that prove each. The lists come last and in full: no pagination."""

    consent_history: Annotated[
        list[ConsentEvent],
        msgspec.Meta(
            description="Every consent event of the person with its proof, most recently "
            "recorded first: `GET /v1/subjects/{subject_id}/consents/history` walked to its "
            "end."
        ),
    ]
    preference_history: Annotated[
        list[PreferenceEvent],
        msgspec.Meta(
            description="Every preference event, most recently recorded first: "
            "`GET /v1/subjects/{subject_id}/preferences/history` walked to its end."
        ),
    ]
    activity: Annotated[
        list[ActivityItem],
        msgspec.Meta(
            description="Every change to and use of the person's data (decisions about them, "
            "audience runs that listed them, consent and preference changes, links, exports "
            "of their data: this one's `subject.exported` event among them), newest first, "
            "each with its audit event and leaf index: "
            "`GET /v1/subjects/{subject_id}/activity` walked to its end."
        ),
    ]


class SubjectDocument:
    """An opened export (its `subject.exported` leaf committed): the document, as pieces."""

    def __init__(
        self, exporter: SubjectExporter, subject_id: UUID, exported_at: datetime, event_uuid: UUID
    ) -> None:
        self._exporter = exporter
        self.subject_id = subject_id
        """The subject found when the export was opened (its survivor)."""
        self.exported_at = exported_at
        self.event_uuid = event_uuid
        """The export's `subject.exported` audit event."""

    async def pieces(self) -> AsyncIterator[bytes]:
        """The document's JSON: the head, then each list a page at a time, all read in one
        snapshot (consent/subjects/snapshot.py): the head's current state, the histories and
        the activity are of one moment, whatever is written meanwhile."""
        exporter = self._exporter
        try:
            async with snapshot(exporter.db, exporter.tenant_id) as held:
                reads = _SnapshotReads(exporter, held)
                head = await reads.head(self.subject_id, self.exported_at)
                yield _enc.encode(head)[:-1]  # without its closing brace: the lists follow
                for name, pages in reads.lists(head.subject_id):
                    async for piece in _list(name, pages):
                        yield piece
        except Exception as exc:
            # The answer has begun: it can only end short (the server drops the connection).
            _log.warning(
                "subject.export_incomplete",
                subject_id=str(self.subject_id),
                error=type(exc).__name__,
            )
            raise
        yield b"}"


class _SnapshotReads:
    """The reads of one document, every one in the snapshot `held`, through the services that
    answer the subject endpoints (so each list is what walking its endpoint gives)."""

    def __init__(self, exporter: SubjectExporter, held: HeldDatabase) -> None:
        self.held = held
        self.tenant_id = exporter.tenant_id
        self.vkey = exporter.vkey
        self.resolver = exporter.resolver
        self.consents = ConsentService(held, exporter.keyring, exporter.tenant_id)
        self.preferences = PreferenceService(held, exporter.keyring, exporter.tenant_id)
        self.audit = AuditReader(held, exporter.tenant_id, exporter.vkey)

    async def head(self, subject_id: UUID, exported_at: datetime) -> ExportHead:
        """What the document holds before its lists; NotFound when the subject is gone."""
        async with self.held.tenant(self.tenant_id) as conn:
            survivor = await self.resolver.resolve(
                conn, self.tenant_id, SubjectRef(subject_id=subject_id), create=False
            )
            if survivor is None:
                raise NotFound(Localized("no-such-subject"))
            members = await self.resolver.group(conn, survivor)
            identifiers = await self.resolver.identifiers(conn, self.tenant_id, members)
        consents = await self.consents.state(SubjectRef(subject_id=survivor))
        preferences = await self._all_preferences(survivor)
        try:
            checkpoint: str | None = await self.audit.checkpoint()
        except NotFound:  # no audit log, or nothing signed yet
            checkpoint = None
        return ExportHead(
            format=FORMAT,
            exported_at=exported_at,
            subject_id=survivor,
            linked_subjects=sorted((m for m in members if m != survivor), key=str),
            identifiers=identifiers,
            consents=consents,
            preferences=preferences,
            audit=AuditPointers(checkpoint=checkpoint, vkey=self.vkey, proof_path=PROOF_PATH),
        )

    async def _all_preferences(self, survivor: UUID) -> SubjectPreferences:
        """Every current preference: the pages of `GET .../preferences` walked to the end."""
        items: list[PreferenceState] = []
        cursor: str | None = None
        while True:
            page = await self.preferences.state(survivor, cursor, MAX_LIMIT)
            items += page.preferences
            cursor = page.next_cursor
            if cursor is None:
                return SubjectPreferences(subject_id=survivor, preferences=items)

    def lists(
        self, subject: UUID
    ) -> tuple[tuple[bytes, Callable[[str | None], Awaitable[_Page]]], ...]:
        """The document's lists, each as the pages of its endpoint; before each page, the
        subject is checked to be still there (an erasure since the snapshot ends it short)."""

        async def consents(cursor: str | None) -> _Page:
            await still_there(self.held, subject)
            page = await self.consents.history(subject, cursor, MAX_LIMIT)
            return page.items, page.next_cursor

        async def preferences(cursor: str | None) -> _Page:
            await still_there(self.held, subject)
            page = await self.preferences.history(subject, cursor, MAX_LIMIT)
            return page.items, page.next_cursor

        async def activity(cursor: str | None) -> _Page:
            await still_there(self.held, subject)
            page = await self.audit.activity(self.resolver, subject, cursor, MAX_LIMIT)
            return page.items, page.next_cursor

        return (
            (b"consent_history", consents),
            (b"preference_history", preferences),
            (b"activity", activity),
        )


async def _list(
    name: bytes, fetch: Callable[[str | None], Awaitable[_Page]]
) -> AsyncIterator[bytes]:
    """`,"name":[...]`, one piece per page that `fetch` (from a cursor) gives."""
    yield b',"' + name + b'":['
    separator = b""
    cursor: str | None = None
    while True:
        items, cursor = await fetch(cursor)
        if items:
            yield separator + b",".join(_enc.encode(item) for item in items)
            separator = b","
        if cursor is None:
            break
    yield b"]"


class SubjectExporter:
    """Reads one tenant's subjects for their exports, through the services that answer the
    subject endpoints (their state, their histories, their activity), and records each export
    in the audit log through `writer`, as asked for by `actor` (`api-key:<key id>`)."""

    def __init__(
        self,
        db: Database,
        keyring: KeyRing,
        tenant_id: UUID,
        vkey: str,
        *,
        writer: AuditWriter,
        actor: str,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.tenant_id = tenant_id
        self.vkey = vkey
        self.writer = writer
        self.actor = actor
        self.resolver = SubjectResolver(keyring)

    async def open(self, ref: SubjectRef) -> SubjectDocument:
        """The export of the subject `ref` names (its survivor's, with every subject linked
        into it); NotFound when there is none (unknown, erased, another tenant's). Its
        `subject.exported` leaf is appended and committed before this returns: once it has,
        the export is in the log. The document itself is read in `SubjectDocument.pieces`."""
        exported_at = datetime.now(UTC)
        async with self.db.tenant(self.tenant_id) as conn:
            found = await self.resolver.resolve(conn, self.tenant_id, ref, create=False)
            if found is None:
                raise NotFound(Localized("no-subject-with-identifier"))
            # Locked as a write locks its subject (FOR KEY SHARE, until the commit): an erasure
            # (FOR UPDATE) waits for this leaf and then deletes the token it names, or has
            # committed and this is a 404; never a token made for a subject erased meanwhile.
            subject = await self.resolver.resolve_for_write(
                conn, self.tenant_id, SubjectRef(subject_id=found)
            )
            event_uuid = await self._record(conn, subject.id, subject.token, exported_at)
        return SubjectDocument(self, subject.id, exported_at, event_uuid)

    async def _record(
        self, conn: Conn, survivor: UUID, token: bytes | None, exported_at: datetime
    ) -> UUID:
        """Append the export's `subject.exported` leaf, filed under the survivor. A subject no
        leaf has named yet (made by a link of identifiers the ledger did not know) gets its
        token here, as at a first write: its identifiers are disclosed all the same, and its
        erasure will then prove and delete that token like any other."""
        log_id, origin = await self.writer.log(conn, self.tenant_id)
        leaf = SubjectExported(
            event_uuid=uuid7(),
            occurred_at=exported_at,
            log=origin,
            subject_token=token_text(token)
            if token is not None
            else await AuditWriter.subject_token(conn, self.tenant_id, survivor),
            actor_ref=self.actor,
        )
        await self.writer.append(conn, self.tenant_id, log_id, leaf, subject_id=survivor)
        return leaf.event_uuid
