"""HTTP: purposes, notices and their versions, vendors, identifier types (admin writes)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post, put
from litestar.params import JSONBody, Parameter

from consent.catalog.schemas import (
    IdentifierType,
    IdentifierTypeCreate,
    IdentifierTypePage,
    Notice,
    NoticeCreate,
    NoticePage,
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
from consent.catalog.service import CatalogService
from consent.http_params import CursorParam, IdemKey, Limit
from consent.openapi import problems
from consent.tenancy.auth import principal, requires

__all__ = ["CatalogController"]

_PurposeKey = Annotated[
    str, Parameter(description="The purpose's key, as given at creation (e.g. `analytics`).")
]
_NoticeKey = Annotated[
    str, Parameter(description="The notice's key, as given at creation (e.g. `cookie_banner`).")
]
# A version number is a PostgreSQL `integer`: 1 up to its largest value.
_VersionNumber = Annotated[
    int,
    Parameter(
        ge=1,
        le=2**31 - 1,
        description="The version number within the notice (1, 2, 3, …); 404 when the notice "
        "has no such version.",
    ),
]


def _service(request: Request[Any, Any, Any]) -> CatalogService:
    who = principal(request)
    return CatalogService(
        request.app.state.db,
        request.app.state.keyring,
        who.tenant_id,
        actor=f"api-key:{who.key_id}",
        audit=request.app.state.audit,
    )


class CatalogController(Controller):
    path = "/v1"
    tags = ["catalog"]
    security = [{"apiKey": []}]

    @post("/purposes", guards=[requires("admin")], summary="Create a purpose", opt=problems(409))
    async def create_purpose(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[PurposeCreate],
        idempotency_key: IdemKey,
    ) -> Purpose:
        """A reason for processing, with its legal basis and the maximum age of a consent
        (e.g. 395 days = 13 months). Strictly necessary purposes never need consent. An
        existing key is refused (409); a retry with the same `Idempotency-Key` gets the first
        answer instead."""
        return await _service(request).create_purpose(data, idempotency_key)

    @get("/purposes", guards=[requires("read")], summary="List purposes")
    async def list_purposes(
        self, request: Request[Any, Any, Any], cursor: CursorParam = None, limit: Limit = 50
    ) -> PurposePage:
        """The tenant's purposes by key, a page at a time."""
        return await _service(request).list_purposes(cursor, limit)

    @get("/purposes/{key:str}", guards=[requires("read")], summary="Get a purpose")
    async def get_purpose(self, request: Request[Any, Any, Any], key: _PurposeKey) -> Purpose:
        """One purpose by key."""
        return await _service(request).get_purpose(key)

    @post("/notices", guards=[requires("admin")], summary="Create a notice", opt=problems(409))
    async def create_notice(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[NoticeCreate],
        idempotency_key: IdemKey,
    ) -> Notice:
        """A notice asks about one or more purposes; its texts live in versions. An existing
        key is refused (409); a retry with the same `Idempotency-Key` gets the first answer
        instead."""
        return await _service(request).create_notice(data, idempotency_key)

    @get("/notices", guards=[requires("read")], summary="List notices")
    async def list_notices(
        self, request: Request[Any, Any, Any], cursor: CursorParam = None, limit: Limit = 50
    ) -> NoticePage:
        """The tenant's notices by key, a page at a time."""
        return await _service(request).list_notices(cursor, limit)

    @post(
        "/notices/{key:str}/versions",
        guards=[requires("admin")],
        summary="Draft a notice version",
        opt=problems(409),
    )
    async def add_version(
        self,
        request: Request[Any, Any, Any],
        key: _NoticeKey,
        data: JSONBody[NoticeVersionCreate],
        idempotency_key: IdemKey,
    ) -> NoticeVersion:
        """A new draft version with its text per language. `material` changes make earlier
        consents stale once published; `editorial` ones do not. Version 1 is always material.
        A second draft while one is unpublished is refused (409): correct the draft
        (`PUT …/versions/{version}`) or delete it; a retry with the same `Idempotency-Key`
        gets the first answer instead."""
        return await _service(request).add_version(key, data, idempotency_key)

    @post(
        "/notices/{key:str}/versions/{version:int}/publish",
        guards=[requires("admin")],
        summary="Publish a notice version",
        opt=problems(409),
        status_code=200,
    )
    async def publish(
        self,
        request: Request[Any, Any, Any],
        key: _NoticeKey,
        version: _VersionNumber,
        idempotency_key: IdemKey,
    ) -> NoticeVersion:
        """Publishing makes the version usable as proof in consents and immutable forever.
        Publishing it again is refused (409); a retry with the same `Idempotency-Key` gets the
        first answer instead."""
        return await _service(request).publish(key, version, idempotency_key)

    @put(
        "/notices/{key:str}/versions/{version:int}",
        guards=[requires("admin")],
        summary="Correct a draft notice version",
        opt=problems(409),
    )
    async def replace_draft(
        self,
        request: Request[Any, Any, Any],
        key: _NoticeKey,
        version: _VersionNumber,
        data: JSONBody[NoticeVersionUpdate],
        idempotency_key: IdemKey,
    ) -> NoticeVersion:
        """Replace an unpublished draft's texts, change kind and `shown_since` (a typo fixed
        before publication): the content hash is computed again; the id and number stay. A published
        version is immutable: refused (409), draft a new version instead. Sending the same
        content again changes nothing; a retry with the same `Idempotency-Key` gets the first
        answer. A draft is never usable in consents until it is published."""
        return await _service(request).replace_draft(key, version, data, idempotency_key)

    @delete(
        "/notices/{key:str}/versions/{version:int}",
        guards=[requires("admin")],
        summary="Delete a draft notice version",
        opt=problems(409),
        status_code=200,
    )
    async def delete_draft(
        self,
        request: Request[Any, Any, Any],
        key: _NoticeKey,
        version: _VersionNumber,
        idempotency_key: IdemKey,
    ) -> NoticeVersion:
        """Delete an unpublished draft and answer it as it was; the next draft takes its
        number. A published version can never be deleted (409). Deleting it again answers
        404, unless the retry carries the first request's `Idempotency-Key` (then the first
        answer). The audit log keeps the draft's creation, changes and deletion."""
        return await _service(request).delete_draft(key, version, idempotency_key)

    @get("/notices/{key:str}/versions", guards=[requires("read")], summary="List versions")
    async def versions(
        self,
        request: Request[Any, Any, Any],
        key: _NoticeKey,
        cursor: CursorParam = None,
        limit: Limit = 50,
    ) -> NoticeVersionPage:
        """The versions of a notice, newest first, with texts and content hashes."""
        return await _service(request).versions(key, cursor, limit)

    @post("/vendors", guards=[requires("admin")], summary="Create a vendor", opt=problems(409))
    async def create_vendor(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[VendorCreate],
        idempotency_key: IdemKey,
    ) -> Vendor:
        """A third party that processes data for some purposes (optionally its TCF id). An
        existing name is refused (409); a retry with the same `Idempotency-Key` gets the first
        answer instead."""
        return await _service(request).create_vendor(data, idempotency_key)

    @get("/vendors", guards=[requires("read")], summary="List vendors")
    async def list_vendors(
        self, request: Request[Any, Any, Any], cursor: CursorParam = None, limit: Limit = 50
    ) -> VendorPage:
        """The tenant's vendors by name, a page at a time."""
        return await _service(request).list_vendors(cursor, limit)

    @post(
        "/identifier-types",
        guards=[requires("admin")],
        summary="Define an identifier type",
        opt=problems(409),
    )
    async def create_identifier_type(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[IdentifierTypeCreate],
        idempotency_key: IdemKey,
    ) -> IdentifierType:
        """A custom identifier type (beyond device, email, customer_id, loyalty_card, phone).
        An existing name is refused (409); a retry with the same `Idempotency-Key` gets the
        first answer instead."""
        return await _service(request).create_identifier_type(data, idempotency_key)

    @get("/identifier-types", guards=[requires("read")], summary="List identifier types")
    async def list_identifier_types(
        self, request: Request[Any, Any, Any], cursor: CursorParam = None, limit: Limit = 50
    ) -> IdentifierTypePage:
        """Built-in and custom identifier types by key, a page at a time."""
        return await _service(request).list_identifier_types(cursor, limit)
