"""HTTP: erase a subject (the right to erasure, GDPR Art 17; CCPA deletion) and export what the
service holds about one (the right of access and to portability, GDPR Art 15 and 20; CCPA right
to know)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

import msgspec
import structlog
from litestar import Controller, Request, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, Parameter
from litestar.response import Stream

from consent.db.database import Conn, Database
from consent.errors import NotFound
from consent.http_params import IdemKey
from consent.idempotency import run_idempotent
from consent.locales import Localized
from consent.openapi import problems
from consent.subjects.erasure import erase_subject
from consent.subjects.export import SubjectExport, SubjectExporter
from consent.subjects.resolver import SubjectResolver
from consent.subjects.schemas import ErasureRequest, ErasureResult, ExportRequest, SubjectRef
from consent.tenancy.auth import principal, requires

__all__ = ["SubjectController"]

_log = structlog.get_logger("consent.subjects")
_JSON = "application/json"

_ErasedSubject = Annotated[
    UUID,
    Parameter(
        description="The id (UUID) of the subject to erase. A subject merged into another by a "
        "link stands for its surviving subject: that one is erased, with every subject linked "
        "into it. Unknown or already erased: 404 (a retry with the same Idempotency-Key gets "
        "the first answer)."
    ),
]

_ExportedSubject = Annotated[
    UUID,
    Parameter(
        description="The id (UUID) of the subject whose data to export. A subject merged into "
        "another by a link stands for its surviving subject: the document is that one's, with "
        "every subject linked into it. Unknown or erased: 404."
    ),
]
_EXPORTED = {
    200: ResponseSpec(
        data_container=SubjectExport,
        media_type=_JSON,
        description="The document (`SubjectExport`), streamed as it is read, with "
        '`Content-Disposition: attachment; filename="subject-<subject_id>.json"` and '
        "`Cache-Control: no-store`. An answer cut short (the subject erased while it was "
        "written, a failure) ends before the document does and does not parse: ask again.",
        generate_examples=False,
    )
}
_EXPORT_DOC = (
    " The document holds the person's identifiers decrypted (no other answer shows them), "
    "hence the `admin` scope. It is written as it is read, a page of each list at a time, so "
    "its size has no limit; save it as it arrives. Each list is what walking its paginated "
    "endpoint gives, and each event names its audit event (`event_uuid`, `event_id`) and "
    "leaf index: its inclusion proof is at `GET /v1/audit/events/{event_uuid}/proof`, checked "
    "against the signed checkpoint in `audit.checkpoint` (or a later one). Each export is "
    "itself recorded in the audit log before the document begins, as a `subject.exported` "
    "event: the subject's pseudonymous token, the API key's id and the time, never an "
    "identifier. It is in the subject's activity, so this document and every later one list "
    "it."
)
_EXPORT_GET_DOC = (
    "One JSON document with everything the service holds about one person, for an access or "
    "portability request (GDPR Art 15 and 20; CCPA right to know): the subject and the "
    "subjects linked into it, every identifier, the current consents and preferences, their "
    "full histories with proof, and every logged use of the data (decisions about the "
    "person, audience runs that listed them, exports of their data)." + _EXPORT_DOC
)
_EXPORT_POST_DOC = (
    "The document of `GET /v1/subjects/{subject_id}/export`, for a request that names the "
    "person by an identifier (the e-mail address, phone number or customer id they wrote "
    "from) or by subject id, in the body (so an e-mail address never lands in a URL or an "
    "access log): the identifier is normalised and looked up. An identifier the ledger does "
    "not (or no longer) know answers 404." + _EXPORT_DOC
)


async def _export(request: Request[Any, Any, Any], ref: SubjectRef) -> Stream:
    """The export of the subject `ref` names, as a stream (a 404 before any byte of it)."""
    who = principal(request)
    exporter = SubjectExporter(
        request.app.state.db,
        request.app.state.keyring,
        who.tenant_id,
        request.app.state.audit_signer.vkey,
        writer=request.app.state.audit,
        actor=f"api-key:{who.key_id}",
    )
    document = await exporter.open(ref)  # its `subject.exported` leaf is committed
    _log.info(
        "subject.exported",
        tenant_id=str(who.tenant_id),
        subject_id=str(document.subject_id),
        api_key_id=who.key_id,
        audit_event=str(document.event_uuid),
    )
    return Stream(
        document.pieces(),
        media_type=_JSON,
        headers={
            "Content-Disposition": f'attachment; filename="subject-{document.subject_id}.json"',
            "Cache-Control": "no-store",
        },
    )


async def _erase(
    request: Request[Any, Any, Any],
    idempotency_key: str | None,
    fingerprint: bytes,
    find: Callable[[Conn, UUID, SubjectResolver], Awaitable[UUID]],
) -> ErasureResult:
    """Find the subject and erase it, in one transaction under the caller's tenant, once per
    Idempotency-Key (`fingerprint`: what the request asked, for the key's reuse check)."""
    db: Database = request.app.state.db
    tenant_id = principal(request).tenant_id
    resolver = SubjectResolver(request.app.state.keyring)
    async with db.tenant(tenant_id) as conn:

        async def produce() -> ErasureResult:
            subject_id = await find(conn, tenant_id, resolver)
            return await erase_subject(
                conn, tenant_id, subject_id, resolver, request.app.state.audit
            )

        result, _ = await run_idempotent(
            conn,
            request.app.state.keyring,
            tenant_id,
            idempotency_key,
            fingerprint,
            ErasureResult,
            produce,
        )
        return result


class SubjectController(Controller):
    path = "/v1/subjects"
    tags = ["subjects"]
    security = [{"apiKey": []}]

    @delete(
        "/{subject_id:uuid}",
        guards=[requires("admin")],
        summary="Erase a subject",
        status_code=200,
    )
    async def erase(
        self, request: Request[Any, Any, Any], subject_id: _ErasedSubject, idempotency_key: IdemKey
    ) -> ErasureResult:
        """Erase the subject and every subject linked into it, in one transaction, by
        destroying their data keys: identifiers, evidence and current state are gone for good
        and a lookup by the same identifier finds nothing. Events, decisions and audit leaves
        stay as pseudonymous proof, so every audit proof still verifies; each erased subject
        gets a `subject.erased` leaf. Afterwards the subject answers 404 everywhere and
        decisions about it are denied as unknown."""

        async def given(_conn: Conn, _tenant_id: UUID, _resolver: SubjectResolver) -> UUID:
            return subject_id  # erase_subject answers 404 for an unknown or erased one

        return await _erase(request, idempotency_key, b"erase-subject/" + subject_id.bytes, given)

    @post(
        "/erase",
        guards=[requires("admin")],
        summary="Erase a subject found by identifier",
        opt=problems(404),
        status_code=200,
    )
    async def erase_by_reference(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ErasureRequest],
        idempotency_key: IdemKey,
    ) -> ErasureResult:
        """The erasure of `DELETE /v1/subjects/{id}`, for a request that names the person by
        an identifier (the e-mail address, phone number or customer id they wrote from) or by
        subject id, in one call: the identifier is normalised and looked up, and the subject it
        belongs to is erased with every subject linked into it. An identifier the ledger does
        not know (or no longer knows) answers 404. A retry with the same Idempotency-Key gets
        the first answer (without one, a retry finds nothing: 404)."""

        async def named(conn: Conn, tenant_id: UUID, resolver: SubjectResolver) -> UUID:
            found = await resolver.resolve(conn, tenant_id, data, create=False)
            if found is None:
                raise NotFound(Localized("no-subject-with-identifier"))
            return found

        # Keyed: the idempotency record outlives the erasure, and a plain hash of a body
        # holding her e-mail would let anyone with a dump confirm a guess of it. The record
        # now keys every request hash (consent/idempotency.py); this inner key stays so that a
        # retry of an erasure recorded before (a plain SHA-256 of this digest) gets its answer.
        key = request.app.state.keyring.lookup_key(str(principal(request).tenant_id))
        digest = hmac.new(key, b"erase-subject-ref/" + msgspec.json.encode(data), "sha256")
        return await _erase(request, idempotency_key, digest.digest(), named)

    @get(
        "/{subject_id:uuid}/export",
        guards=[requires("admin")],
        summary="Export everything held about a subject",
        description=_EXPORT_GET_DOC,
        media_type=_JSON,
        responses=_EXPORTED,
    )
    async def export(self, request: Request[Any, Any, Any], subject_id: _ExportedSubject) -> Stream:
        """A subject's access export (see `_EXPORT_GET_DOC`)."""
        return await _export(request, SubjectRef(subject_id=subject_id))

    @post(
        "/export",
        guards=[requires("admin")],
        summary="Export everything held about a subject found by identifier",
        description=_EXPORT_POST_DOC,
        opt=problems(404),
        status_code=200,
        media_type=_JSON,
        responses=_EXPORTED,
    )
    async def export_by_reference(
        self, request: Request[Any, Any, Any], data: JSONBody[ExportRequest]
    ) -> Stream:
        """The access export of a subject named in the body (see `_EXPORT_POST_DOC`)."""
        return await _export(request, data)
