"""Decision tests: the app on real PostgreSQL with the real OPA engine, in-process or behind the
local OPA protocol server; a tenant whose catalogue has the purposes the policy's actions need."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from consent.app import create_app
from consent.config import Settings
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.decisions.engine import default_policy_root
from tests.conftest import SHOWN_SINCE, Tenant
from tests.support.opa_server import LocalOpaServer

T = TypeVar("T")

# Purposes of policies/data/actions.json: key -> (legal basis, max age in days).
PURPOSES: dict[str, tuple[str, int | None]] = {
    "email_marketing": ("consent", 395),
    "sms_marketing": ("consent", 395),
    "advertising": ("consent", 395),
    "data_sharing": ("consent", None),
    "data_sale": ("consent", 30),
    "analytics": ("legitimate_interest", None),
    "personalization": ("consent", 395),
    "offline_join": ("contract", None),
}
CONSENT_PURPOSES = [k for k, (basis, _) in PURPOSES.items() if basis == "consent"]


@pytest.fixture(scope="session")
def opa_server() -> Iterator[LocalOpaServer]:
    with LocalOpaServer() as server:
        yield server


@pytest.fixture(params=["in-process", "opa-server"])
def engine_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def decision_settings(settings: Settings, engine_kind: str, opa_server: LocalOpaServer) -> Settings:
    return msgspec.structs.replace(
        settings,
        opa_url=opa_server.url if engine_kind == "opa-server" else None,
        decision_log_linger_ms=1.0,
        db_pool_max=6,
    )


@pytest.fixture
async def dclient(
    decision_settings: Settings, db: Database, keyring: KeyRing
) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(decision_settings, keyring=keyring)
    async with AsyncTestClient(app=app) as c:
        yield c


def in_app(client: Any, fn: Callable[[], Awaitable[T]]) -> T:
    """Run `fn` in the app's event loop (the test client serves requests one at a time, in a
    thread of its own: concurrency inside the app has to be driven from there)."""
    result: T = client.blocking_portal.call(fn)
    return result


def days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


class Ledger:
    """Sets up a tenant's catalogue and consents through the API, and asks for decisions."""

    def __init__(self, client: Any, tenant: Tenant) -> None:
        self.client = client
        self.tenant = tenant
        self.h = tenant.headers
        self.version_ids: dict[int, str] = {}

    async def post(self, path: str, body: Any, status: int = 201) -> Any:
        response = await self.client.post(path, json=body, headers=self.h)
        assert response.status_code == status, response.text
        return response.json()

    async def setup(self, purposes: dict[str, tuple[str, int | None]] | None = None) -> None:
        purposes = PURPOSES if purposes is None else purposes
        for key, (basis, max_age) in purposes.items():
            body: dict[str, Any] = {"key": key, "name": key.title(), "legal_basis": basis}
            if max_age is not None:
                body["max_age_days"] = max_age
            await self.post("/v1/purposes", body)
        await self.post(
            "/v1/purposes",
            {
                "key": "essential",
                "name": "Essential",
                "legal_basis": "legitimate_interest",
                "strictly_necessary": True,
            },
        )
        await self.post("/v1/notices", {"key": "main", "purposes": [*purposes, "essential"]})
        await self.publish()

    async def publish(self, change_kind: str = "material") -> str:
        draft = await self.post(
            "/v1/notices/main/versions",
            {
                "texts": {"en": {"title": "Privacy", "body": "How we use data."}},
                "change_kind": change_kind,
                "shown_since": SHOWN_SINCE,  # before the oldest consent a test records
            },
        )
        published = await self.post(
            f"/v1/notices/main/versions/{draft['version']}/publish", None, status=200
        )
        self.version_ids[published["version"]] = published["id"]
        return str(published["id"])

    async def consent(
        self, identifier: str, choices: dict[str, str], *, occurred_days_ago: float | None = None
    ) -> str:
        body: dict[str, Any] = {
            "identifier": {"type": "email", "value": identifier},
            "choices": [{"purpose": p, "choice": c} for p, c in choices.items()],
            "surface": "banner",
            "channel": "web",
            "notice_version_id": self.version_ids[max(self.version_ids)],
        }
        if occurred_days_ago is not None:
            body["occurred_at"] = days_ago(occurred_days_ago)
        return str((await self.post("/v1/consents", body))["subject_id"])

    async def decide(
        self, identifier: str, action: str, status: int = 200, **context: Any
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/decisions",
            json={
                "subject": {"identifier": {"type": "email", "value": identifier}},
                "action": action,
                "context": {"requester": "test-system", **context},
            },
            headers=self.h,
        )
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        return body

    async def audience(self, header: dict[str, Any], members: list[Any]) -> list[dict[str, Any]]:
        lines = [json.dumps(header), *(json.dumps(m) for m in members)]
        response = await self.client.post(
            "/v1/audiences/filter",
            content="\n".join(lines).encode() + b"\n",
            headers={**self.h, "content-type": "application/x-ndjson"},
        )
        assert response.status_code == 200, response.text
        return [json.loads(line) for line in response.text.splitlines() if line]


@pytest.fixture
async def ledger(dclient: Any, tenant: Tenant) -> Ledger:
    ledger = Ledger(dclient, tenant)
    await ledger.setup()
    return ledger


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    """A writable copy of the policies (for reload tests)."""
    target = tmp_path / "policies"
    shutil.copytree(default_policy_root(), target)
    return target


FAULTS = """
# Test faults: an evaluation error, an undefined decision and a slow evaluation, each for an
# action the real policy does not know.
reasons := ["denied.fault"] if input.action == "boom.error"

denials contains "denied.slow" if {
	input.action == "slow.timeout"
	count([n | some n in numbers.range(1, 400000)]) > 0
}
"""


def add_faults(root: Path) -> None:
    """Make the policy at `root` fail for three actions (it still passes its own checks)."""
    rego = root / "consent" / "decision.rego"
    source = rego.read_text()
    source = source.replace(
        '\t"purposes": purpose_reasons,\n}',
        '\t"purposes": purpose_reasons,\n} if not input.action == "void.undefined"',
        1,
    )
    rego.write_text(source + FAULTS)
    add_reason_text(root, "denied.fault", "Test fault: an evaluation error.")
    add_reason_text(root, "denied.slow", "Test fault: a slow evaluation.")


def add_reason_text(root: Path, code: str, text: str) -> None:
    """Words for a code a test's rule gives: without them the bundle is refused
    (consent.decisions.reasons), before any check the test means to exercise."""
    path = root / "data" / "reasons.json"
    doc = json.loads(path.read_text())
    doc["value"][code] = {"en": text}
    path.write_text(json.dumps(doc))
