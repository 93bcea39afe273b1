"""HTTP: record consent, read a subject's state and history, look up by identifier, link."""

from __future__ import annotations

from typing import Annotated, Any, Final
from uuid import UUID

import msgspec
from litestar import Controller, Request, get, post
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.params import JSONBody, Parameter

from consent.consents.evidence import NetworkEvidence, client_address
from consent.consents.schemas import (
    ConsentCreate,
    ConsentHistoryPage,
    ConsentRecorded,
    SubjectConsents,
)
from consent.consents.service import ConsentService
from consent.db.database import Database
from consent.errors import Forbidden
from consent.http_params import CursorParam, IdemKey, Limit
from consent.idempotency import run_idempotent
from consent.locales import Localized
from consent.openapi import problems
from consent.subjects.resolver import SubjectResolver
from consent.subjects.schemas import IdentifierIn, LinkRequest, LinkResult, SubjectRef
from consent.tenancy.auth import principal, requires

__all__ = ["ConsentController", "request_evidence"]

_BANNER_KEY_NO_LINK: Final = Localized("banner-key-no-link")

_StateSubject = Annotated[
    UUID,
    Parameter(
        description="The subject's id (UUID). A subject merged into another by a link answers "
        "with its surviving subject's state. Unknown or erased: 404."
    ),
]
_HistorySubject = Annotated[
    UUID,
    Parameter(
        description="The subject's id (UUID). The history holds the events of its surviving "
        "subject and of every subject linked into that one. Unknown or erased: 404."
    ),
]


class LookupRequest(SubjectRef, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Find a subject by identifier (in the body, so it never lands in URLs or access logs)."""

    subject_id: Annotated[
        UUID | None,
        msgspec.Meta(
            description="The subject's id (UUID), instead of `identifier`: the same answer as "
            "`GET /v1/subjects/{subject_id}/consents`. Give exactly one of the two."
        ),
    ] = None
    identifier: Annotated[
        IdentifierIn | None,
        msgspec.Meta(
            description="Any identifier linked to the subject, instead of `subject_id`. A "
            "lookup never creates a subject: an identifier no subject has answers 404."
        ),
    ] = None


def request_evidence(request: Request[Any, Any, Any]) -> NetworkEvidence:
    """The write's network evidence: the visitor's address (from X-Forwarded-For only behind a
    proxy in CONSENT_TRUSTED_PROXIES), truncated, and its user agent. Kept only when the
    tenant enables `store_network_evidence`."""
    peer = request.client.host if request.client else None
    visitor = client_address(
        peer, request.headers.get("x-forwarded-for"), request.app.state.trusted_proxies
    )
    return NetworkEvidence.from_request(visitor, request.headers.get("user-agent"))


async def _not_a_banner_key(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """403 for a banner key (after `requires`, which authenticated it), before the body is
    read: its secret is public, so what it may do must not harm another person."""
    if principal(connection).allowed_origins:
        raise Forbidden(_BANNER_KEY_NO_LINK)


def _service(request: Request[Any, Any, Any]) -> ConsentService:
    return ConsentService(
        request.app.state.db,
        request.app.state.keyring,
        principal(request).tenant_id,
        request.app.state.audit,
    )


class ConsentController(Controller):
    path = "/v1"
    tags = ["consents"]
    security = [{"apiKey": []}]

    @post(
        "/consents", guards=[requires("write")], summary="Record a consent event", opt=problems(404)
    )
    async def record(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ConsentCreate],
        idempotency_key: IdemKey,
    ) -> ConsentRecorded:
        """Append one event with choices for one or more purposes and its proof (the notice
        version shown and its hash, language, surface, channel, method). The subject is given
        by id or identifier; an unknown identifier creates a subject. The current state is
        updated in the same transaction. Truncated IP and user agent are kept, encrypted,
        only when the tenant enables `store_network_evidence`; behind a
        proxy listed in `CONSENT_TRUSTED_PROXIES` the address is taken from X-Forwarded-For.
        A key bound to a property records for that property (another `property_id`: 403); a
        browser request must come from one of the property's `allowed_origins` (403). A banner key
        (with `allowed_origins`) records only a visitor's own choice on the device: method
        `explicit` or `gpc`, a `device` identifier or a subject id (else 403)."""
        evidence = request_evidence(request)
        caller = principal(request)
        caller.check_banner_write(data.method, data.identifier.type if data.identifier else None)
        data = msgspec.structs.replace(data, property_id=caller.property_for(data.property_id))
        return await _service(request).record(
            data,
            idempotency_key=idempotency_key,
            evidence=evidence,
            origin=request.headers.get("origin"),
        )

    @get(
        "/subjects/{subject_id:uuid}/consents",
        guards=[requires("read")],
        summary="A subject's consent state",
    )
    async def state(
        self, request: Request[Any, Any, Any], subject_id: _StateSubject
    ) -> SubjectConsents:
        """Current choice per purpose. `expired`: older than the purpose's maximum age;
        `stale`: the notice changed materially since; `effective`: granted and neither, so the
        choice currently counts as consent. The maximum age and staleness apply only to
        purposes with legal basis `consent`: an objection to a legitimate-interest purpose (a
        `denied` or `withdrawn` choice) never expires."""
        return await _service(request).state(SubjectRef(subject_id=subject_id))

    @post(
        "/subjects/lookup",
        guards=[requires("read")],
        summary="Find a subject's consents by identifier",
        opt=problems(404),
        status_code=200,
    )
    async def lookup(
        self, request: Request[Any, Any, Any], data: JSONBody[LookupRequest]
    ) -> SubjectConsents:
        """Same answer as the state endpoint, for a subject found by any linked identifier.
        Both `subject_id` and `identifier` (or neither): 400, as every other reference."""
        # `state` checks the reference: with both, the identifier alone used to be looked up
        # and its subject answered, whoever `subject_id` named.
        return await _service(request).state(data)

    @get(
        "/subjects/{subject_id:uuid}/consents/history",
        guards=[requires("read")],
        summary="A subject's consent history",
    )
    async def history(
        self,
        request: Request[Any, Any, Any],
        subject_id: _HistorySubject,
        cursor: CursorParam = None,
        limit: Limit = 50,
    ) -> ConsentHistoryPage:
        """Every event with its proof, newest first, including those of linked subjects."""
        return await _service(request).history(subject_id, cursor, limit)

    @post(
        "/subjects/link",
        guards=[requires("write"), _not_a_banner_key],
        summary="Link identities of one person",
        opt=problems(404),
        status_code=200,
    )
    async def link(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LinkRequest],
        idempotency_key: IdemKey,
    ) -> LinkResult:
        """Merge subjects known to be the same person (a device at login, a loyalty card at
        the till). The oldest subject survives; per purpose the latest choice wins; no event
        is lost. Linking again, or in another order, gives the same result. A retry with the
        same `Idempotency-Key` gets the first answer (with the subjects it merged). A banner
        key (with `allowed_origins`) may not link (403): its secret is in every visitor's
        browser, and a link of two people's identifiers cannot be undone (each one's export
        would list the other's identifiers, and an erasure of one would erase both)."""
        db: Database = request.app.state.db
        tenant_id = principal(request).tenant_id
        resolver = SubjectResolver(request.app.state.keyring)
        async with db.tenant(tenant_id) as conn:

            async def produce() -> LinkResult:
                return await resolver.link(conn, tenant_id, data.subjects, request.app.state.audit)

            fingerprint = b"link/" + msgspec.json.encode(data)
            result, _ = await run_idempotent(
                conn,
                request.app.state.keyring,
                tenant_id,
                idempotency_key,
                fingerprint,
                LinkResult,
                produce,
            )
            return result
