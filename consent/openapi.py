"""The error answers in the OpenAPI document: RFC 9457 problems, per operation.

Litestar documents a validation error as its own `{"status_code", "detail", "extra"}` JSON,
while every error this service sends is an `application/problem+json` `Problem`
(consent.errors). `document_problems` replaces those with the truth when the document is
built: each operation lists the problem statuses it can answer with, derived from what the
operation is (parameters or a body: 400, and under /v1/ always, for a query parameter the
operation does not take; authenticated: 401 and 403; a path parameter: 404; a body: 413,
naming the operation's limit, and 415; an `Idempotency-Key`: 422; under /v1/, where everything
needs the database: 503)
and from what its handler declares with `opt=problems(404, 409)` (a subject named in the body,
a name already taken: what only the service logic knows about). Every operation can answer 500
`internal-error` (a failure the service did not foresee), and documents it.

It also puts right what Litestar gets wrong for a client generator: each operation gets a
short id (`OPERATION_IDS`: the generated function's name) instead of one spelling its path; a
schema named after its
module (two structs of one name: `decisions_engine_ConsentState`) gets a name of its own (a
generator makes one class per name and dropped both, with every model using them); and a body
read as a stream (`opt=ndjson_body(...)`) is documented, line type by line type, with its 415.
Litestar also leaves out bounds the code declares (`ge=0` is falsy to it; a list's or a map's
items lose theirs): `_restore_bounds` puts back every one msgspec (bodies, answers) or a
handler's parameter declares. A HEAD answer is documented without a body, and a problem's
`type` enum carries `x-enum-varnames` (`NOT_FOUND`), as generated clients name members after it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import msgspec
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Parameter,
    Reference,
    RequestBody,
    Schema,
)
from litestar.params import KwargDefinition
from litestar.routes import HTTPRoute

from consent.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPES

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.handlers import HTTPRouteHandler
    from litestar.openapi.spec import OpenAPI, Operation

__all__ = [
    "OPERATION_IDS",
    "PROBLEMS_OPT",
    "document_problems",
    "ndjson_body",
    "problems",
    "service_structs",
]

PROBLEMS_OPT: Final = "problems"
STREAM_BODY_OPT: Final = "stream_body"
# Each operation's id: a generated client's function name (`create_purpose`), in place of
# Litestar's path-derived ones (`V1PurposesCreatePurpose`). A new operation needs one here
# (tests/integration/foundation/test_openapi_document.py fails until it has one).
OPERATION_IDS: Final[dict[tuple[str, str], str]] = {
    ("/health/live", "get"): "live",
    ("/health/live", "head"): "liveHead",
    ("/health/ready", "get"): "ready",
    ("/health/ready", "head"): "readyHead",
    ("/problems/{slug}", "get"): "getProblemType",
    ("/v1/tenant", "get"): "getTenant",
    ("/v1/tenant/settings", "put"): "putTenantSettings",
    ("/v1/api-keys", "get"): "listApiKeys",
    ("/v1/api-keys", "post"): "createApiKey",
    ("/v1/api-keys/{api_key_id}", "delete"): "revokeApiKey",
    ("/v1/properties", "get"): "listProperties",
    ("/v1/properties", "post"): "createProperty",
    ("/v1/purposes", "get"): "listPurposes",
    ("/v1/purposes", "post"): "createPurpose",
    ("/v1/purposes/{key}", "get"): "getPurpose",
    ("/v1/notices", "get"): "listNotices",
    ("/v1/notices", "post"): "createNotice",
    ("/v1/notices/{key}/versions", "get"): "listNoticeVersions",
    ("/v1/notices/{key}/versions", "post"): "createNoticeVersion",
    ("/v1/notices/{key}/versions/{version}", "put"): "replaceNoticeVersionDraft",
    ("/v1/notices/{key}/versions/{version}", "delete"): "deleteNoticeVersionDraft",
    ("/v1/notices/{key}/versions/{version}/publish", "post"): "publishNoticeVersion",
    ("/v1/identifier-types", "get"): "listIdentifierTypes",
    ("/v1/identifier-types", "post"): "createIdentifierType",
    ("/v1/vendors", "get"): "listVendors",
    ("/v1/vendors", "post"): "createVendor",
    ("/v1/consents", "post"): "recordConsent",
    ("/v1/subjects/lookup", "post"): "lookupSubject",
    ("/v1/subjects/link", "post"): "linkSubjects",
    ("/v1/subjects/{subject_id}/consents", "get"): "getConsentState",
    ("/v1/subjects/{subject_id}/consents/history", "get"): "getConsentHistory",
    ("/v1/preferences", "post"): "recordPreferences",
    ("/v1/subjects/{subject_id}/preferences", "get"): "getPreferences",
    ("/v1/subjects/{subject_id}/preferences/history", "get"): "getPreferenceHistory",
    ("/v1/subjects/{subject_id}", "delete"): "eraseSubject",
    ("/v1/subjects/erase", "post"): "eraseSubjectByIdentifier",
    ("/v1/subjects/{subject_id}/export", "get"): "exportSubject",
    ("/v1/subjects/export", "post"): "exportSubjectByIdentifier",
    ("/v1/subjects/{subject_id}/activity", "get"): "getSubjectActivity",
    ("/v1/decisions", "post"): "decide",
    ("/v1/decisions/batch", "post"): "decideBatch",
    ("/v1/decisions/{decision_id}", "get"): "getDecision",
    ("/v1/audiences/filter", "post"): "filterAudience",
    ("/v1/policy", "get"): "getPolicy",
    ("/v1/policy/actions", "get"): "listPolicyActions",
    ("/v1/policy/reasons", "get"): "listPolicyReasons",
    ("/v1/audit/checkpoint", "get"): "getAuditCheckpoint",
    ("/v1/audit/checkpoints/{size}", "get"): "getAuditCheckpointAt",
    ("/v1/audit/consistency", "get"): "getAuditConsistencyProof",
    ("/v1/audit/entries", "get"): "listAuditEntries",
    ("/v1/audit/events/{event_uuid}", "get"): "getAuditEvent",
    ("/v1/audit/events/{event_uuid}/proof", "get"): "getAuditInclusionProof",
    ("/v1/audit/export", "get"): "exportAuditLeaves",
    ("/.well-known/consent-audit-keys", "get"): "getAuditKeys",
    ("/audit/verify", "get"): "auditVerifyPage",
}
# Component names Litestar prefixes with their module because two structs share a name.
_COMPONENT_NAMES: Final = {
    "consents_schemas_ConsentState": "ConsentState",
    "decisions_engine_ConsentState": "PolicyConsentState",
}
_SLUGS: Final[dict[int, tuple[str, ...]]] = {
    400: ("validation-error",),
    401: ("unauthorized",),
    403: ("forbidden",),
    404: ("not-found",),
    409: ("conflict",),
    413: ("payload-too-large",),
    415: ("unsupported-media-type",),
    422: ("idempotency-key-reused",),
    500: ("internal-error",),
    503: ("service-unavailable",),
}
_STR: Final = Schema(type=OpenAPIType.STRING)
_REQUEST_ID: Final = OpenAPIHeader(
    schema=_STR,
    description="The request's id: the caller's `X-Request-ID` when it is 8-64 of `A-Z a-z 0-9 "
    ". _ -`, else one made by the server. In every log line of the request, and in a problem.",
)
_UNAVAILABLE: Final = 503
_INTERNAL: Final = 500  # any operation can fail in a way the service did not foresee
_TOO_LARGE: Final = 413  # its description names the operation's limit
_MIB: Final = 1024 * 1024
_AUTHENTICATE: Final = {
    401: "`Bearer`: send an API key as `Authorization: Bearer csk_...`.",
    403: "When the key lacks the operation's scope: "
    '`Bearer error="insufficient_scope", scope="<scope>"`.',
}
# JSON Schema bound keywords (as msgspec writes them) and the `Schema` attributes they are.
_BOUNDS: Final = {
    "minimum": "minimum",
    "maximum": "maximum",
    "exclusiveMinimum": "exclusive_minimum",
    "exclusiveMaximum": "exclusive_maximum",
    "multipleOf": "multiple_of",
    "minLength": "min_length",
    "maxLength": "max_length",
    "pattern": "pattern",
    "minItems": "min_items",
    "maxItems": "max_items",
    "minProperties": "min_properties",
    "maxProperties": "max_properties",
}
# A parameter's declared bounds (`Parameter(ge=0)`) and the `Schema` attributes they are.
_PARAMETER_BOUNDS: Final = {
    "ge": "minimum",
    "le": "maximum",
    "gt": "exclusive_minimum",
    "lt": "exclusive_maximum",
    "multiple_of": "multiple_of",
    "min_length": "min_length",
    "max_length": "max_length",
    "pattern": "pattern",
    "min_items": "min_items",
    "max_items": "max_items",
}


@dataclasses.dataclass
class _NamedEnumSchema(Schema):
    """A string enum whose members a client generator names after `x-enum-varnames`
    (openapi-generator, openapi-python-client, oapi-codegen, ...) rather than `VALUE_0`, ...:
    what it does when a value is no identifier (`/problems/not-found`)."""

    enum_varnames: list[str] | None = dataclasses.field(
        default=None, metadata={"alias": "x-enum-varnames"}
    )


def problems(*statuses: int, slugs: tuple[str, ...] = ()) -> dict[str, dict[int, tuple[str, ...]]]:
    """A handler's `opt` declaring the problem statuses its service logic can answer with beyond
    those its shape implies (see module): `@post(..., opt=problems(409))`; `slugs`: their
    problem types when not the statuses' usual ones (`problems(409, slugs=("audit-pending",))`)."""
    return {PROBLEMS_OPT: {status: slugs or _SLUGS[status] for status in statuses}}


def ndjson_body(
    description: str, *lines: type[msgspec.Struct]
) -> dict[str, tuple[str, tuple[type[msgspec.Struct], ...]]]:
    """A handler's `opt` documenting the NDJSON body it reads from the request stream (Litestar
    documents only a `data` parameter): each line is one of `lines`."""
    return {STREAM_BODY_OPT: (description, lines)}


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
            "type": _NamedEnumSchema(
                type=OpenAPIType.STRING,
                description="`/problems/<slug>`: a stable identifier of the kind of problem, "
                "and a page explaining it.",
                enum=[f"/problems/{slug}" for slug in PROBLEM_TYPES],
                enum_varnames=[slug.upper().replace("-", "_") for slug in PROBLEM_TYPES],
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
    elif status in _AUTHENTICATE:
        headers = {
            "WWW-Authenticate": OpenAPIHeader(schema=_STR, description=_AUTHENTICATE[status])
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


def _bytes(size: int) -> str:
    """`1,048,576 bytes (1 MiB)`: a body size limit, in the document (a 413's detail gives
    the same number of bytes)."""
    whole_mib = size >= _MIB and size % _MIB == 0
    return f"{size:,} bytes ({size // _MIB} MiB)" if whole_mib else f"{size:,} bytes"


def _statuses(
    path: str, operation: Operation, handler: HTTPRouteHandler | None
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
        statuses.add(415)
        if handler is None or handler.resolve_request_max_body_size() is not None:
            statuses.add(413)
    if any(getattr(p, "name", None) == "Idempotency-Key" for p in params):
        statuses.add(422)
    if path.startswith("/v1/"):
        statuses.add(_UNAVAILABLE)
    statuses.add(_INTERNAL)  # anywhere: a failure the service did not foresee
    declared = dict(handler.opt.get(PROBLEMS_OPT, {})) if handler is not None else {}
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


def _rename_references(node: object, names: dict[str, str]) -> None:
    """Point every `$ref` under `node` (the spec's dataclasses, lists and maps) at `names`."""
    if isinstance(node, Reference):
        target = node.ref.rsplit("/", 1)
        if len(target) == 2 and target[1] in names:  # noqa: PLR2004
            node.ref = f"{target[0]}/{names[target[1]]}"
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        for field in dataclasses.fields(node):
            _rename_references(getattr(node, field.name), names)
    elif isinstance(node, dict):
        for value in node.values():
            _rename_references(value, names)
    elif isinstance(node, list):
        for value in node:
            _rename_references(value, names)


def _rename_components(openapi: OpenAPI, schemas: dict[str, Schema]) -> None:
    names = {old: new for old, new in _COMPONENT_NAMES.items() if old in schemas}
    if not names:
        return
    for old, new in names.items():
        schemas[old].title = new  # a generator names its class after the title
    renamed = {names.get(key, key): schema for key, schema in schemas.items()}
    schemas.clear()
    schemas.update(renamed)
    _rename_references(openapi, names)


def service_structs() -> dict[str, set[type[msgspec.Struct]]]:
    """Every msgspec struct of the service (`consent.*` modules), by class name."""
    found: dict[str, set[type[msgspec.Struct]]] = {}
    pending: list[type[msgspec.Struct]] = [msgspec.Struct]
    while pending:
        for sub in pending.pop().__subclasses__():
            pending.append(sub)
            if sub.__module__.startswith("consent."):
                found.setdefault(sub.__name__, set()).add(sub)
    return found


def _structs(schemas: dict[str, Any]) -> dict[str, type[msgspec.Struct]]:
    """The service's structs by component name: the class name, or for a name two structs
    share, the name `_COMPONENT_NAMES` gives Litestar's (`consents_schemas_ConsentState`) when
    both are documented, else the one whose fields are the component's properties (an API
    answer, not the audit leaf of the same name)."""
    structs: dict[str, type[msgspec.Struct]] = {}
    for name, classes in service_structs().items():
        component = schemas.get(name)
        properties = set(getattr(component, "properties", None) or ())
        for struct in classes:
            module = struct.__module__.removeprefix("consent.").replace(".", "_")
            qualified = _COMPONENT_NAMES.get(f"{module}_{name}")
            if len(classes) == 1:
                structs[name] = struct
            elif qualified is not None and qualified in schemas:
                structs[qualified] = struct
            elif properties and properties == {
                field.encode_name for field in msgspec.structs.fields(struct)
            }:
                structs[name] = struct
    return structs


def _describe_components(schemas: dict[str, Schema]) -> None:
    """Each struct's component is described by the struct's docstring, or not at all. Litestar
    gives a component the description of the first field that refers to it with one (a
    field's `msgspec.Meta`), and which field comes first depends on the order it walks the
    routes in, which changes from one process to the next: the document must not."""
    structs = _structs(schemas)
    for name, schema in schemas.items():
        struct = structs.get(name)
        if struct is not None and isinstance(schema, Schema):
            doc = struct.__doc__  # its own: inspect.getdoc would give msgspec.Struct's
            schema.description = " ".join(doc.split()) if doc else None


def _alternatives(declared: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """`declared` (a JSON schema by msgspec) and each of its `anyOf` alternatives."""
    yield declared
    for part in declared.get("anyOf", ()):
        yield from _alternatives(part)


def _documented_alternatives(schema: Schema | Reference | bool | None) -> Iterator[Schema]:
    """`schema` (as Litestar documents a value) and each of its `oneOf`/`anyOf` alternatives."""
    if isinstance(schema, Schema):
        yield schema
        for part in (*(schema.one_of or ()), *(schema.any_of or ())):
            yield from _documented_alternatives(part)


def _bound(documented: Schema | Reference | bool | None, declared: dict[str, Any]) -> None:
    """Give `documented` each bound of `declared` that none of its alternatives has. Bound
    keywords apply to their own type only (`minimum` to numbers), so one on the union (where
    Litestar puts them: `oneOf: [integer, null], maximum: 150`) bounds what it should."""
    if not isinstance(documented, Schema):
        return
    parts = list(_documented_alternatives(documented))
    for alternative in _alternatives(declared):
        for keyword, attribute in _BOUNDS.items():
            if keyword in alternative and all(getattr(p, attribute) is None for p in parts):
                setattr(documented, attribute, alternative[keyword])
        for keyword, attribute in (
            ("items", "items"),
            ("additionalProperties", "additional_properties"),
        ):
            inner = alternative.get(keyword)
            if isinstance(inner, dict):
                for part in parts:
                    _bound(getattr(part, attribute), inner)
        names = alternative.get("propertyNames")
        if isinstance(names, dict) and names.keys() & _BOUNDS.keys():
            for part in parts:
                if part.type == OpenAPIType.OBJECT and part.property_names is None:
                    part.property_names = Schema()
                _bound(part.property_names, names)


@functools.cache
def _declared_properties(structs: tuple[type[msgspec.Struct], ...]) -> list[dict[str, Any]]:
    """Each struct's properties as msgspec validates them (its JSON schema; ~40 ms for all,
    once per process: not again for each app, as in the tests)."""
    refs, definitions = msgspec.json.schema_components(structs)
    return [definitions[ref["$ref"].rsplit("/", 1)[1]].get("properties", {}) for ref in refs]


def _restore_bounds(schemas: dict[str, Any]) -> None:
    """Each struct's component gets the bounds msgspec enforces on its fields (and their items
    and keys) where Litestar's schema lacks them: it drops a bound of 0 and inner types'."""
    structs = _structs(schemas)
    components = [
        (schema, structs[name])
        for name, schema in schemas.items()
        if name in structs and isinstance(schema, Schema)
    ]
    properties = _declared_properties(tuple(struct for _, struct in components))
    for (schema, _), declared in zip(components, properties, strict=True):
        for field, documented in (schema.properties or {}).items():
            if field in declared:
                _bound(documented, declared[field])


def _bound_parameters(operation: Operation, handler: HTTPRouteHandler) -> None:
    """Each parameter gets the bounds its handler declares (`QueryParameter(ge=0)`) where
    Litestar's schema lacks them (it drops falsy ones for an optional parameter), and an
    integer bound as declared: Litestar makes it a float (2**63 - 1 became 2**63)."""
    declared: dict[str, KwargDefinition] = {}
    for name, field in handler.parsed_fn_signature.parameters.items():
        if isinstance(field.kwarg_definition, KwargDefinition):
            declared[getattr(field.kwarg_definition, "name", None) or name] = field.kwarg_definition
    for parameter in operation.parameters or ():
        if not isinstance(parameter, Parameter) or (kwarg := declared.get(parameter.name)) is None:
            continue
        parts = list(_documented_alternatives(parameter.schema))
        for attribute, schema_attribute in _PARAMETER_BOUNDS.items():
            value = getattr(kwarg, attribute, None)
            if not parts or value is None:
                continue
            if all(getattr(p, schema_attribute) is None for p in parts):
                setattr(parts[0], schema_attribute, value)
            elif isinstance(value, int) and not isinstance(value, bool):
                for part in parts:
                    if isinstance(getattr(part, schema_attribute), float):
                        setattr(part, schema_attribute, value)


def _stream_body(
    schemas: dict[str, Any], description: str, lines: tuple[type[msgspec.Struct], ...]
) -> RequestBody:
    """The NDJSON body of `lines`; their components are added (JSON Schema 2020-12, as in 3.1)
    where Litestar has not made them already."""
    refs, components = msgspec.json.schema_components(
        lines, ref_template="#/components/schemas/{name}"
    )
    for name, component in components.items():
        schemas.setdefault(name, component)
    one_of = [Reference(ref=ref["$ref"]) for ref in refs]
    return RequestBody(
        description=description,
        required=True,
        content={"application/x-ndjson": OpenAPIMediaType(schema=Schema(one_of=one_of))},
    )


def _document(app: Litestar, openapi: OpenAPI) -> None:
    handlers: dict[tuple[str, str], HTTPRouteHandler] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for verb, (route_handler, _) in route.route_handler_map.items():
                handlers[(route.path_format or "/", str(verb).lower())] = route_handler
    if openapi.components.schemas is None:
        openapi.components.schemas = {}
    schemas = openapi.components.schemas
    _rename_components(openapi, schemas)
    _describe_components(schemas)
    _restore_bounds(schemas)
    schemas.update(_component_schemas())
    for path, item in (openapi.paths or {}).items():
        for method in ("get", "head", "put", "post", "delete", "patch"):
            operation: Operation | None = getattr(item, method, None)
            if operation is not None:
                _document_operation(path, method, operation, handlers.get((path, method)), schemas)


def _document_operation(
    path: str,
    method: str,
    operation: Operation,
    handler: HTTPRouteHandler | None,
    schemas: dict[str, Schema],
) -> None:
    operation.operation_id = OPERATION_IDS.get((path, method), operation.operation_id)
    if handler is not None:
        _bound_parameters(operation, handler)
    stream = handler.opt.get(STREAM_BODY_OPT) if handler is not None else None
    if stream is not None and operation.request_body is None:
        operation.request_body = _stream_body(schemas, *stream)
    responses = {
        code: answer
        for code, answer in (operation.responses or {}).items()
        if not _litestar_error(answer)
    }
    found = _statuses(path, operation, handler)
    for status in sorted(found):
        responses[str(status)] = _response(status, found[status])
    too_large = responses.get(str(_TOO_LARGE))
    limit = handler.resolve_request_max_body_size() if handler is not None else None
    if isinstance(too_large, OpenAPIResponse) and limit is not None:
        too_large.description += f" This operation takes a body of at most {_bytes(limit)}."
    for answer in responses.values():
        if isinstance(answer, OpenAPIResponse):
            answer.headers = {**(answer.headers or {}), "X-Request-ID": _REQUEST_ID}
            if method == "head":
                answer.content = None  # an answer to HEAD has no body (RFC 9110 9.3.2)
    operation.responses = responses
