"""The local OPA stand-in speaks OPA's REST API the way opa_client expects."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opa_client import AsyncOpaClient
from opa_client.errors import RegoParseError

from tests.support.opa_server import LocalOpaServer

pytestmark = pytest.mark.policy

POLICY = 'package demo\n\nallow if input.user == "alice"\n\nlimit := data.demo_data.limit\n'


@pytest.fixture
def server() -> Iterator[LocalOpaServer]:
    with LocalOpaServer() as server:
        yield server


@pytest.fixture
async def client(server: LocalOpaServer) -> AsyncIterator[Any]:
    host, port = server.url.removeprefix("http://").split(":")
    async with AsyncOpaClient(host=host, port=int(port), retries=0) as client:
        yield client


def _raw(
    server: LocalOpaServer, method: str, path: str, body: bytes | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(f"{server.url}{path}", data=body, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request) as response:  # noqa: S310
            payload = response.read()
            return response.status, json.loads(payload) if payload else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_policy_data_and_queries(client: Any) -> None:
    assert await client.check_health()
    assert await client.check_connection()
    assert await client.update_policy_from_string(POLICY, "demo/policy.rego", rego_compat=False)
    assert await client.update_or_create_data({"limit": 3}, "demo_data")
    assert await client.get_policies_list() == ["demo/policy.rego"]
    assert await client.query_rule({"user": "alice"}, "demo", "allow") == {"result": True}
    assert await client.query_rule({"user": "bob"}, "demo", "allow") == {}  # undefined
    assert await client.query_rule({}, "demo", "limit") == {"result": 3}
    assert await client.get_data("demo_data") == {"result": {"limit": 3}}
    assert await client.delete_data("demo_data")
    assert await client.query_rule({}, "demo", "limit") == {}
    assert await client.delete_policy("demo/policy.rego")
    assert await client.get_policies_list() == []


async def test_parse_errors_are_400_with_opa_errors(client: Any, server: LocalOpaServer) -> None:
    with pytest.raises(RegoParseError) as info:
        await client.update_policy_from_string(
            "package demo\n\nallow { true }\n", "demo.rego", rego_compat=False
        )
    assert info.value.expression == "invalid_parameter"
    [error] = info.value.errors
    assert error["code"] == "rego_parse_error"
    assert "`if` keyword is required" in error["message"]
    assert error["location"]["row"] == 3
    assert await client.get_policies_list() == []


def test_compile_errors_keep_the_old_policy(server: LocalOpaServer) -> None:
    assert _raw(server, "PUT", "/v1/policies/demo.rego", POLICY.encode())[0] == 200
    status, body = _raw(server, "PUT", "/v1/policies/demo.rego", b"package demo\n\nx := nope(1)\n")
    assert status == 400
    assert body["errors"][0]["code"] == "rego_type_error"
    assert _raw(server, "POST", "/v1/data/demo/allow", b'{"input": {"user": "alice"}}') == (
        200,
        {"result": True},
    )


def test_malformed_input_is_400(server: LocalOpaServer) -> None:
    status, body = _raw(server, "POST", "/v1/data/demo/allow", b"{not json")
    assert status == 400
    assert body["code"] == "invalid_parameter"
    assert _raw(server, "DELETE", "/v1/policies/missing.rego")[0] == 404
