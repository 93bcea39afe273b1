"""The OpenAPI document as a demanding client developer reads it: valid OpenAPI 3.1 for a real
validator, every operation and field described, every answer typed, and every failure a request
really gets documented for its operation (test_openapi_problems.py checks the problem bodies and
the failures that need a set-up; here each operation is probed with the failures any request
can provoke)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.routes import HTTPRoute
from openapi_spec_validator import OpenAPIV31SpecValidator

from consent.app import create_app
from consent.config import Settings
from consent.crypto.keys import KeyRing
from consent.openapi import OPERATION_IDS
from tests.conftest import Tenant

PROBLEM = "application/problem+json"
_VERBS = ("get", "head", "put", "post", "delete", "patch")


async def _document(client: Any) -> dict[str, Any]:
    answer = await client.get("/schema/openapi.json")
    assert answer.status_code == 200
    return dict(answer.json())


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in _VERBS
    ]


async def test_the_served_document_is_valid_openapi_3_1(client: Any) -> None:
    doc = await _document(client)
    assert doc["openapi"].startswith("3.1.")
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in OpenAPIV31SpecValidator(doc).iter_errors()
    ]
    assert errors == []


async def test_every_operation_is_named_summarised_described_and_tagged(client: Any) -> None:
    doc = await _document(client)
    ids: dict[str, list[str]] = {}
    gaps: list[tuple[str, ...]] = []
    for method, path, op in _operations(doc):
        where = f"{method.upper()} {path}"
        ids.setdefault(op.get("operationId", ""), []).append(where)
        gaps += [(where, key) for key in ("summary", "description", "tags") if not op.get(key)]
        gaps += [
            (where, "parameter", p["name"])
            for p in op.get("parameters", [])
            if not p.get("description")
        ]
    assert gaps == []
    named = set(OPERATION_IDS.values())
    assert "" not in ids
    assert {name: where for name, where in ids.items() if len(where) > 1} == {}
    # A client generator makes function names of them: short verbs and nouns
    # (`createPurpose`), not Litestar's spelt-out paths (`V1PurposesCreatePurpose`).
    assert {(where[0], name) for name, where in ids.items() if name not in named} == set()
    assert all(re.fullmatch(r"[a-z][A-Za-z]*", name) for name in ids), sorted(ids)


def _undescribed(schema: Any, where: str) -> list[str]:
    """The properties under `schema` (inline, in items, unions, maps) without a description."""
    if not isinstance(schema, dict):
        return []
    gaps = []
    for name, prop in (schema.get("properties") or {}).items():
        if not prop.get("description"):
            gaps.append(f"{where}.{name}")
        gaps += _undescribed(prop, f"{where}.{name}")
    for key in ("items", "additionalProperties"):
        gaps += _undescribed(schema.get(key), f"{where}[]")
    for key in ("oneOf", "anyOf", "allOf"):
        for part in schema.get(key) or []:
            gaps += _undescribed(part, where)
    return gaps


async def test_every_property_is_described_and_every_body_and_success_has_a_schema(
    client: Any,
) -> None:
    doc = await _document(client)
    gaps = []
    for name, schema in doc["components"]["schemas"].items():
        gaps += _undescribed(schema, name)
    for method, path, op in _operations(doc):
        where = f"{method.upper()} {path}"
        for p in op.get("parameters", []):
            gaps += _undescribed(p.get("schema"), f"{where} {p['name']}")
        body = op.get("requestBody")
        if body is not None:
            assert body["content"], where
        for media, content in ((body or {}).get("content") or {}).items():
            assert content.get("schema"), (where, media)
            gaps += _undescribed(content["schema"], f"{where} body")
        for status, answer in op["responses"].items():
            assert answer.get("description"), (where, status)
            if status.startswith("2") and method != "head" and status != "204":
                assert answer.get("content"), (where, status)
            for media, content in (answer.get("content") or {}).items():
                assert content.get("schema"), (where, status, media)
                gaps += _undescribed(content["schema"], f"{where} {status}")
    assert gaps == []


async def test_an_answer_to_head_is_documented_without_a_body(client: Any) -> None:
    """A HEAD answer has no body (RFC 9110 9.3.2): an uptime monitor's client generated with a
    JSON body to parse for it got `null`. Each is documented by its status and headers."""
    doc = await _document(client)
    heads = {path: item["head"] for path, item in doc["paths"].items() if "head" in item}
    assert set(heads) >= {"/health/live", "/health/ready"}
    for path, op in heads.items():
        for status, answer in op["responses"].items():
            assert "content" not in answer, (path, status)
            assert answer["description"], (path, status)
            assert "X-Request-ID" in answer["headers"], (path, status)
        real = await client.head(path)
        assert str(real.status_code) in op["responses"], path
        assert real.content == b"", path


async def test_an_answer_to_head_has_the_headers_get_would_send(client: Any) -> None:
    """HEAD is GET without the body (RFC 9110 9.3.2): a monitor that reads `content-length`
    got 4, the length of a JSON `null`, for a 15-byte health document."""
    for path in ("/health/live", "/health/ready"):
        got = await client.get(path)
        headed = await client.head(path)
        assert headed.status_code == got.status_code, path
        assert headed.content == b"", path
        assert int(got.headers["content-length"]) == len(got.content) > len(b"null"), path
        for header in ("content-type", "content-length"):
            assert headed.headers.get(header) == got.headers[header], (path, header)


async def test_no_component_is_described_by_msgspec_s_own_docstring(client: Any) -> None:
    """A struct without a docstring of its own is not described by the one of `msgspec.Struct`
    (4 KB on slots, `gc` and a corgi called Snickers, in 44 models of a generated client)."""
    doc = await _document(client)
    inherited = " ".join((msgspec.Struct.__doc__ or "").split())[:60]
    assert inherited
    described = {
        name: schema["description"]
        for name, schema in doc["components"]["schemas"].items()
        if schema.get("description")
    }
    assert [name for name, text in described.items() if inherited in text] == []
    assert described["Health"].startswith("The service's health")


def test_no_documented_answer_carries_examples_made_up_by_litestar(
    settings: Settings, keyring: KeyRing
) -> None:
    """Litestar invents random examples for a `ResponseSpec` by default (an audience summary
    whose `action` was `EkQQHiBrmXZcSFtoJxJI`): noise a reader takes for the service's."""
    app = create_app(settings, keyring=keyring)
    generating = [
        (route.path, str(verb), status)
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for verb, (handler, _) in route.route_handler_map.items()
        for status, spec in (handler.responses or {}).items()
        if isinstance(spec, ResponseSpec) and spec.generate_examples
    ]
    assert generating == []


# -- every operation probed with the failures any request can provoke --------------------------


def _url(path: str) -> str:
    """A path with each parameter filled with a value that names nothing (or is malformed)."""
    return re.sub(r"\{[^}]+\}", "nothing-here", path)


async def test_each_failure_any_request_can_provoke_is_documented_for_its_operation(
    client: Any, tenant: Tenant
) -> None:
    """Per /v1/ operation: no credentials, an unknown query parameter, a path naming nothing, a
    body of a media type it does not take. Each answer's status is documented for that
    operation, as a problem whose type its description names, with the headers it carries
    (`WWW-Authenticate` on a 401); an operation that answers 415 to a body it does not take
    reads a body, and documents it."""
    doc = await _document(client)
    undocumented = []
    for method, path, op in _operations(doc):
        if not path.startswith("/v1/") or method == "head":
            continue
        url = _url(path)
        probes: list[tuple[str, dict[str, Any]]] = [
            ("no credentials", {}),
            ("an unknown query parameter", {"headers": tenant.headers, "params": {"zz": "1"}}),
        ]
        if "{" in path:
            probes.append(("a path naming nothing", {"headers": tenant.headers}))
        if method in {"post", "put", "patch"}:
            probes.append(
                (
                    "a text/plain body",
                    {
                        "headers": {**tenant.headers, "content-type": "text/plain"},
                        "content": b"x",
                    },
                )
            )
        for probe, kwargs in probes:
            answer = await client.request(method.upper(), url, **kwargs)
            status = str(answer.status_code)
            where = (f"{method.upper()} {path}", probe, status)
            assert answer.status_code >= 400, where
            documented = op["responses"].get(status)
            if documented is None:
                undocumented.append(where)
                continue
            assert answer.headers["content-type"].startswith(PROBLEM), where
            assert answer.json()["type"] in documented["description"], where
            for header in ("WWW-Authenticate", "Retry-After"):
                if header.lower() in answer.headers:
                    assert header in documented.get("headers", {}), (*where, header)
            if status == "415":
                assert "requestBody" in op, where
    assert undocumented == []


_DOCUMENT_WITHOUT = """
import sys
if sys.argv[1] == "without":
    sys.modules["pydantic"] = None  # as in the image: the wheel's dependencies have no pydantic
from litestar.serialization import encode_json
from consent.app import create_app
from consent.config import load_settings
app = create_app(load_settings({"CONSENT_DATA_DIR": sys.argv[2]}))
sys.stdout.buffer.write(encode_json(app.openapi_schema.to_schema()))
"""


def test_the_image_serves_the_document_these_tests_check(tmp_path: Path) -> None:
    """The document may depend neither on pydantic (the dev tools bring it, and Litestar adds
    its pydantic plugins when it can import it; the image has none) nor on the process's hash
    seed (the order Litestar walks the routes in): a component's description came from
    whichever field referring to it was met first (ApiKey's, under seed 3)."""
    documents = [
        subprocess.run(
            [sys.executable, "-c", _DOCUMENT_WITHOUT, how, str(tmp_path)],
            capture_output=True,
            check=True,
            timeout=120,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for how, seed in (("with", "1"), ("without", "3"), ("with", "5"))
    ]
    first = json.loads(documents[0])
    assert all(json.loads(other) == first for other in documents[1:])
