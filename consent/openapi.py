"""The error answers in the OpenAPI document: RFC 9457 problems, per operation.

Litestar documents a validation error as its own `{"status_code", "detail", "extra"}` JSON,
while every error this service sends is an `application/problem+json` `Problem`
(consent.errors). `document_problems` replaces those with the truth when the document is
built: each operation lists the problem statuses it can answer with, derived from what the
operation is (parameters or a body: 400, and under /v1/ always, for a query parameter the
operation does not take; authenticated: 401 and 403; a path parameter: 404; a body: 413 and
415; an `Idempotency-Key`: 422; under /v1/, where everything needs the database: 503)
and from what its handler declares with `opt=problems(404, 409)` (a subject named in the body,
a name already taken: what only the service logic knows about).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    Schema,
)
from litestar.routes import HTTPRoute

from consent.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPES

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.openapi.spec import OpenAPI, Operation

__all__ = ["PROBLEMS_OPT", "document_problems", "problems"]

PROBLEMS_OPT: Final = "problems"
_SLUGS: Final[dict[int, tuple[str, ...]]] = {
    400: ("validation-error",),
    401: ("unauthorized",),
    403: ("forbidden",),
    404: ("not-found",),
    409: ("conflict",),
    413: ("payload-too-large",),
    415: ("unsupported-media-type",),
    422: ("idempotency-key-reused",),
    503: ("service-unavailable",),
}
_STR: Final = Schema(type=OpenAPIType.STRING)
_REQUEST_ID: Final = OpenAPIHeader(
    schema=_STR,
    description="The request's id: the caller's `X-Request-ID` when it is 8-64 of `A-Z a-z 0-9 "
    ". _ -`, else one made by the server. In every log line of the request, and in a problem.",
)
_UNAVAILABLE: Final = 503


def problems(*statuses: int, slugs: tuple[str, ...] = ()) -> dict[str, dict[int, tuple[str, ...]]]:
    """A handler's `opt` declaring the problem statuses its service logic can answer with beyond
    those its shape implies (see module): `@post(..., opt=problems(409))`; `slugs`: their
    problem types when not the statuses' usual ones (`problems(409, slugs=("audit-pending",))`)."""
    return {PROBLEMS_OPT: {status: slugs or _SLUGS[status] for status in statuses}}


def _component_schemas() -> dict[str, Schema]:
    field_error = Schema(
        type=OpenAPIType.OBJECT,
        required=["field", "message"],
        properties={
            "field": Schema(
                type=OpenAPIType.STRING,
                description="Where the problem is: the field's path in the body "
                "(`identifier.value`, `choices[1].purpose`) or a parameter's name.",
            ),
            "message": Schema(
                type=OpenAPIType.STRING,
                description="What is wrong with it; never echoes the value sent.",
            ),
        },
        description="One bad field of a request.",
    )
    problem = Schema(
        type=OpenAPIType.OBJECT,
        required=["type", "title", "status"],
        properties={
            "type": Schema(
                type=OpenAPIType.STRING,
                description="`/problems/<slug>`: a stable identifier of the kind of problem, "
                "and a page explaining it.",
                enum=[f"/problems/{slug}" for slug in PROBLEM_TYPES],
            ),
            "title": Schema(
                type=OpenAPIType.STRING, description="A short summary of the problem type."
            ),
            "status": Schema(
                type=OpenAPIType.INTEGER, description="The HTTP status code of this answer."
            ),
            "detail": Schema(
                type=OpenAPIType.STRING,
                description="What went wrong with this request, for a person.",
            ),
            "instance": Schema(
                type=OpenAPIType.STRING, description="The path of the request that failed."
            ),
            "request_id": Schema(
                type=OpenAPIType.STRING,
                description="The request's id, as in the `X-Request-ID` header: quote it when "
                "asking about the failure.",
            ),
            "errors": Schema(
                type=OpenAPIType.ARRAY,
                items=Reference(ref="#/components/schemas/FieldError"),
                description="For a validation error: every bad field at once.",
            ),
        },
        description="An RFC 9457 problem details object (`application/problem+json`).",
    )
    return {"Problem": problem, "FieldError": field_error}


def _response(status: int, slugs: tuple[str, ...]) -> OpenAPIResponse:
    description = " Or: ".join(
        f"{PROBLEM_TYPES[slug][0]} (`/problems/{slug}`): {PROBLEM_TYPES[slug][1]}" for slug in slugs
    )
    headers: dict[str, OpenAPIHeader | Reference] | None = None
    if status == _UNAVAILABLE:
        headers = {
            "Retry-After": OpenAPIHeader(
                schema=_STR, description="Seconds to wait before retrying."
            )
        }
    return OpenAPIResponse(
        description=description,
        headers=headers,
        content={
            PROBLEM_MEDIA_TYPE: OpenAPIMediaType(
                schema=Reference(ref="#/components/schemas/Problem")
            )
        },
    )


def _statuses(
    path: str, operation: Operation, declared: dict[int, tuple[str, ...]]
) -> dict[int, tuple[str, ...]]:
    params = operation.parameters or []
    statuses: set[int] = set()
    if params or operation.request_body is not None or path.startswith("/v1/"):
        statuses.add(400)  # under /v1/: an unknown query parameter (KnownQueryMiddleware)
    if operation.security:
        statuses |= {401, 403}
    if any(getattr(p, "param_in", None) == "path" for p in params):
        statuses.add(404)
    if operation.request_body is not None:
        statuses |= {413, 415}
    if any(getattr(p, "name", None) == "Idempotency-Key" for p in params):
        statuses.add(422)
    if path.startswith("/v1/"):
        statuses.add(_UNAVAILABLE)
    return {status: _SLUGS[status] for status in sorted(statuses)} | declared


def _litestar_error(answer: OpenAPIResponse | Reference) -> bool:
    """Whether `answer` is Litestar's documentation of its own error body, which this service
    never sends (`{"status_code", "detail", "extra"}`)."""
    if not isinstance(answer, OpenAPIResponse):
        return False
    media = (answer.content or {}).get("application/json")
    schema = media.schema if media is not None else None
    return isinstance(schema, Schema) and "status_code" in (schema.properties or {})


class _DocumentedOpenAPIPlugin(OpenAPIPlugin):
    """Litestar's OpenAPI plugin, whose document gets its problem answers when Litestar builds
    it: on its first request, not at every start (building it costs ~50 ms per app)."""

    __slots__ = ()

    def provide_openapi(self) -> OpenAPI:
        fresh = self._openapi is None
        openapi = super().provide_openapi()
        if fresh:
            _document(self.app, openapi)
        return openapi


def document_problems(app: Litestar) -> None:
    """Give every operation of `app`'s OpenAPI document its problem answers (see module), when
    the document is built. Litestar has no hook for that: its plugin (same slots, one method
    more) is given the subclass above; tests/integration/foundation/test_openapi_problems.py
    fails if a Litestar release changes what this relies on."""
    plugin = app.plugins.get(OpenAPIPlugin)
    if type(plugin) is OpenAPIPlugin:
        plugin.__class__ = _DocumentedOpenAPIPlugin


def _document(app: Litestar, openapi: OpenAPI) -> None:
    declared: dict[tuple[str, str], dict[int, tuple[str, ...]]] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for verb, (handler, _) in route.route_handler_map.items():
                codes = handler.opt.get(PROBLEMS_OPT, {})
                declared[(route.path_format or "/", str(verb).lower())] = dict(codes)
    if openapi.components.schemas is None:
        openapi.components.schemas = {}
    openapi.components.schemas.update(_component_schemas())
    for path, item in (openapi.paths or {}).items():
        for method in ("get", "head", "put", "post", "delete", "patch"):
            operation: Operation | None = getattr(item, method, None)
            if operation is None:
                continue
            responses = {
                code: answer
                for code, answer in (operation.responses or {}).items()
                if not _litestar_error(answer)
            }
            found = _statuses(path, operation, declared.get((path, method), {}))
            for status in sorted(found):
                responses[str(status)] = _response(status, found[status])
            for answer in responses.values():
                if isinstance(answer, OpenAPIResponse):
                    answer.headers = {**(answer.headers or {}), "X-Request-ID": _REQUEST_ID}
            operation.responses = responses
