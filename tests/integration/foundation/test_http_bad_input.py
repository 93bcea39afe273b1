"""A demanding client's bad input, across the whole HTTP surface: every answer is an RFC 9457
problem with a status the operation documents, never a 500, and nothing is half-written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from consent.db.database import Database
from tests.conftest import Catalog, Tenant

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
_NIL = "00000000-0000-0000-0000-000000000000"


def _bad_requests(path: str, method: str, op: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(url, request arguments) of malformed requests for one operation."""
    url = re.sub(r"\{[^}]+\}", _NIL, path)
    cases: list[tuple[str, dict[str, Any]]] = []
    if "{" in path:
        cases.append((re.sub(r"\{[^}]+\}", "not-a-uuid", path), {}))
    if "requestBody" in op:
        json_type = {"content-type": "application/json"}
        contents = (b"{not json", b"", b"[]", b"null", b'{"name": "a\\u0000b"}')
        cases += [(url, {"content": content, "headers": json_type}) for content in contents]
        media_types = ("text/plain", "application/x-www-form-urlencoded", "text/xml")
        cases += [
            (url, {"content": b"{}", "headers": {"content-type": media}}) for media in media_types
        ]
    names = {p["name"] for p in op.get("parameters", [])}
    if "limit" in names:
        cases += [(f"{url}?limit={v}", {}) for v in ("-1", "0", "9" * 30, "abc")]
    if "cursor" in names:
        # "AAAA" is valid base64 of three NUL bytes, which PostgreSQL text cannot hold
        cases += [(f"{url}?cursor={v}", {}) for v in ("garbage!!", "AAAA", "%00", "x" * 3000)]
    return cases


async def test_every_operation_answers_bad_input_with_a_documented_problem(
    client: Any, catalog: Catalog
) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    failures = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for url, kwargs in _bad_requests(path, method, op):
                headers = {**catalog.h, **kwargs.pop("headers", {})}
                answer = await client.request(method.upper(), url, headers=headers, **kwargs)
                status = answer.status_code
                if status < 400:
                    continue  # e.g. a body the operation ignores: no error to check
                problem = answer.headers["content-type"].startswith(PROBLEM)
                if status >= 500 or not problem or str(status) not in op["responses"]:
                    failures.append((method, url[:80], status, answer.text[:120]))
    assert failures == [], "\n".join(map(str, failures))


async def test_a_nul_character_in_a_text_field_is_a_validation_problem(
    client: Any, tenant: Tenant
) -> None:
    """PostgreSQL text cannot hold U+0000: a 400 naming the problem, and nothing written."""
    for path, body in [
        ("/v1/properties", {"name": "we\u0000b", "kind": "website"}),
        ("/v1/purposes", {"key": "k", "name": "N\u0000", "legal_basis": "consent"}),
        ("/v1/api-keys", {"name": "ci\u0000", "scopes": ["read"]}),
    ]:
        answer = await client.post(path, json=body, headers=tenant.headers)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.headers["content-type"].startswith(PROBLEM)
        assert answer.json()["type"] == "/problems/validation-error"
        assert "NUL" in answer.json()["detail"]
    listing = await client.get("/v1/properties", headers=tenant.headers)
    assert listing.json()["items"] == []


async def test_a_forged_key_cursor_names_the_cursor(client: Any, tenant: Tenant) -> None:
    answer = await client.get("/v1/purposes?cursor=AAAA", headers=tenant.headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["errors"] == [
        {"field": "cursor", "message": "not a cursor returned by this API"}
    ]


async def test_an_empty_body_is_named_as_such(client: Any, tenant: Tenant) -> None:
    answer = await client.post(
        "/v1/properties",
        content=b"",
        headers={**tenant.headers, "content-type": "application/json"},
    )
    assert answer.status_code == 400
    problem = answer.json()
    assert problem["errors"] == [{"field": "body", "message": "The request body is empty."}]
    assert problem["detail"] == "The request body is empty."


async def test_a_body_of_the_wrong_json_type_is_named_as_the_body(
    client: Any, tenant: Tenant
) -> None:
    # A JSON array (or a number) where an object belongs: the field is the body, not the
    # handler's Python argument name ("data").
    for content in (b"[1]", b"7"):
        answer = await client.post(
            "/v1/purposes",
            content=content,
            headers={**tenant.headers, "content-type": "application/json"},
        )
        assert answer.status_code == 400
        assert [e["field"] for e in answer.json()["errors"]] == ["body"]


async def test_a_bad_idempotency_key_is_named_as_the_header(client: Any, tenant: Tenant) -> None:
    for key in ("x" * 201, ""):
        answer = await client.post(
            "/v1/properties",
            json={"name": "web", "kind": "website"},
            headers={**tenant.headers, "Idempotency-Key": key},
        )
        assert answer.status_code == 400, answer.text
        assert [e["field"] for e in answer.json()["errors"]] == ["Idempotency-Key"]


async def test_an_api_key_creation_retried_makes_no_second_key_and_shows_no_secret(
    client: Any, tenant: Tenant, db: Database
) -> None:
    """A client that retries `POST /v1/api-keys` after a lost answer must not leave a second
    live key nobody holds; the retry cannot show the secret again (it is stored nowhere)."""
    body = {"name": "deploy bot", "scopes": ["write"]}
    headers = {**tenant.headers, "Idempotency-Key": "deploy-bot-1"}
    first = await client.post("/v1/api-keys", json=body, headers=headers)
    assert first.status_code == 201, first.text
    secret = first.json()["secret"]
    retry = await client.post("/v1/api-keys", json=body, headers=headers)
    assert retry.status_code == 409, retry.text
    assert retry.headers["content-type"].startswith(PROBLEM)
    assert secret not in retry.text
    assert first.json()["key"]["id"] in retry.json()["detail"]
    keys = (await client.get("/v1/api-keys", headers=tenant.headers)).json()["items"]
    assert [k["name"] for k in keys].count("deploy bot") == 1
    async with db.system() as conn:
        stored = await conn.fetch("select response_body from idempotency_record")
    assert all(secret.encode() not in bytes(r["response_body"]) for r in stored)
    other = await client.post(
        "/v1/api-keys", json={"name": "other", "scopes": ["read"]}, headers=headers
    )
    assert other.status_code == 422
    doc = (await client.get("/schema/openapi.json")).json()
    assert {"409", "422"} <= set(doc["paths"]["/v1/api-keys"]["post"]["responses"])


async def test_a_body_that_is_not_json_is_refused_with_415(client: Any, tenant: Tenant) -> None:
    body = b'{"name": "web", "kind": "website"}'
    for media in ("text/plain", "application/x-www-form-urlencoded", "text/xml"):
        answer = await client.post(
            "/v1/properties", content=body, headers={**tenant.headers, "content-type": media}
        )
        assert answer.status_code == 415, (media, answer.text)
        assert answer.headers["content-type"].startswith(PROBLEM)
        assert answer.json()["type"] == "/problems/unsupported-media-type"
        assert answer.json()["request_id"] == answer.headers["x-request-id"]
    assert (await client.get("/v1/properties", headers=tenant.headers)).json()["items"] == []
    settings = await client.put(
        "/v1/tenant/settings",
        content=b'{"store_network_evidence": true}',
        headers={**tenant.headers, "content-type": "text/plain"},
    )
    assert settings.status_code == 415
    tenant_now = (await client.get("/v1/tenant", headers=tenant.headers)).json()
    assert tenant_now["settings"]["store_network_evidence"] is False
    charset = await client.post(
        "/v1/properties",
        content=body,
        headers={**tenant.headers, "content-type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 201, charset.text
    doc = (await client.get("/schema/openapi.json")).json()
    assert "415" in doc["paths"]["/v1/properties"]["post"]["responses"]


async def test_a_stream_sent_as_anything_but_ndjson_is_told_to_send_ndjson(
    client: Any, tenant: Tenant
) -> None:
    """The audience filter reads NDJSON: its 415 names that, not JSON."""
    answer = await client.post(
        "/v1/audiences/filter",
        content=b'{"action": "email.marketing"}\n',
        headers={**tenant.headers, "content-type": "text/csv"},
    )
    assert answer.status_code == 415, answer.text
    assert answer.headers["accept"] == "application/x-ndjson"
    assert "application/x-ndjson" in answer.json()["detail"]
    json_route = await client.post(
        "/v1/properties", content=b"{}", headers={**tenant.headers, "content-type": "text/csv"}
    )
    assert json_route.headers["accept"] == "application/json"


async def test_unrouted_requests_carry_the_request_id_too(client: Any) -> None:
    """An unknown route (404) or method (405) is answered before any route's middleware: its
    answer still carries the request id, in the header and in the problem."""
    for method, url in [("GET", "/v1/nothing-here"), ("PUT", "/health/live")]:
        answer = await client.request(method, url, headers={"X-Request-ID": "trace-unrouted-1"})
        assert answer.status_code in {404, 405}
        assert answer.headers["x-request-id"] == "trace-unrouted-1"
        assert answer.json()["request_id"] == "trace-unrouted-1"


async def test_the_api_key_idempotency_key_is_documented_as_never_replaying(client: Any) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    params = doc["paths"]["/v1/api-keys"]["post"]["parameters"]
    header = next(p for p in params if p["name"] == "Idempotency-Key")
    assert "409" in header["description"]
    assert "gets the first answer" not in header["description"]


async def test_a_validation_problem_never_echoes_the_value_sent(
    client: Any, catalog: Catalog
) -> None:
    """An e-mail address sent by mistake in an enum field must not come back in the problem
    (and so not in a client's or proxy's error logs)."""
    answer = await client.post(
        "/v1/properties", json={"name": "web", "kind": "jane@example.com"}, headers=catalog.h
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["errors"][0]["field"] == "kind"
    assert "jane@example.com" not in answer.text


async def test_every_answer_documents_its_request_id_header(client: Any) -> None:
    """Every answer carries `X-Request-ID`: the OpenAPI document says so for each one."""
    doc = (await client.get("/schema/openapi.json")).json()
    missing = [
        (method, path, status)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        for status, answer in op["responses"].items()
        if "X-Request-ID" not in answer.get("headers", {})
    ]
    assert missing == []
    answer = await client.get("/health/live")
    assert answer.headers["x-request-id"]


async def test_every_api_operation_refuses_a_query_parameter_it_does_not_take(
    client: Any, catalog: Catalog
) -> None:
    """`?limt=10` must not silently give the default page size: a 400 names the parameter
    and what the operation takes, on every /v1 operation (the decision fast path included)."""
    doc = (await client.get("/schema/openapi.json")).json()
    failures = []
    checked = 0
    for path, item in doc["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, op in item.items():
            url = re.sub(r"\{(version|size)\}", "1", path)  # integer path parameters
            url = re.sub(r"\{[^}]+\}", _NIL, url) + "?limt=10"
            headers = catalog.h
            body: dict[str, Any] = {}
            if "requestBody" in op:  # `{}` sent as the operation reads it (JSON or NDJSON)
                media = next(iter(op["requestBody"]["content"]))
                headers = {**catalog.h, "content-type": media}
                body = {"content": b"{}\n"}
            answer = await client.request(method.upper(), url, headers=headers, **body)
            checked += 1
            errors = answer.json().get("errors") if answer.status_code == 400 else None
            if (
                answer.status_code != 400
                or "400" not in op["responses"]
                or errors is None
                or errors[0]["field"] != "limt"
            ):
                failures.append((method, path, answer.status_code, answer.text[:160]))
    assert checked > 30
    assert failures == [], "\n".join(map(str, failures))


def test_a_served_worker_knows_the_operations_parameters_before_its_first_request(
    tmp_path: Path,
) -> None:
    """The check reads the OpenAPI document, which takes ~0.3 s to build: a worker of `consent
    serve` (`consent.asgi`) builds it while it starts, not in a client's first request."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENT_")}
    probe = (
        "import consent.asgi as served; "
        "print(len(served.app.state.query_names), "
        "sorted(served.app.state.query_names[('/v1/purposes', 'GET')]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**env, "CONSENT_DATA_DIR": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    count, names = done.stdout.split(" ", 1)
    assert int(count) > 30
    assert names.strip() == "['cursor', 'limit']"


async def test_the_parameters_an_operation_takes_still_work(client: Any, catalog: Catalog) -> None:
    page = await client.get("/v1/purposes?limit=1", headers=catalog.h)
    assert page.status_code == 200, page.text
    assert len(page.json()["items"]) == 1
    wrong = await client.get("/v1/purposes?limit=1&since=2020-01-01", headers=catalog.h)
    assert wrong.status_code == 400
    assert wrong.json()["errors"] == [
        {"field": "since", "message": "unknown query parameter; this operation takes cursor, limit"}
    ]
    none_taken = await client.get("/v1/policy?verbose=1", headers=catalog.h)
    assert none_taken.status_code == 400
    assert "takes no query parameters" in none_taken.json()["errors"][0]["message"]


async def test_a_page_for_people_tolerates_extra_link_parameters(client: Any) -> None:
    """Links to the verification page get tracking parameters appended by mail clients."""
    page = await client.get("/audit/verify?utm_source=newsletter")
    assert page.status_code == 200
