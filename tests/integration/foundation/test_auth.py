from __future__ import annotations

from typing import Any

import pytest

from consent.db.database import Database
from tests.conftest import Tenant

pytestmark = pytest.mark.integration


def _is_problem(response: Any, status: int, slug: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["type"] == f"/problems/{slug}"
    assert body["title"]


async def _make_key(client: Any, tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/api-keys", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_missing_malformed_unknown_keys_get_401(client: Any, tenant: Tenant) -> None:
    _is_problem(await client.get("/v1/tenant"), 401, "unauthorized")
    _is_problem(
        await client.get("/v1/tenant", headers={"Authorization": "Bearer nope"}),
        401,
        "unauthorized",
    )
    forged = tenant.key[:-4] + ("AAAA" if not tenant.key.endswith("AAAA") else "BBBB")
    _is_problem(
        await client.get("/v1/tenant", headers={"Authorization": f"Bearer {forged}"}),
        401,
        "unauthorized",
    )
    response = await client.get(
        "/v1/tenant", headers={"Authorization": "Bearer " + "csk_" + "0" * 16 + "_" + "A" * 43}
    )
    _is_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_revoked_key_gets_401(client: Any, tenant: Tenant) -> None:
    created = await _make_key(client, tenant, name="reader", scopes=["read"])
    headers = {"Authorization": f"Bearer {created['secret']}"}
    assert (await client.get("/v1/tenant", headers=headers)).status_code == 200
    revoked = await client.delete(f"/v1/api-keys/{created['key']['id']}", headers=tenant.headers)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    _is_problem(await client.get("/v1/tenant", headers=headers), 401, "unauthorized")


async def test_key_without_scope_gets_403(client: Any, tenant: Tenant) -> None:
    reader = await _make_key(client, tenant, name="reader", scopes=["read"])
    headers = {"Authorization": f"Bearer {reader['secret']}"}
    assert (await client.get("/v1/properties", headers=headers)).status_code == 200
    response = await client.post(
        "/v1/properties", json={"name": "web", "kind": "website"}, headers=headers
    )
    _is_problem(response, 403, "forbidden")
    assert "admin" in response.json()["detail"]
    _is_problem(await client.get("/v1/api-keys", headers=headers), 403, "forbidden")


async def _consent_from(client: Any, auth: dict[str, str], origin: str | None) -> Any:
    """An empty consent body: past the guard it is a 400 (the key was accepted)."""
    headers = {**auth, **({"Origin": origin} if origin else {})}
    return await client.post("/v1/consents", json={}, headers=headers)


async def test_banner_key_only_from_its_origins(client: Any, tenant: Tenant) -> None:
    banner = await _make_key(
        client, tenant, name="banner", scopes=["write"], allowed_origins=["https://shop.example"]
    )
    auth = {"Authorization": f"Bearer {banner['secret']}"}
    ok = await _consent_from(client, auth, "https://shop.example")
    assert ok.status_code == 400, ok.text  # accepted, then the empty body is refused
    _is_problem(await _consent_from(client, auth, "https://evil.example"), 403, "forbidden")
    _is_problem(await _consent_from(client, auth, None), 403, "forbidden")


async def test_a_banner_origin_is_matched_as_browsers_send_it(client: Any, tenant: Tenant) -> None:
    """An origin typed with capitals still admits the browser, which sends it in lower case."""
    banner = await _make_key(
        client, tenant, name="banner", scopes=["write"], allowed_origins=["https://Shop.Example"]
    )
    assert banner["key"]["allowed_origins"] == ["https://shop.example"]
    auth = {"Authorization": f"Bearer {banner['secret']}"}
    ok = await _consent_from(client, auth, "https://shop.example")
    assert ok.status_code == 400, ok.text


async def test_a_banner_key_may_only_write(client: Any, tenant: Tenant, db: Database) -> None:
    """A banner key's secret is in every visitor's browser, and `Origin` is forged by any
    non-browser client. With `read` or `decide` it let anyone look up any customer's consents
    and history by e-mail address (with the network evidence kept), or learn them from
    decisions. Such keys are refused (400); one made before that is refused on every route but
    writing (403)."""
    for scopes in (["read"], ["decide"], ["write", "read"]):
        response = await client.post(
            "/v1/api-keys",
            json={"name": "banner", "scopes": scopes, "allowed_origins": ["https://shop.example"]},
            headers=tenant.headers,
        )
        _is_problem(response, 400, "validation-error")
        assert [e["field"] for e in response.json()["errors"]] == ["scopes"]
    keys = (await client.get("/v1/api-keys", headers=tenant.headers)).json()["items"]
    assert [k["name"] for k in keys] == ["initial admin"]

    old = await _make_key(
        client,
        tenant,
        name="old banner",
        scopes=["write"],
        allowed_origins=["https://shop.example"],
    )
    async with db.system() as conn:  # as a key made before the limit was stored
        await conn.execute(
            "update api_key set scopes = array['write', 'read', 'decide'] where key_id = $1",
            old["key"]["key_id"],
        )
    shop = {"Authorization": f"Bearer {old['secret']}", "Origin": "https://shop.example"}
    lookup = {"identifier": {"type": "email", "value": "ann@example.com"}}
    refused = [
        await client.post("/v1/subjects/lookup", json=lookup, headers=shop),
        await client.get("/v1/tenant", headers=shop),
        await client.post(
            "/v1/decisions",
            json={"subject": lookup, "action": "email.marketing", "context": {"requester": "x"}},
            headers=shop,
        ),
    ]
    for response in refused:
        _is_problem(response, 403, "forbidden")
        assert "banner key" in response.json()["detail"]
    assert (await _consent_from(client, shop, "https://shop.example")).status_code == 400


async def test_secret_is_shown_once_and_never_listed(client: Any, tenant: Tenant) -> None:
    created = await _make_key(client, tenant, name="ci", scopes=["write", "read"])
    assert created["secret"].startswith("csk_" + created["key"]["key_id"] + "_")
    listing = await client.get("/v1/api-keys", headers=tenant.headers)
    assert listing.status_code == 200
    assert created["secret"] not in listing.text
    # csk_<16 hex>_<43 characters of URL-safe base64, which may hold "_" itself>
    secret_part = created["secret"].split("_", 2)[2]
    assert len(secret_part) == 43
    assert secret_part not in listing.text
    assert {k["name"] for k in listing.json()["items"]} == {"initial admin", "ci"}


async def test_other_tenant_cannot_revoke_or_see_keys(
    client: Any, tenant: Tenant, other_tenant: Tenant
) -> None:
    created = await _make_key(client, tenant, name="mine", scopes=["read"])
    response = await client.delete(
        f"/v1/api-keys/{created['key']['id']}", headers=other_tenant.headers
    )
    _is_problem(response, 404, "not-found")
    listing = await client.get("/v1/api-keys", headers=other_tenant.headers)
    assert created["key"]["key_id"] not in listing.text
    me = await client.get("/v1/tenant", headers=other_tenant.headers)
    assert me.json()["id"] == other_tenant.id


async def test_the_bearer_scheme_is_case_insensitive(client: Any, tenant: Tenant) -> None:
    """RFC 9110 §11.1: an auth scheme is matched case-insensitively; clients send `bearer`."""
    for scheme in ("bearer", "BEARER", "Bearer"):
        headers = {"Authorization": f"{scheme} {tenant.key}"}
        assert (await client.get("/v1/tenant", headers=headers)).status_code == 200, scheme


async def test_a_missing_scope_is_named_in_www_authenticate(client: Any, tenant: Tenant) -> None:
    """RFC 6750 §3.1: a 403 for a token without the scope says `insufficient_scope`."""
    reader = await _make_key(client, tenant, name="reader", scopes=["read"])
    response = await client.post(
        "/v1/properties",
        json={"name": "web", "kind": "website"},
        headers={"Authorization": f"Bearer {reader['secret']}"},
    )
    _is_problem(response, 403, "forbidden")
    assert (
        response.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="admin"'
    )


async def test_a_banner_key_cannot_be_an_admin_key(client: Any, tenant: Tenant) -> None:
    """A banner key is published in web pages, and `Origin` is forged by any non-browser
    client: an admin scope on it would hand the tenant to every visitor. Refused (400)."""
    response = await client.post(
        "/v1/api-keys",
        json={"name": "banner", "scopes": ["admin"], "allowed_origins": ["https://shop.example"]},
        headers=tenant.headers,
    )
    _is_problem(response, 400, "validation-error")
    assert [e["field"] for e in response.json()["errors"]] == ["scopes"]
    keys = (await client.get("/v1/api-keys", headers=tenant.headers)).json()["items"]
    assert [k["name"] for k in keys] == ["initial admin"]


async def test_a_revoked_key_is_refused_at_once_on_the_decision_fast_path(
    client: Any, tenant: Tenant
) -> None:
    """`POST /v1/decisions` answers verified keys from a 5-second cache without the database;
    a key revoked through this process is refused by the very next decision all the same."""
    created = await _make_key(client, tenant, name="esp", scopes=["decide"])
    headers = {"Authorization": f"Bearer {created['secret']}"}
    body = {
        "subject": {"identifier": {"type": "email", "value": "ann@example.com"}},
        "action": "email.marketing",
        "context": {"requester": "esp", "jurisdiction": "DE"},
    }
    for _ in range(2):  # the second is answered with the cached key
        assert (await client.post("/v1/decisions", json=body, headers=headers)).status_code == 200
    revoked = await client.delete(f"/v1/api-keys/{created['key']['id']}", headers=tenant.headers)
    assert revoked.status_code == 200
    _is_problem(await client.post("/v1/decisions", json=body, headers=headers), 401, "unauthorized")


async def test_malformed_authorization_headers_get_401_never_500(
    client: Any, tenant: Tenant
) -> None:
    """Whatever a client puts in `Authorization` (no credentials, another scheme, a key with
    a byte changed, cut or lengthened, bytes that are no text, a huge value), the answer is
    the same 401 on every route, the decision fast path included."""
    key = tenant.key.encode()
    variants = [
        b"Bearer",
        b"Bearer ",
        b"Basic " + key,
        b"Bearer " + key + b"x",
        b"Bearer " + key[:-1],
        b"Bearer " + key.upper(),
        b"Bearer " + key + b" extra",
        b"Bearer \xff\xfe\x80",
        b"Bearer " + key[:-43] + b"\xe9" * 43,
        b"Bearer " + b"a" * 8000,
    ]
    body = {
        "subject": {"identifier": {"type": "email", "value": "ann@example.com"}},
        "action": "email.marketing",
        "context": {"requester": "esp", "jurisdiction": "DE"},
    }
    ok = [(b"authorization", b"Bearer " + key)]
    assert (await client.post("/v1/decisions", json=body, headers=ok)).status_code == 200
    for value in variants:
        headers = [(b"authorization", value)]
        _is_problem(await client.get("/v1/tenant", headers=headers), 401, "unauthorized")
        refused = await client.post("/v1/decisions", json=body, headers=headers)
        _is_problem(refused, 401, "unauthorized")
