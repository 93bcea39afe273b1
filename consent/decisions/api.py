"""HTTP: decisions (one, a batch, an audience stream), a logged decision and its replay, the
policy being served. Handlers are thin: `DecisionService` and `AudienceFilter` do the work."""

from __future__ import annotations

from typing import Annotated, Any, Final
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter
from litestar.response import Stream

from consent.decisions.actions import describe_actions
from consent.decisions.audience import MAX_LINE_BYTES, AudienceFilter
from consent.decisions.policy import PolicyRuntime
from consent.decisions.reasons import choose_language, reasons_in
from consent.decisions.schemas import (
    ActionCatalogue,
    AudienceHeader,
    AudienceMember,
    AudienceSummaryLine,
    BatchRequest,
    BatchResponse,
    DecisionOut,
    DecisionRequest,
    PolicyStatus,
    ReasonCatalogue,
    StoredDecision,
    checked_field,
)
from consent.decisions.service import Caller, DecisionService
from consent.errors import Problem, exception_handlers, language_headers
from consent.middleware import BODY_MEDIA_OPT
from consent.openapi import PROBLEMS_OPT, ndjson_body, problems
from consent.tenancy.auth import principal, requires

__all__ = ["DecisionController"]

NDJSON: Final = "application/x-ndjson"
# Without a decision, a 503 says which part failed: the database or the policy engine.
_POLICY: Final = ("service-unavailable", "policy-unavailable")
BATCH_MAX_BODY: Final = 16 * 1024 * 1024
LangParam = Annotated[
    str | None,
    QueryParameter(
        description="Language of the texts (BCP 47, e.g. `de`); English if absent.", max_length=35
    ),
]
AcceptLanguage = Annotated[
    str | None,
    HeaderParameter(
        name="Accept-Language", description="Used when `lang` is absent.", max_length=500
    ),
]
DecisionId = Annotated[
    UUID,
    PathParameter(
        description="The `decision_id` answered when the decision was made (UUID); 404 when the "
        "caller's tenant logged no such decision."
    ),
]
ReplayParam = Annotated[
    bool,
    QueryParameter(description="Also evaluate the stored input under the policy in force now."),
]


def _caller(request: Request[Any, Any, Any]) -> Caller:
    who = principal(request)
    return Caller(
        tenant_id=who.tenant_id,
        api_key_id=who.key_id,
        request_id=request.scope.get("state", {}).get("request_id"),
    )


def _decisions(request: Request[Any, Any, Any]) -> DecisionService:
    service: DecisionService = request.app.state.decisions
    return service


_ON_VALIDATION: Final = exception_handlers()[ValidationException]


def _on_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    """The app's validation problem, with each error of a field checked in its struct's
    `__post_init__` (`context.jurisdiction`) named by the field's path, not the struct's."""
    extra = exc.extra
    if isinstance(extra, list):
        extra = [_name_checked_field(item) for item in extra]
    problem: Response[Problem] = _ON_VALIDATION(
        request, ValidationException(detail=exc.detail, extra=extra)
    )
    return problem


def _name_checked_field(item: Any) -> Any:
    if not isinstance(item, dict) or item.get("source") != "body" or "key" not in item:
        return item
    return {**item, "key": checked_field(str(item["key"]), str(item.get("message", "")))}


class DecisionController(Controller):
    path = "/v1"
    tags = ["decisions"]
    security = [{"apiKey": []}]
    exception_handlers = {ValidationException: _on_validation}

    @post(
        "/decisions",
        guards=[requires("decide")],
        summary="Decide one action for one subject",
        opt=problems(503, slugs=_POLICY),
        status_code=200,
    )
    async def decide(
        self, request: Request[Any, Any, Any], data: JSONBody[DecisionRequest]
    ) -> DecisionOut:
        """May `context.requester` do `action` for `subject` (by id or identifier) now? The
        policy decides from the subject's current consents in the ledger, the tenant's purposes
        and the context. Every decision is logged, with its exact policy input, before it is
        answered. `allow` is true only when no rule denies; an unknown subject, action or purpose
        is denied. When no decision can be made (ledger, log or policy engine unavailable) the
        answer is a 503 problem (`service-unavailable`, `policy-unavailable`), never a denial
        and never an allow."""
        return await _decisions(request).decide(_caller(request), data)

    @post(
        "/decisions/batch",
        guards=[requires("decide")],
        summary="Decide up to 10,000 actions in one call",
        opt=problems(503, slugs=_POLICY),
        status_code=200,
        request_max_body_size=BATCH_MAX_BODY,
    )
    async def decide_batch(
        self, request: Request[Any, Any, Any], data: JSONBody[BatchRequest]
    ) -> BatchResponse:
        """Each decision is exactly the one the single call would give for its subject, action
        and context; all are logged (in one commit) before the answer. One invalid request fails
        the whole batch with a 400 naming it; a 503 means no decision at all."""
        return await _decisions(request).decide_batch(_caller(request), data.decisions)

    @get(
        "/decisions/{decision_id:uuid}",
        guards=[requires("read")],
        summary="A logged decision, optionally replayed",
        opt=problems(503, slugs=_POLICY),
    )
    async def get_decision(
        self,
        request: Request[Any, Any, Any],
        decision_id: DecisionId,
        replay: ReplayParam = False,
    ) -> StoredDecision:
        """The decision as logged: who asked, the action, the result and the exact policy input
        (consent state, purposes, context and `now_ns`). With `replay=true` the stored input is
        evaluated again under the policy in force now; `replay.differs` tells whether today's
        answer would differ."""
        tenant_id = principal(request).tenant_id
        return await _decisions(request).get(tenant_id, decision_id, replay=replay)

    @post(
        "/audiences/filter",
        guards=[requires("decide")],
        summary="Filter an audience (NDJSON stream in and out)",
        # 400 (a bad header, a line too long) is a validation error; only the 503 has _POLICY.
        opt={
            PROBLEMS_OPT: problems(400)[PROBLEMS_OPT] | problems(503, slugs=_POLICY)[PROBLEMS_OPT],
            BODY_MEDIA_OPT: NDJSON,
            **ndjson_body(
                "A header line (`AudienceHeader`), then one member per line (`AudienceMember`). "
                "Streamed: no limit on the number of lines; a line may be at most "
                f"{MAX_LINE_BYTES:,} bytes (a longer one fails the request: a 400 naming the "
                "line).",
                AudienceHeader,
                AudienceMember,
            ),
        },
        status_code=200,
        request_max_body_size=None,
        media_type=NDJSON,
        responses={
            200: ResponseSpec(
                data_container=AudienceSummaryLine,
                media_type=NDJSON,
                description='The allowed members\' lines, verbatim (`"output": "all"`: one '
                '`{"line": n, "allow": bool, "reasons": [...]}` per valid member, in order), '
                "then this `summary` line, always last.",
                generate_examples=False,
            )
        },
    )
    async def filter_audience(self, request: Request[Any, Any, Any]) -> Stream:
        """Body (`application/x-ndjson`): a header line `{"action": "email.marketing",
        "context": {"requester": "esp", ...}, "output": "allowed"}`, then one member per line,
        `{"type": "email", "value": "..."}` or `{"subject_id": "..."}`, optionally overriding
        `jurisdiction`, `age`, `gpc`, `parental_consent`, `parental_consent_third_parties` or
        `limit_sensitive` for that member.
        Answer: the lines of the allowed members, verbatim (`"output": "all"`: one
        `{"line", "allow", "reasons"}` per member), then `{"summary": {...}}` with the counts of
        denied members by reason. Each member gets exactly the single call's decision, as of the
        start of the request. The request is decided and logged as it streams in, in bounded
        memory; the answer is sent when all of it is decided: all or nothing (a 503 problem when
        no decision can be made). A run that fails after some members were decided keeps their
        decisions logged, and its problem's `Audience-Id` header names the run they are logged
        under. Invalid member lines are skipped and counted.
        A generated client (openapi-python-client and the like) cannot call this operation: it
        does not stream NDJSON. Send the lines with an HTTP client that streams a request body
        and read the answer line by line."""
        audiences: AudienceFilter = request.app.state.audiences
        answer = await audiences.run(_caller(request), request.stream())
        return Stream(answer.body(), media_type=NDJSON)

    @get("/policy", guards=[requires("read")], summary="The policy being served")
    async def policy(self, request: Request[Any, Any, Any]) -> PolicyStatus:
        """Revision (content hash of the Rego policies and data) of the bundle this process
        decides with, the engine, when it was loaded and the decision cache's statistics.
        Operators reload it with `consent policy reload`."""
        runtime: PolicyRuntime = request.app.state.policy
        return runtime.status()

    @get("/policy/actions", guards=[requires("read")], summary="What each action needs")
    async def actions(self, request: Request[Any, Any, Any]) -> ActionCatalogue:
        """Every action the policy being served decides on (`email.marketing`,
        `ads.retarget`, ...), the purposes each needs, and which of them the caller's catalogue
        lacks: a decision on an action with a missing purpose is always
        `denied.unknown_purpose`, so a new tenant creates those purposes first. The actions
        are the policy's data (`policies/data/actions.json`), part of its revision."""
        runtime: PolicyRuntime = request.app.state.policy
        bundle = runtime.engine.bundle
        known = await _decisions(request).purpose_keys(principal(request).tenant_id)
        return ActionCatalogue(revision=bundle.revision, actions=describe_actions(bundle, known))

    @get(
        "/policy/reasons",
        guards=[requires("read")],
        summary="What each reason code means",
    )
    async def reasons(
        self,
        request: Request[Any, Any, Any],
        lang: LangParam = None,
        accept_language: AcceptLanguage = None,
    ) -> Response[ReasonCatalogue]:
        """Every reason code the policy being served can give (`denied.gpc`,
        `allowed.consent`, ...), whether it allows, and a sentence a person can read: for a
        marketer's tool that shows why a customer was left out, or a customer's privacy page.
        The language is `lang` if the catalogue has it, else the best match of the
        Accept-Language header, else English (`language` in the answer says which). The texts
        are the policy's data (`policies/data/reasons.json`), part of its revision. The answer
        names its language in `Content-Language` too, and varies by `Accept-Language`."""
        runtime: PolicyRuntime = request.app.state.policy
        bundle = runtime.engine.bundle
        language = choose_language(bundle, lang, accept_language)
        catalogue = ReasonCatalogue(
            revision=bundle.revision, language=language, reasons=reasons_in(bundle, language)
        )
        return Response(catalogue, headers=language_headers(language))
