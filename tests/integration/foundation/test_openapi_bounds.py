"""Every bound the code declares is in the OpenAPI document: a client developer (and a client
generator's validation) learns from it that an age is 0-150, a list's items match a pattern, a
notice has 1-50 texts, before the service refuses a request for it. Litestar drops some (a bound
of 0 is falsy to it; an item's or a key's bounds are lost), so these tests walk the whole served
document against what msgspec and the handlers declare."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
import pytest
from litestar import Litestar, get
from litestar.params import KwargDefinition, QueryParameter
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from consent.app import create_app
from consent.config import Settings
from consent.consents.schemas import ConsentState
from consent.crypto.keys import KeyRing
from consent.decisions.engine import ConsentState as PolicyConsentState
from consent.openapi import document_problems, service_structs
from tests.conftest import Catalog

# The JSON Schema bound keywords, and the parameter arguments that declare them.
_KEYWORDS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
)
_PARAMETER_KEYWORDS = {
    "ge": "minimum",
    "le": "maximum",
    "gt": "exclusiveMinimum",
    "lt": "exclusiveMaximum",
    "multiple_of": "multipleOf",
    "min_length": "minLength",
    "max_length": "maxLength",
    "pattern": "pattern",
    "min_items": "minItems",
    "max_items": "maxItems",
}
# Two structs share a class name; the document names them apart.
_RENAMED: dict[str, type[msgspec.Struct]] = {
    "ConsentState": ConsentState,
    "PolicyConsentState": PolicyConsentState,
}


def _bounds(schema: Any, where: str, out: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The bounds under `schema` by where they apply (`Struct.field`, `…[items]`, `…[keys]`),
    whether on a union or on one of its alternatives (each keyword bounds its own type only);
    inside a referenced component they are that component's."""
    if not isinstance(schema, dict):
        return out
    for keyword in _KEYWORDS:
        if keyword in schema:
            out.setdefault(where, {})[keyword] = schema[keyword]
    for name, prop in (schema.get("properties") or {}).items():
        _bounds(prop, f"{where}.{name}", out)
    for keyword, part in (
        ("items", "[items]"),
        ("additionalProperties", "[values]"),
        ("propertyNames", "[keys]"),
    ):
        _bounds(schema.get(keyword), where + part, out)
    for keyword in ("anyOf", "oneOf", "allOf"):
        for alternative in schema.get(keyword) or []:
            _bounds(alternative, where, out)
    return out


def _structs() -> dict[str, type[msgspec.Struct]]:
    found = service_structs()
    return {name: next(iter(s)) for name, s in found.items() if len(s) == 1} | _RENAMED


async def _document(client: Any) -> dict[str, Any]:
    answer = await client.get("/schema/openapi.json")
    assert answer.status_code == 200
    return dict(answer.json())


def _missing(
    declared: dict[str, dict[str, Any]], documented: dict[str, dict[str, Any]]
) -> list[tuple[str, str, Any, Any]]:
    return [
        (where, keyword, value, documented.get(where, {}).get(keyword))
        for where, bounds in declared.items()
        for keyword, value in bounds.items()
        if documented.get(where, {}).get(keyword) != value
    ]


async def test_every_bound_a_struct_declares_is_in_its_component(client: Any) -> None:
    """Per component of a struct: each bound msgspec enforces on a field, an item or a key."""
    doc = await _document(client)
    structs = _structs()
    missing: list[tuple[str, str, Any, Any]] = []
    checked = []
    for name, component in doc["components"]["schemas"].items():
        struct = structs.get(name)
        if struct is None:
            continue
        checked.append(name)
        (ref,), definitions = msgspec.json.schema_components((struct,))
        own = definitions[ref["$ref"].rsplit("/", 1)[1]]
        missing += _missing(_bounds(own, name, {}), _bounds(component, name, {}))
    assert missing == []
    # The walk covers the bodies with the bounds Litestar lost: a 0, items', keys', a map's size.
    assert {"DecisionContext", "ApiKeyCreate", "NoticeVersionCreate", "VendorCreate"} <= set(
        checked
    )
    assert len(checked) > 40


async def test_the_bounds_litestar_dropped_are_in_the_document(client: Any) -> None:
    """The ones a client developer met missing, spelt out."""
    schemas = (await _document(client))["components"]["schemas"]
    assert schemas["DecisionContext"]["properties"]["age"]["minimum"] == 0
    texts = schemas["NoticeVersionCreate"]["properties"]["texts"]
    assert (texts["minProperties"], texts["maxProperties"]) == (1, 50)
    assert texts["propertyNames"]["pattern"]
    assert schemas["VendorCreate"]["properties"]["purposes"]["items"]["pattern"]


def _parameter_bounds(parameter: dict[str, Any]) -> dict[str, Any]:
    return _bounds(parameter["schema"], "", {}).get("", {})


async def test_every_bound_a_parameter_declares_is_in_the_document(
    client: Any, settings: Settings, keyring: KeyRing
) -> None:
    doc = await _document(client)
    app = create_app(settings, keyring=keyring)
    missing = []
    checked = 0
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for verb, (handler, _) in route.route_handler_map.items():
            operation = doc["paths"].get(route.path_format, {}).get(str(verb).lower())
            if operation is None:
                continue
            documented = {p["name"]: p for p in operation.get("parameters", [])}
            for field_name, field in handler.parsed_fn_signature.parameters.items():
                kwarg = field.kwarg_definition
                if not isinstance(kwarg, KwargDefinition):
                    continue
                name = getattr(kwarg, "name", None) or field_name
                declared = {
                    keyword: getattr(kwarg, argument)
                    for argument, keyword in _PARAMETER_KEYWORDS.items()
                    if getattr(kwarg, argument, None) is not None
                }
                if not declared:
                    continue
                checked += 1
                got = _parameter_bounds(documented[name])
                missing += [
                    (route.path_format, name, keyword, value, got.get(keyword))
                    for keyword, value in declared.items()
                    if got.get(keyword) != value
                ]
    assert missing == []
    assert checked > 10  # limits, cursors, Idempotency-Key, leaf indexes, tree sizes


@get("/items", sync_to_thread=False)
def _items(
    start: Annotated[int | None, QueryParameter(ge=0, lt=10, description="First.")] = None,
    tag: Annotated[str | None, QueryParameter(min_length=0, max_length=5)] = None,
) -> list[int]:
    return []


async def test_a_zero_bound_on_an_optional_parameter_is_documented() -> None:
    """No operation has one yet; the next one to will not lose it (Litestar does)."""
    app = Litestar([_items])
    document_problems(app)
    async with AsyncTestClient(app=app) as client:
        doc = await _document(client)
    parameters = {p["name"]: p for p in doc["paths"]["/items"]["get"]["parameters"]}
    assert _parameter_bounds(parameters["start"]) == {"minimum": 0, "exclusiveMaximum": 10}
    assert _parameter_bounds(parameters["tag"]) == {"minLength": 0, "maxLength": 5}


# -- a number in a path or a query beyond what the service can hold -----------------------------

_INT4_MAX = 2**31 - 1
_INT8_MAX = 2**63 - 1
_EVENT = uuid.UUID(int=1)
_VERSIONS = "/v1/notices/{key}/versions/{version}"
# (method, documented path, parameter, URL with `{n}` for it, smallest valid value, largest)
_NUMBERS = [
    ("put", _VERSIONS, "version", "/v1/notices/main/versions/{n}", 1, _INT4_MAX),
    ("delete", _VERSIONS, "version", "/v1/notices/main/versions/{n}", 1, _INT4_MAX),
    (
        "post",
        _VERSIONS + "/publish",
        "version",
        "/v1/notices/main/versions/{n}/publish",
        1,
        _INT4_MAX,
    ),
    ("get", "/v1/audit/checkpoints/{size}", "size", "/v1/audit/checkpoints/{n}", 1, _INT8_MAX),
    (
        "get",
        "/v1/audit/events/{event_uuid}/proof",
        "size",
        f"/v1/audit/events/{_EVENT}/proof?size={{n}}",
        1,
        _INT8_MAX,
    ),
    ("get", "/v1/audit/consistency", "from", "/v1/audit/consistency?from={n}&to=1", 1, _INT8_MAX),
    ("get", "/v1/audit/consistency", "to", "/v1/audit/consistency?from=1&to={n}", 1, _INT8_MAX),
    ("get", "/v1/audit/entries", "start", "/v1/audit/entries?start={n}", 0, _INT8_MAX),
    ("get", "/v1/audit/export", "start", "/v1/audit/export?start={n}", 0, _INT8_MAX),
]


@pytest.mark.parametrize(("method", "path", "name", "url", "low", "high"), _NUMBERS)
async def test_a_number_out_of_range_is_a_documented_400_and_never_a_500(
    client: Any, catalog: Catalog, method: str, path: str, name: str, url: str, low: int, high: int
) -> None:
    """A notice version is a PostgreSQL `integer`, a tree size or a leaf index a `bigint`: a
    number below the first valid one or beyond what the column holds is refused as a
    validation error (a huge one was a 500), and the operation documents the range."""
    body = {"texts": {"en": {"title": "T", "body": "B"}}} if method == "put" else None
    for value in (low - 1, -5, high + 1, 10**30):
        answer = await client.request(
            method.upper(), url.format(n=value), headers=catalog.h, json=body
        )
        assert answer.status_code == 400, (url, value, answer.text)
        assert answer.json()["type"] == "/problems/validation-error", (url, value)
    for value in (low, high):
        answer = await client.request(
            method.upper(), url.format(n=value), headers=catalog.h, json=body
        )
        assert answer.status_code < 500, (url, value, answer.text)
    operation = (await _document(client))["paths"][path][method]
    (parameter,) = (p for p in operation["parameters"] if p["name"] == name)
    assert _parameter_bounds(parameter) == {"minimum": low, "maximum": high}
