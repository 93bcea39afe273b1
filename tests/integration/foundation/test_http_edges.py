"""Edges of the HTTP surface a new user meets: the docs paths Litestar would answer itself,
HEAD on the docs' files, a CORS preflight's request id, and a JSON body sent to the NDJSON
stream. Every error is a problem, every answer carries its request id."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import Tenant

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
SHOP = "https://shop.example"


async def _static_root(client: Any) -> str:
    html = (await client.get("/schema/swagger")).text
    (bundle,) = re.findall(r"""src=["']([^"']*swagger-ui-bundle\.js)["']""", html)
    return str(bundle.rsplit("/", 1)[0])


@pytest.mark.parametrize(
    "path", ["/schema/redoc", "/schema/elements", "/schema/rapidoc", "/schema/nothing-here"]
)
async def test_a_docs_page_the_service_does_not_serve_is_a_problem(client: Any, path: str) -> None:
    """Litestar answers an unknown path under the docs with an HTML page of its own; like
    every other unknown path it is a 404 problem, with the request id."""
    answer = await client.get(path, headers={"X-Request-ID": "trace-docs-404"})
    assert answer.status_code == 404, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM), answer.text
    problem = answer.json()
    assert problem["type"] == "/problems/not-found"
    assert problem["request_id"] == "trace-docs-404"
    assert answer.headers["x-request-id"] == "trace-docs-404"


async def test_the_docs_pages_the_service_serves_still_answer(client: Any) -> None:
    for path in ("/schema", "/schema/swagger"):
        answer = await client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith("text/html"), path
    assert (await client.get("/schema/openapi.json")).json()["openapi"].startswith("3.1")


@pytest.mark.parametrize("name", ["swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"])
async def test_a_docs_file_answers_head_with_the_headers_of_get(client: Any, name: str) -> None:
    root = await _static_root(client)
    got = await client.get(f"{root}/{name}")
    head = await client.head(f"{root}/{name}")
    assert head.status_code == 200, head.text
    assert head.content == b""
    for header in ("content-type", "content-length", "cache-control", "etag", "last-modified"):
        assert head.headers.get(header) == got.headers.get(header), header
    assert int(head.headers["content-length"]) == len(got.content)
    assert "x-request-id" in head.headers
    missing = await client.head(f"{root}/nope.js")
    assert missing.status_code == 404
    assert missing.content == b""


async def test_a_preflight_carries_a_request_id(client: Any) -> None:
    preflight = {
        "Origin": SHOP,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    made = await client.options("/v1/consents", headers=preflight)
    assert made.status_code == 204, made.text
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"]), made.headers
    echoed = await client.options(
        "/v1/consents", headers={**preflight, "X-Request-ID": "trace-preflight-1"}
    )
    assert echoed.headers["x-request-id"] == "trace-preflight-1"
    nonsense = await client.options(
        "/v1/consents", headers={**preflight, "X-Request-ID": "no spaces, please"}
    )
    assert nonsense.headers["x-request-id"] != "no spaces, please"


async def test_a_page_on_another_origin_may_read_every_header_the_api_sends(
    client: Any, tenant: Tenant
) -> None:
    """The headers the service sends that are not CORS-safelisted: a page reads them only if
    they are exposed (the export's file name, an audience run's id, when to retry, ...)."""
    answer = await client.get("/v1/tenant", headers={**tenant.headers, "Origin": SHOP})
    assert answer.status_code == 200, answer.text
    exposed = {h.strip() for h in answer.headers["access-control-expose-headers"].split(",")}
    expected = {
        "x-request-id",
        "audience-id",
        "content-disposition",
        "retry-after",
        "www-authenticate",
        "content-language",
        "accept",
    }
    assert expected <= exposed, exposed


async def test_the_audience_stream_refuses_a_body_declared_json(
    client: Any, tenant: Tenant
) -> None:
    """The audience filter reads NDJSON only: `application/json` is another media type, and
    gets the same 415 as `text/plain`; a JSON operation refuses NDJSON likewise."""
    header = b'{"action": "email.marketing", "context": {"requester": "esp"}}\n'
    for media in ("application/json", "application/json; charset=utf-8", "text/plain"):
        answer = await client.post(
            "/v1/audiences/filter",
            content=header,
            headers={**tenant.headers, "content-type": media},
        )
        assert answer.status_code == 415, (media, answer.text)
        assert answer.headers["content-type"].startswith(PROBLEM)
        assert answer.headers["accept"] == "application/x-ndjson"
        assert answer.json()["type"] == "/problems/unsupported-media-type"
    ndjson = await client.post(
        "/v1/audiences/filter",
        content=header,
        headers={**tenant.headers, "content-type": "application/x-ndjson"},
    )
    assert ndjson.status_code == 200, ndjson.text
    properties = await client.post(
        "/v1/properties",
        content=b'{"name": "web", "kind": "website"}',
        headers={**tenant.headers, "content-type": "application/x-ndjson"},
    )
    assert properties.status_code == 415, properties.text
    assert properties.headers["accept"] == "application/json"
    assert (await client.get("/v1/properties", headers=tenant.headers)).json()["items"] == []
