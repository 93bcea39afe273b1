"""HTTP: record and read preferences."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import JSONBody, Parameter

from consent.consents.api import request_evidence
from consent.http_params import CursorParam, IdemKey, Limit
from consent.openapi import problems
from consent.preferences.schemas import (
    PreferenceCreate,
    PreferenceHistoryPage,
    PreferenceRecorded,
    SubjectPreferences,
)
from consent.preferences.service import PreferenceService
from consent.tenancy.auth import principal, requires

__all__ = ["PreferenceController"]

_StateSubject = Annotated[
    UUID,
    Parameter(
        description="The subject's id (UUID). A subject merged into another by a link answers "
        "with its surviving subject's preferences. Unknown or erased: 404."
    ),
]
_HistorySubject = Annotated[
    UUID,
    Parameter(
        description="The subject's id (UUID). The history holds the events of its surviving "
        "subject and of every subject linked into that one. Unknown or erased: 404."
    ),
]


def _service(request: Request[Any, Any, Any]) -> PreferenceService:
    return PreferenceService(
        request.app.state.db,
        request.app.state.keyring,
        principal(request).tenant_id,
        request.app.state.audit,
    )


class PreferenceController(Controller):
    path = "/v1"
    tags = ["preferences"]
    security = [{"apiKey": []}]

    @post(
        "/preferences", guards=[requires("write")], summary="Record preferences", opt=problems(404)
    )
    async def record(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[PreferenceCreate],
        idempotency_key: IdemKey,
    ) -> PreferenceRecorded:
        """Channels (e-mail, SMS, push, post, phone), topics and frequency. Preferences are not
        legal consent; they are kept with the same history and proof: truncated IP and user
        agent too, encrypted, only when the tenant enables `store_network_evidence`. A key
        bound to a property records for that property (another `property_id`: 403); a browser
        request must come from one of the property's `allowed_origins` (403). A banner key
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
        "/subjects/{subject_id:uuid}/preferences",
        guards=[requires("read")],
        summary="A subject's preferences",
    )
    async def state(
        self,
        request: Request[Any, Any, Any],
        subject_id: _StateSubject,
        cursor: CursorParam = None,
        limit: Limit = 50,
    ) -> SubjectPreferences:
        """Current value per channel, topic and frequency, by kind, then key, a page at a time
        (a person's topics have no limit): follow `next_cursor` to the end for all of them."""
        return await _service(request).state(subject_id, cursor, limit)

    @get(
        "/subjects/{subject_id:uuid}/preferences/history",
        guards=[requires("read")],
        summary="A subject's preference history",
    )
    async def history(
        self,
        request: Request[Any, Any, Any],
        subject_id: _HistorySubject,
        cursor: CursorParam = None,
        limit: Limit = 50,
    ) -> PreferenceHistoryPage:
        """Every preference event, newest first, including linked subjects."""
        return await _service(request).history(subject_id, cursor, limit)
