"""An operator's OPA server restarts and comes back empty: the service answers 503 (never a
decision made without the policy), pushes its bundle again by itself, and decides again, each
decision naming the revision it was made under."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from consent.app import create_app
from consent.config import Settings
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from tests.conftest import Tenant
from tests.integration.decisions.conftest import Ledger
from tests.support.opa_server import LocalOpaServer

pytestmark = [pytest.mark.integration, pytest.mark.policy]


@pytest.fixture
async def served(
    settings: Settings, db: Database, keyring: KeyRing, tenant: Tenant
) -> AsyncIterator[tuple[LocalOpaServer, Ledger]]:
    server = LocalOpaServer().start()
    try:
        app_settings = msgspec.structs.replace(settings, opa_url=server.url, opa_timeout_ms=500)
        async with AsyncTestClient(app=create_app(app_settings, keyring=keyring)) as client:
            ledger = Ledger(client, tenant)
            await ledger.setup()
            await ledger.consent("ann@example.com", {"email_marketing": "granted"})
            yield server, ledger
    finally:
        server.stop()


async def _ask(ledger: Ledger, age: int) -> Any:
    return await ledger.client.post(
        "/v1/decisions",
        json={
            "subject": {"identifier": {"type": "email", "value": "ann@example.com"}},
            "action": "email.marketing",
            "context": {"requester": "esp", "age": age},
        },
        headers=ledger.h,
    )


async def test_a_restarted_empty_opa_server_is_filled_again(
    served: tuple[LocalOpaServer, Ledger],
) -> None:
    server, ledger = served
    status = (await ledger.client.get("/v1/policy", headers=ledger.h)).json()
    assert status["engine"] == "opa-server"
    first = await _ask(ledger, 30)
    assert first.status_code == 200, first.text
    assert first.json()["allow"] is True
    assert first.json()["policy_revision"] == status["revision"]

    port = int(server.url.rsplit(":", 1)[1])
    server.stop()
    restarted = LocalOpaServer(port=port).start()  # the same address, nothing loaded
    served_again = None
    try:
        for age in range(31, 35):  # ages not decided before: no cache hit
            response = await _ask(ledger, age)
            if response.status_code == 503:  # the old connection found closed: not a decision
                assert response.json()["type"] == "/problems/policy-unavailable"
                continue
            assert response.json()["allow"] is True, response.text  # never a deny meanwhile
            served_again = response.json()
            break
        assert served_again is not None, "the service never pushed its policy again"
        assert served_again["policy_revision"] == status["revision"]
        assert restarted.store.policies  # the bundle is back on the server
    finally:
        restarted.stop()
