"""HTTP: signed checkpoints, inclusion and consistency proofs, entries, activity, export."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get
from litestar.params import PathParameter, QueryParameter

from consent.audit.checkpoint import NoteSigner
from consent.audit.schemas import ActivityPage, AuditEventInfo, EntriesPage, ExportFile
from consent.audit.service import MAX_EXPORT, AuditReader
from consent.http_params import CursorParam, Limit
from consent.openapi import problems
from consent.subjects.resolver import SubjectResolver
from consent.tenancy.auth import principal, requires

__all__ = ["AuditController", "audit_keys", "signer_of"]

TEXT = "text/plain"  # Litestar adds "; charset=utf-8" to text types itself
# Tree sizes and leaf indexes are PostgreSQL `bigint`s: a larger number is refused (400).
BIGINT_MAX = 2**63 - 1
SizeParam = Annotated[
    int | None,
    QueryParameter(
        ge=1, le=BIGINT_MAX, description="A signed tree size; default: the latest checkpoint."
    ),
]
SizePath = Annotated[
    int,
    PathParameter(
        ge=1,
        le=BIGINT_MAX,
        description="Tree size of a signed checkpoint (the second line of its note); 404 when "
        "the tenant's log has no checkpoint of exactly that size.",
    ),
]
EventId = Annotated[
    UUID,
    PathParameter(
        description="The audit event's id: a consent's or preference change's `event_id` as "
        "returned when it was recorded, a decision's `decision_id`, ...; 404 when unknown."
    ),
]
SubjectIdPath = Annotated[
    UUID,
    PathParameter(
        description="The subject's id; one linked into another resolves to the survivor, and "
        "the activity of every subject linked into it is included. 404 when unknown or erased."
    ),
]


def signer_of(request: Request[Any, Any, Any]) -> NoteSigner:
    signer: NoteSigner = request.app.state.audit_signer
    return signer


def _reader(request: Request[Any, Any, Any]) -> AuditReader:
    return AuditReader(request.app.state.db, principal(request).tenant_id, signer_of(request).vkey)


@get(
    "/.well-known/consent-audit-keys",
    media_type=TEXT,
    tags=["audit"],
    summary="Audit verification keys",
)
async def audit_keys(request: Request[Any, Any, Any]) -> str:
    """The note verifier keys (C2SP vkey format, one per line) that sign audit checkpoints.
    Anyone can verify checkpoints and proofs offline with these and nothing else."""
    return signer_of(request).vkey + "\n"


class AuditController(Controller):
    path = "/v1"
    tags = ["audit"]
    security = [{"apiKey": []}]

    @get(
        "/audit/checkpoint",
        guards=[requires("read")],
        media_type=TEXT,
        summary="Latest checkpoint",
        opt=problems(404),
    )
    async def checkpoint(self, request: Request[Any, Any, Any]) -> str:
        """The latest signed checkpoint of the tenant's log (C2SP tlog-checkpoint signed note).
        Keep it: a later checkpoint must be consistent with it."""
        return await _reader(request).checkpoint()

    @get(
        "/audit/checkpoints/{size:int}",
        guards=[requires("read")],
        media_type=TEXT,
        summary="Checkpoint of a size",
    )
    async def checkpoint_at(self, request: Request[Any, Any, Any], size: SizePath) -> str:
        """A historical signed checkpoint, for consistency checks."""
        return await _reader(request).checkpoint(size)

    @get("/audit/events/{event_uuid:uuid}", guards=[requires("read")], summary="An audit event")
    async def event(self, request: Request[Any, Any, Any], event_uuid: EventId) -> AuditEventInfo:
        """The leaf of an event (consent, preference, decision, ...) with its index once
        integrated. The event id of a consent is the id returned when it was recorded."""
        return await _reader(request).event(event_uuid)

    @get(
        "/audit/events/{event_uuid:uuid}/proof",
        guards=[requires("read")],
        media_type=TEXT,
        summary="Inclusion proof",
        opt=problems(409, slugs=("audit-pending",)),
    )
    async def proof(
        self, request: Request[Any, Any, Any], event_uuid: EventId, size: SizeParam = None
    ) -> str:
        """c2sp.org/tlog-proof@v1: leaf index, audit path and the signed checkpoint. Verify it
        offline with the leaf bytes and the key from /.well-known/consent-audit-keys.
        409 `audit-pending` until the event is integrated (under a second)."""
        return await _reader(request).inclusion_proof(event_uuid, size)

    @get(
        "/audit/consistency",
        guards=[requires("read")],
        summary="Consistency proof",
        opt=problems(404),
    )
    async def consistency(
        self,
        request: Request[Any, Any, Any],
        first: Annotated[
            int, QueryParameter(name="from", ge=1, le=BIGINT_MAX, description="Older tree size.")
        ],
        second: Annotated[
            int, QueryParameter(name="to", ge=1, le=BIGINT_MAX, description="Newer tree size.")
        ],
    ) -> list[str]:
        """RFC 6962 consistency proof (base64 hashes) that the tree of size `to` extends the
        tree of size `from` without changing it."""
        proof: list[str] = msgspec.json.decode(
            await _reader(request).consistency_proof(first, second)
        )
        return proof

    @get("/audit/entries", guards=[requires("admin")], summary="Log entries", opt=problems(404))
    async def entries(
        self,
        request: Request[Any, Any, Any],
        start: Annotated[
            int, QueryParameter(ge=0, le=BIGINT_MAX, description="First leaf index.")
        ] = 0,
        limit: Limit = 100,
    ) -> EntriesPage:
        """Leaves by index (auditors rebuild the tree from these); admin only."""
        return await _reader(request).entries(start, limit)

    @get(
        "/audit/export",
        guards=[requires("admin")],
        summary="Export leaves with proofs",
        opt=problems(404),
    )
    async def export(
        self,
        request: Request[Any, Any, Any],
        subject_id: Annotated[
            UUID | None, QueryParameter(description="One subject's leaves.")
        ] = None,
        since: Annotated[
            datetime | None,
            QueryParameter(description="Period start (included), by the time in the event ids."),
        ] = None,
        until: Annotated[
            datetime | None,
            QueryParameter(description="Period end (excluded), by the time in the event ids."),
        ] = None,
        start: Annotated[
            int,
            QueryParameter(
                ge=0,
                le=BIGINT_MAX,
                description="First leaf index to include: the previous file's `next_start`.",
            ),
        ] = 0,
        limit: Annotated[
            int,
            QueryParameter(ge=1, le=MAX_EXPORT, description="Most leaves in the file (1-10,000)."),
        ] = MAX_EXPORT,
    ) -> ExportFile:
        """One file for a regulator: a subject's (or a period's) leaves, each with its inclusion
        proof against one signed checkpoint, and the verification key. At most `limit` leaves
        (10,000): when `truncated`, ask again with `start=next_start` for the rest."""
        return await _reader(request).export(
            SubjectResolver(request.app.state.keyring),
            subject_id=subject_id,
            since=since,
            until=until,
            start=start,
            limit=limit,
        )

    @get(
        "/subjects/{subject_id:uuid}/activity",
        guards=[requires("read")],
        summary="A subject's data activity",
    )
    async def activity(
        self,
        request: Request[Any, Any, Any],
        subject_id: SubjectIdPath,
        cursor: CursorParam = None,
        limit: Limit = 50,
    ) -> ActivityPage:
        """Consent and preference changes and every use of the subject's data (which system,
        which action, allowed or not, why, when), newest first, each with its leaf index so
        the customer can check it against a signed checkpoint."""
        return await _reader(request).activity(
            SubjectResolver(request.app.state.keyring), subject_id, cursor, limit
        )
