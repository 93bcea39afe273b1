from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Tenant

pytestmark = pytest.mark.integration


async def test_health(client: Any) -> None:
    live = await client.get("/health/live")
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": True, "migrations_current": True}


async def test_request_id_is_echoed_or_made(client: Any) -> None:
    given = await client.get("/health/live", headers={"X-Request-ID": "abc-12345678"})
    assert given.headers["x-request-id"] == "abc-12345678"
    made = await client.get("/health/live", headers={"X-Request-ID": "bad id\x01"})
    assert len(made.headers["x-request-id"]) == 32
    problem = await client.get("/v1/tenant", headers={"X-Request-ID": "trace-000001"})
    assert problem.json()["request_id"] == "trace-000001"


async def test_validation_problem_names_the_field_and_writes_nothing(
    client: Any, tenant: Tenant
) -> None:
    response = await client.post(
        "/v1/properties", json={"name": "web", "kind": "spaceship"}, headers=tenant.headers
    )
    assert response.status_code == 400
    body = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert body["type"] == "/problems/validation-error"
    assert body["errors"][0]["field"] == "kind"
    unknown = await client.post(
        "/v1/properties",
        json={"name": "web", "kind": "website", "owner_email": "a@b.example"},
        headers=tenant.headers,
    )
    assert unknown.status_code == 400
    assert "owner_email" in unknown.text
    assert "a@b.example" not in unknown.text
    listing = await client.get("/v1/properties", headers=tenant.headers)
    assert listing.json()["items"] == []


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/properties", {"kind": "website"}, "name"),
        ("/v1/purposes", {"key": "analytics", "legal_basis": "consent"}, "name"),
        (
            "/v1/consents",
            {"identifier": {"type": "email"}, "choices": [], "surface": "banner", "channel": "web"},
            "identifier.value",
        ),
        (
            "/v1/consents",
            {
                "subject_id": "9b0e0a52-5c9c-4d47-9a55-8f4b8a2a3f11",
                "choices": [{"purpose": "analytics", "choice": "granted", "why": "x"}],
                "surface": "banner",
                "channel": "web",
            },
            "choices[0].why",
        ),
    ],
)
async def test_a_missing_or_unknown_field_is_named_with_its_path(
    client: Any, tenant: Tenant, path: str, body: dict[str, Any], field: str
) -> None:
    response = await client.post(path, json=body, headers=tenant.headers)
    assert response.status_code == 400, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_malformed_json_and_oversized_body(client: Any, tenant: Tenant) -> None:
    bad = await client.post(
        "/v1/properties",
        content=b"{not json",
        headers={**tenant.headers, "content-type": "application/json"},
    )
    assert bad.status_code == 400
    assert bad.json()["type"] == "/problems/validation-error"
    huge = await client.post(
        "/v1/properties",
        content=b'{"name": "' + b"x" * 2_000_000 + b'"}',
        headers={**tenant.headers, "content-type": "application/json"},
    )
    assert huge.status_code == 413
    assert huge.json()["type"] == "/problems/payload-too-large"


async def test_unknown_route_and_method_are_problems(client: Any) -> None:
    missing = await client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["type"] == "/problems/not-found"
    wrong = await client.put("/health/live")
    assert wrong.status_code == 405
    assert wrong.json()["type"] == "/problems/method-not-allowed"


async def test_conflict_and_idempotent_retry(client: Any, tenant: Tenant) -> None:
    body = {"name": "shop", "kind": "website"}
    headers = {**tenant.headers, "Idempotency-Key": "create-shop-1"}
    first = await client.post("/v1/properties", json=body, headers=headers)
    retry = await client.post("/v1/properties", json=body, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert first.json() == retry.json()
    reused = await client.post(
        "/v1/properties", json={"name": "other", "kind": "app"}, headers=headers
    )
    assert reused.status_code == 422
    assert reused.json()["type"] == "/problems/idempotency-key-reused"
    duplicate = await client.post("/v1/properties", json=body, headers=tenant.headers)
    assert duplicate.status_code == 409
    listing = await client.get("/v1/properties", headers=tenant.headers)
    assert [p["name"] for p in listing.json()["items"]] == ["shop"]


async def test_pagination_walks_every_item_once(client: Any, tenant: Tenant) -> None:
    for i in range(7):
        r = await client.post(
            "/v1/properties", json={"name": f"p{i}", "kind": "app"}, headers=tenant.headers
        )
        assert r.status_code == 201
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/properties", params=params, headers=tenant.headers)).json()
        seen += [p["name"] for p in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"p{i}" for i in range(7)]
    assert len(seen) == 7
    assert pages == 3
    assert seen[0] == "p6"  # newest first
    bad = await client.get("/v1/properties", params={"cursor": "garbage!"}, headers=tenant.headers)
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "cursor"


async def test_openapi_documents_every_endpoint(client: Any) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    operations = [
        (path, method, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert len(operations) >= 8
    for path, method, op in operations:
        assert op.get("summary"), (path, method)
        assert op.get("description"), (path, method)
    assert "/v1/api-keys" in schema["paths"]


async def test_openapi_describes_every_field_and_path_parameter(client: Any) -> None:
    """A client author reads what each field means (units, formats, who sets it) from the
    OpenAPI document alone: every property of every schema and every parameter says it."""
    schema = (await client.get("/schema/openapi.json")).json()
    undescribed = [
        f"{name}.{prop}"
        for name, component in schema["components"]["schemas"].items()
        for prop, spec in component.get("properties", {}).items()
        if not spec.get("description")
    ]
    undescribed += [
        f"{method.upper()} {path} {param['in']} {param['name']}"
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
        for param in op.get("parameters", [])
        if not param.get("description")
    ]
    assert undescribed == []


async def test_problem_types_are_documented_pages(client: Any) -> None:
    page = await client.get("/problems/forbidden")
    assert page.status_code == 200
    assert "<html lang=" in page.text
    assert (await client.get("/problems/nonsense")).status_code == 404


async def test_health_answers_head_as_monitors_probe_it(client: Any) -> None:
    """Uptime monitors often probe with HEAD (it was a 405): same status, no body."""
    live = await client.head("/health/live")
    assert live.status_code == 200
    assert live.content == b""
    assert "x-request-id" in live.headers
    ready = await client.head("/health/ready")
    assert ready.status_code == 200
    assert ready.content == b""
