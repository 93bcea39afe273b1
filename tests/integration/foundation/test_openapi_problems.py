"""The OpenAPI document tells a client author the truth about errors: each failure a request
really gets is documented for its operation, as an RFC 9457 `application/problem+json`
`Problem`, and nothing documents Litestar's own error shape, which the service never sends."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar import get
from litestar.testing import AsyncTestClient

from consent.app import MAX_BODY_BYTES, create_app
from consent.config import Settings
from consent.crypto.keys import KeyRing
from consent.db import Database
from tests.conftest import Catalog, Tenant

PROBLEM = "application/problem+json"


async def _document(client: Any) -> dict[str, Any]:
    return dict((await client.get("/schema/openapi.json")).json())


def _documented(doc: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any]:
    responses = doc["paths"][path][method]["responses"]
    assert str(status) in responses, (method, path, sorted(responses))
    answer = responses[str(status)]
    assert answer["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
    return dict(answer)


async def test_no_operation_documents_an_error_body_the_service_never_sends(client: Any) -> None:
    doc = await _document(client)
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, answer in op["responses"].items():
                if method == "head":  # an answer to HEAD has no body
                    assert "content" not in answer, (method, path, status)
                elif status.startswith(("4", "5")) and (path, status) != ("/health/ready", "503"):
                    assert set(answer["content"]) == {PROBLEM}, (method, path, status)
    problem = doc["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "request_id", "errors"} <= set(
        problem["properties"]
    )
    assert "/problems/validation-error" in problem["properties"]["type"]["enum"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "slug"),
    [
        # a purpose key that exists: the catalogue's conflict
        (
            "post",
            "/v1/purposes",
            {"key": "analytics", "name": "A", "legal_basis": "consent"},
            409,
            "conflict",
        ),
        ("post", "/v1/purposes", {"key": "x"}, 400, "validation-error"),
        ("get", "/v1/purposes/{key}", None, 404, "not-found"),
        ("post", "/v1/consents", "unknown-subject", 404, "not-found"),
        (
            "post",
            "/v1/subjects/lookup",
            {"identifier": {"type": "email", "value": "no@example.com"}},
            404,
            "not-found",
        ),
        ("post", "/v1/preferences", "unknown-subject", 404, "not-found"),
        ("post", "/v1/notices/{key}/versions/{version}/publish", None, 404, "not-found"),
        ("post", "/v1/decisions", "oversized", 413, "payload-too-large"),
    ],
)
async def test_each_failure_a_request_gets_is_documented_for_its_operation(
    client: Any, catalog: Catalog, method: str, path: str, body: Any, status: int, slug: str
) -> None:
    url = path.replace("{key}", "nope").replace("{version}", "7")
    if body == "unknown-subject":  # a subject named by an id that does not exist
        body = {"subject_id": str(uuid.uuid4()), "surface": "portal", "channel": "web"}
        if path == "/v1/consents":
            body["choices"] = [{"purpose": "analytics", "choice": "granted"}]
            body["notice_version_id"] = catalog.versions[max(catalog.versions)]
        else:
            body["items"] = [{"kind": "channel", "key": "email", "value": "opt_in"}]
    kwargs: dict[str, Any] = {"headers": catalog.h}
    if body == "oversized":
        kwargs["content"] = b'{"pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
        kwargs["headers"] = {**catalog.h, "content-type": "application/json"}
    elif body is not None:
        kwargs["json"] = body
    answer = await client.request(method.upper(), url, **kwargs)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert answer.json()["type"] == f"/problems/{slug}"
    documented = _documented(await _document(client), method, path, status)
    assert f"/problems/{slug}" in documented["description"]


async def test_authentication_and_scope_failures_are_documented(
    client: Any, tenant: Tenant
) -> None:
    doc = await _document(client)
    missing = await client.get("/v1/purposes")
    assert missing.status_code == 401
    _documented(doc, "get", "/v1/purposes", 401)
    created = await client.post(
        "/v1/api-keys", json={"name": "reader", "scopes": ["read"]}, headers=tenant.headers
    )
    reader = {"Authorization": f"Bearer {created.json()['secret']}"}
    refused = await client.post(
        "/v1/purposes", json={"key": "k", "name": "K", "legal_basis": "consent"}, headers=reader
    )
    assert refused.status_code == 403
    _documented(doc, "post", "/v1/purposes", 403)
    # every authenticated operation documents both, and every /v1 one the database's 503
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if op.get("security"):
                assert {"401", "403"} <= set(op["responses"]), (method, path)
            if path.startswith("/v1/"):
                answer = _documented(doc, method, path, 503)
                assert "Retry-After" in answer["headers"]


async def test_an_idempotency_key_reused_with_another_body_is_documented(
    client: Any, catalog: Catalog
) -> None:
    headers = {**catalog.h, "Idempotency-Key": "same-key"}
    first = await client.post(
        "/v1/properties", json={"name": "web", "kind": "website"}, headers=headers
    )
    assert first.status_code == 201, first.text
    again = await client.post(
        "/v1/properties", json={"name": "app", "kind": "app"}, headers=headers
    )
    assert again.status_code == 422
    assert again.json()["type"] == "/problems/idempotency-key-reused"
    _documented(await _document(client), "post", "/v1/properties", 422)


async def test_a_proof_asked_for_too_early_is_a_documented_problem(
    client: Any, catalog: Catalog
) -> None:
    """An inclusion proof before the integrator has run: 409 `audit-pending`, titled and
    explained on its page, and so documented."""
    event = await catalog.consent(
        identifier={"type": "email", "value": "early@example.com"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )
    path = "/v1/audit/events/{event_uuid}/proof"
    early = await client.get(path.format(event_uuid=event["event_id"]), headers=catalog.h)
    assert early.status_code == 409, early.text
    problem = early.json()
    assert problem["type"] == "/problems/audit-pending"
    assert problem["title"] == "Not yet in the audit log"
    assert (await client.get(problem["type"])).status_code == 200
    documented = _documented(await _document(client), "get", path, 409)
    assert "/problems/audit-pending" in documented["description"]


@get("/zz-unforeseen", sync_to_thread=False)
def _unforeseen() -> None:
    message = "a failure the service did not foresee"
    raise RuntimeError(message)


async def test_every_operation_documents_the_internal_error_an_unforeseen_failure_gets(
    settings: Settings,
    keyring: KeyRing,
    db: Database,  # the tables emptied
) -> None:
    """Any operation can fail in a way the service did not foresee: the client gets a 500
    `internal-error` problem with the request's id, and every operation documents it (a
    HEAD's without a body), so that a generated client parses it as a `Problem`."""
    app = create_app(settings, keyring=keyring)
    app.register(_unforeseen)
    async with AsyncTestClient(app=app) as client:
        failed = await client.get("/zz-unforeseen")
        doc = await _document(client)
    assert failed.status_code == 500
    assert failed.headers["content-type"].startswith(PROBLEM)
    assert failed.json()["type"] == "/problems/internal-error"
    assert failed.json()["request_id"] == failed.headers["x-request-id"]
    undocumented = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if "500" not in op["responses"]:
                undocumented.append((method, path))
                continue
            answer = op["responses"]["500"]
            assert "/problems/internal-error" in answer["description"], (method, path)
            assert "X-Request-ID" in answer["headers"], (method, path)
            if method == "head":
                assert "content" not in answer, path
            else:
                assert answer["content"][PROBLEM]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }, (method, path)
    assert undocumented == []
