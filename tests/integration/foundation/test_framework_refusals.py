"""What Litestar refuses before an operation runs (a method a path does not take, a path
nothing has, a body too large or not JSON, a header it cannot read, a required query parameter
not sent) is answered in the service's own words, in the asker's language: never Litestar's
stock English ("Method Not Allowed", "Request Entity Too Large"). A 405 names the methods the
path takes (as its `Allow` header does), a 413 the operation's limit in bytes (also in the
OpenAPI document), and a body that is not JSON is named in `errors`, like an empty one."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest

from consent.app import MAX_BODY_BYTES
from consent.decisions.api import BATCH_MAX_BODY
from tests.conftest import Tenant

pytestmark = pytest.mark.integration

GERMAN = {"Accept-Language": "de"}
STOCK = {phrase.phrase for phrase in HTTPStatus}  # Litestar's default details


async def _problem(client: Any, method: str, url: str, **kwargs: Any) -> tuple[Any, Any]:
    answer = await client.request(method, url, **kwargs)
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.text
    problem = answer.json()
    assert problem.get("detail") not in STOCK, problem
    return answer, problem


@pytest.mark.parametrize(
    ("method", "url", "allowed"),
    [
        ("GET", "/v1/decisions", "POST, OPTIONS"),
        ("DELETE", "/v1/properties", "GET, POST, OPTIONS"),
        ("PUT", "/health/live", "GET, HEAD, OPTIONS"),
    ],
)
async def test_a_405_names_the_methods_the_path_takes(
    client: Any, method: str, url: str, allowed: str
) -> None:
    answer, problem = await _problem(client, method, url)
    assert answer.status_code == 405
    assert answer.headers["allow"] == allowed
    assert problem["detail"] == f"This path takes only {allowed}."
    german, problem = await _problem(client, method, url, headers=GERMAN)
    assert german.headers["allow"] == allowed
    assert german.headers["content-language"] == "de"
    assert problem["detail"] == f"Dieser Pfad nimmt nur {allowed} an."


@pytest.mark.parametrize(
    ("url", "limit"),
    [
        ("/v1/properties", MAX_BODY_BYTES),
        ("/v1/decisions", MAX_BODY_BYTES),  # delegated by the fast path to Litestar
        ("/v1/decisions/batch", BATCH_MAX_BODY),
    ],
)
async def test_a_413_names_the_limit_of_the_operation(
    client: Any, tenant: Tenant, url: str, limit: int
) -> None:
    body = b'{"pad": "' + b"x" * limit + b'"}'
    headers = {**tenant.headers, "content-type": "application/json"}
    answer, problem = await _problem(client, "POST", url, content=body, headers=headers)
    assert answer.status_code == 413
    assert problem["detail"] == (
        f"The request body is larger than this operation takes: at most {limit} bytes."
    )
    answer, problem = await _problem(
        client, "POST", url, content=body, headers={**headers, **GERMAN}
    )
    assert answer.status_code == 413
    assert problem["detail"] == (
        f"Der Anfrageinhalt ist größer, als diese Operation annimmt: höchstens {limit} Bytes."
    )


@pytest.mark.parametrize(
    ("body", "english", "german"),
    [
        (b'{"subject":', "Input data was truncated", "Die Eingabe endet vorzeitig (abgeschnitten)"),
        (
            b'{"action": 1,}',
            "JSON is malformed: trailing comma in object (byte 13)",
            "JSON ist fehlerhaft: überzähliges Komma im Objekt (Byte 13)",
        ),
    ],
)
@pytest.mark.parametrize("url", ["/v1/decisions", "/v1/properties"])
async def test_a_body_that_is_not_json_is_named_in_errors(
    client: Any, tenant: Tenant, url: str, body: bytes, english: str, german: str
) -> None:
    """As an empty body is (`errors: [{field: "body", ...}]`), with msgspec's reason and the
    byte where it failed."""
    headers = {**tenant.headers, "content-type": "application/json"}
    for extra, message in (({}, english), (GERMAN, german)):
        answer, problem = await _problem(
            client, "POST", url, content=body, headers={**headers, **extra}
        )
        assert answer.status_code == 400
        assert problem["type"] == "/problems/validation-error"
        assert problem["detail"] == message
        assert problem["errors"] == [{"field": "body", "message": message}]


async def test_an_unknown_path_says_where_the_paths_are(client: Any) -> None:
    for url in ("/v1/nothing-here", "/v1/decisions/not-a-uuid", "/schema/redoc"):
        answer, problem = await _problem(client, "GET", url)
        assert answer.status_code == 404
        assert problem["detail"] == (
            "No operation has this path; the API's operations are in /schema/openapi.json."
        )
        _, problem = await _problem(client, "GET", url, headers=GERMAN)
        assert problem["detail"] == (
            "Keine Operation hat diesen Pfad; die Operationen der API stehen in "
            "/schema/openapi.json."
        )


async def test_a_missing_static_file_does_not_echo_its_path(client: Any) -> None:
    answer, problem = await _problem(client, "GET", "/sdk/no-such-script.js")
    assert answer.status_code == 404
    assert problem["detail"] == "No such file."
    assert "no-such-script" not in answer.text.replace(problem["instance"], "")


async def test_a_header_litestar_cannot_read_is_named(client: Any, tenant: Tenant) -> None:
    headers = {**tenant.headers, "content-type": "application/json"}
    for header, value, english, german in (
        ("content-length", "12abc", "not a number of bytes", "keine Anzahl von Bytes"),
        ("host", "bad host", "not a valid host name", "kein gültiger Hostname"),
    ):
        field = "Content-Length" if header == "content-length" else "Host"
        for extra, message in (({}, english), (GERMAN, german)):
            answer, problem = await _problem(
                client,
                "POST",
                "/v1/properties",
                content=b"{}",
                headers={**headers, header: value, **extra},
            )
            assert answer.status_code == 400
            assert problem["errors"] == [{"field": field, "message": message}]
            assert value not in answer.text


async def test_a_required_query_parameter_not_sent_is_named(client: Any, tenant: Tenant) -> None:
    for extra, message in (
        ({}, "a required query parameter, not sent"),
        (GERMAN, "ein erforderlicher Query-Parameter, nicht gesendet"),
    ):
        answer, problem = await _problem(
            client, "GET", "/v1/audit/consistency?from=1", headers={**tenant.headers, **extra}
        )
        assert answer.status_code == 400
        assert problem["errors"] == [{"field": "to", "message": message}]


async def test_the_document_gives_each_operation_its_body_limit(client: Any) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    limits: dict[tuple[str, str], str] = {}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            answer = operation["responses"].get("413")
            if answer is not None:
                description = answer["description"]
                assert description.startswith("Request body too large"), (method, path)
                limits[(method, path)] = description.rsplit("at most ", 1)[1]
    assert limits[("post", "/v1/decisions/batch")] == "16,777,216 bytes (16 MiB)."
    assert limits[("post", "/v1/decisions")] == "1,048,576 bytes (1 MiB)."
    assert set(limits.values()) == {"16,777,216 bytes (16 MiB).", "1,048,576 bytes (1 MiB)."}
    assert [key for key, limit in limits.items() if "16 MiB" in limit] == [
        ("post", "/v1/decisions/batch")
    ]
    # a stream without a limit (request_max_body_size=None) has no 413
    assert "413" not in doc["paths"]["/v1/audiences/filter"]["post"]["responses"]


async def test_an_audience_members_jurisdiction_is_described_as_an_invalid_line(
    client: Any,
) -> None:
    """A code that does not exist is a 400 in a decision's context, but on a member line of
    the audience stream it makes the line invalid (skipped and counted)."""
    doc = (await client.get("/schema/openapi.json")).json()
    schemas = doc["components"]["schemas"]

    def texts(schema: dict[str, Any]) -> str:
        parts = [schema.get("description", "")]
        parts += [texts(part) for part in schema.get("anyOf", []) + schema.get("oneOf", [])]
        return " ".join(parts)

    member = texts(schemas["AudienceMember"]["properties"]["jurisdiction"])
    assert "400" not in member
    assert "invalid" in member
    assert "`invalid_lines`" in member
    context = texts(schemas["DecisionContext"]["properties"]["jurisdiction"])
    assert "is a 400" in context
