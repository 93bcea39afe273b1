"""Policy reload without a restart (`consent policy reload` -> PostgreSQL notification -> every
process), refusal of a broken policy while the old one keeps serving, replay across revisions,
and `consent policy test`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from consent.app import create_app
from consent.audit.leaf import AdminChanged, decode_leaf
from consent.config import Settings
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.db.listening import Listener
from consent.db.scratch import create_database, drop_database
from consent.decisions.policy import RELOAD_CHANNEL, STATUS_CHANNEL, ReloadAck
from consent.tenancy.service import create_tenant_with_admin_key
from tests.conftest import Tenant
from tests.integration.decisions.conftest import Ledger, add_reason_text

pytestmark = [pytest.mark.integration, pytest.mark.policy]

ROOT = Path(__file__).resolve().parents[3]
SALE_IN_UTAH: dict[str, Any] = {"jurisdiction": "US-UT", "age": 40, "gpc": True}


def _add_gpc_state(root: Path, state: str, since: str = "2024-01-01") -> None:
    """List `state` in gpc_legal_effect, GPC having legal effect there from the day `since`."""
    path = root / "data" / "jurisdictions.json"
    doc = json.loads(path.read_text())
    doc["value"]["gpc_legal_effect"][state] = since
    doc["value"]["gpc_legal_effect_sources"][state] = {"statute": "test", "sources": ["test"]}
    path.write_text(json.dumps(doc))


def _break_syntax(root: Path) -> None:
    rego = root / "consent" / "decision.rego"
    rego.write_text(rego.read_text().replace("allow if count(denials) == 0", "allow { true }"))


async def _consent_cli(*args: str, database_dsn: str, tmp: Path) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENT_")}
    env |= {
        "CONSENT_DATABASE_URL": database_dsn,
        "CONSENT_DATA_DIR": str(tmp),
        "CONSENT_LOG_LEVEL": "warning",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "consent",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def lone_dsn(pg_server_dsn: str) -> AsyncIterator[str]:
    """A database of its own, as a separate deployment has: a reload request reaches every
    process listening on the database, and other tests' servers (the browser tests' live
    server) listen on the shared test database with the bundled policies."""
    dsn = await create_database(pg_server_dsn)
    yield dsn
    await drop_database(pg_server_dsn, dsn)


@pytest.fixture
async def lone_db(lone_dsn: str) -> AsyncIterator[Database]:
    db = await Database.connect(lone_dsn, min_size=1, max_size=2)
    yield db
    await db.close()


@pytest.fixture
async def served(
    settings: Settings, lone_dsn: str, lone_db: Database, keyring: KeyRing, policy_copy: Path
) -> AsyncIterator[Ledger]:
    created, key = await create_tenant_with_admin_key(lone_db, "Reloading tenant")
    tenant = Tenant(str(created.id), key)
    app_settings = msgspec.structs.replace(settings, database_url=lone_dsn, policy_dir=policy_copy)
    async with AsyncTestClient(app=create_app(app_settings, keyring=keyring)) as client:
        ledger = Ledger(client, tenant)
        await ledger.setup()
        await ledger.consent("ann@example.com", {"data_sale": "granted"})
        yield ledger


async def _serving(ledger: Ledger) -> str:
    response = await ledger.client.get("/v1/policy", headers=ledger.h)
    assert response.status_code == 200
    revision: str = response.json()["revision"]
    return revision


async def _policy_leaves(db: Database, tenant: Tenant) -> list[str]:
    """The policy revisions the tenant's audit log records as admin changes, oldest first."""
    async with db.system() as conn:
        rows = await conn.fetch(
            "select leaf_bytes from audit_event where tenant_id = $1 and kind = 'admin.changed'"
            " order by event_id",
            uuid.UUID(tenant.id),
        )
    leaves = [decode_leaf(bytes(r["leaf_bytes"])) for r in rows]
    return [
        leaf.entity_id
        for leaf in leaves
        if isinstance(leaf, AdminChanged) and leaf.entity == "policy"
    ]


async def test_reload_through_the_cli_and_replay(
    served: Ledger, policy_copy: Path, lone_dsn: str, lone_db: Database, tmp_path: Path
) -> None:
    before = await _serving(served)
    old = await served.decide("ann@example.com", "data.sell.partner", **SALE_IN_UTAH)
    assert (old["allow"], old["policy_revision"]) == (True, before)

    _add_gpc_state(policy_copy, "US-UT")
    code, out, err = await _consent_cli(
        "policy", "reload", "--root", str(policy_copy), database_dsn=lone_dsn, tmp=tmp_path
    )
    assert code == 0, (out, err)
    after = await _serving(served)
    assert after != before
    assert f"serving {after}" in out

    new = await served.decide("ann@example.com", "data.sell.partner", **SALE_IN_UTAH)
    assert (new["allow"], new["reasons"], new["policy_revision"]) == (False, ["denied.gpc"], after)
    # Both policies served are admin changes in the tenant's audit log, once each.
    assert await _policy_leaves(lone_db, served.tenant) == [before, after]
    # A tenant created now starts its log with the policy in force, not with nothing.
    created, key = await create_tenant_with_admin_key(lone_db, "Later tenant")
    assert await _policy_leaves(lone_db, Tenant(str(created.id), key)) == [after]

    replayed = await served.client.get(
        f"/v1/decisions/{old['decision_id']}?replay=true", headers=served.h
    )
    body = replayed.json()
    assert body["policy_revision"] == before  # what was decided, under the policy of the time
    assert body["allow"] is True
    assert body["replay"] == {
        "policy_revision": after,
        "allow": False,
        "reasons": ["denied.gpc"],
        "purposes": {"data_sale": "allowed.consent"},
        "differs": True,
        "missing_purposes": [],
    }


async def test_going_back_to_an_earlier_policy_is_an_admin_change_too(
    served: Ledger, policy_copy: Path, lone_dsn: str, lone_db: Database, tmp_path: Path
) -> None:
    """A rollback is recorded; reloading the policy already in force is not."""
    before = await _serving(served)
    original = (policy_copy / "data" / "jurisdictions.json").read_text()
    _add_gpc_state(policy_copy, "US-UT")
    for _ in range(2):  # the second reload changes nothing
        code, out, err = await _consent_cli(
            "policy", "reload", "--root", str(policy_copy), database_dsn=lone_dsn, tmp=tmp_path
        )
        assert code == 0, (out, err)
    after = await _serving(served)
    (policy_copy / "data" / "jurisdictions.json").write_text(original)
    code, out, err = await _consent_cli(
        "policy", "reload", "--root", str(policy_copy), database_dsn=lone_dsn, tmp=tmp_path
    )
    assert code == 0, (out, err)
    assert await _serving(served) == before
    assert await _policy_leaves(lone_db, served.tenant) == [before, after, before]
    created, key = await create_tenant_with_admin_key(lone_db, "After the rollback")
    assert await _policy_leaves(lone_db, Tenant(str(created.id), key)) == [before]


async def test_a_broken_policy_is_refused_and_the_old_one_keeps_serving(
    served: Ledger, policy_copy: Path, lone_dsn: str, lone_db: Database, tmp_path: Path
) -> None:
    before = await _serving(served)
    _break_syntax(policy_copy)
    code, out, err = await _consent_cli(
        "policy", "reload", "--root", str(policy_copy), database_dsn=lone_dsn, tmp=tmp_path
    )
    assert code == 1, (out, err)
    assert "refused" in err
    assert await _serving(served) == before
    got = await served.decide("ann@example.com", "data.sell.partner", jurisdiction="DE")
    assert (got["allow"], got["policy_revision"]) == (True, before)
    assert await _policy_leaves(lone_db, served.tenant) == [before]  # nothing was served


async def _notify_and_collect(dsn: str, wait: float = 10.0) -> list[ReloadAck]:
    """What a reload request gets back from the running processes."""
    acks: list[ReloadAck] = []
    got = asyncio.Event()

    def on_ack(_conn: object, _pid: int, _channel: str, payload: object) -> None:
        acks.append(msgspec.json.decode(str(payload), type=ReloadAck))
        got.set()

    conn = await asyncpg.connect(dsn)
    try:
        await conn.add_listener(STATUS_CHANNEL, on_ack)
        await conn.execute("select pg_notify($1, 'test')", RELOAD_CHANNEL)
        await asyncio.wait_for(got.wait(), timeout=wait)
    finally:
        await conn.close()
    return acks


async def test_each_process_checks_again_and_refuses(
    served: Ledger, policy_copy: Path, lone_dsn: str
) -> None:
    """A broken bundle that reaches a process anyway (no CLI check) is refused there too."""
    before = await _serving(served)
    _break_syntax(policy_copy)
    (ack,) = await _notify_and_collect(lone_dsn)
    assert (ack.ok, ack.revision) == (False, before)
    assert ack.error
    assert await _serving(served) == before

    # A bundle that compiles and passes its tests but that the decision cache cannot serve
    # exactly (it reads the clock in a way the normalised key does not keep) is refused too.
    (policy_copy / "consent" / "decision.rego").write_text(
        (ROOT / "policies" / "consent" / "decision.rego").read_text()
        + '\ndenials contains "denied.late" if input.now_ns > 3000000000000000000\n'
    )
    add_reason_text(policy_copy, "denied.late", "Too late.")
    (ack,) = await _notify_and_collect(lone_dsn)
    assert not ack.ok
    assert "normalised" in (ack.error or "")
    assert await _serving(served) == before


async def test_the_cli_says_why_a_process_serves_another_bundle(
    served: Ledger,
    settings: Settings,
    policy_copy: Path,
    lone_dsn: str,
    lone_db: Database,
    tmp_path: Path,
) -> None:
    """A process on the same database that loads its policy from another directory answers a
    reload with its own bundle: the command fails and names that process's directory."""
    from consent.decisions.policy import PolicyRuntime

    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(ROOT / "policies", elsewhere)
    stray = await PolicyRuntime.open(msgspec.structs.replace(settings, policy_dir=elsewhere))
    listener = Listener(lone_db)
    stray.listen(listener)
    listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), 10)
        _add_gpc_state(policy_copy, "US-UT")
        code, out, err = await _consent_cli(
            "policy", "reload", "--root", str(policy_copy), database_dsn=lone_dsn, tmp=tmp_path
        )
    finally:
        await listener.aclose()
        await stray.aclose()
    assert code == 1, (out, err)
    assert f"serving {await _serving(served)}\n" in out  # the process reading policy_copy
    assert f"serving {stray.revision}, not " in out
    assert f"it loads its policy from {elsewhere} (its CONSENT_POLICY_DIR)" in out


async def test_a_process_that_lost_its_listener_catches_up(
    served: Ledger, policy_copy: Path, lone_db: Database
) -> None:
    before = await _serving(served)
    _add_gpc_state(policy_copy, "US-UT")
    async with lone_db.system() as conn:  # drop the listening connection
        killed = await conn.fetchval(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity"
            " where query like 'LISTEN%' and datname = current_database()"
        )
    assert killed >= 1
    for _ in range(60):
        if await _serving(served) != before:
            break
        await asyncio.sleep(0.1)
    assert await _serving(served) != before


async def test_a_broken_policy_stops_start_up(
    settings: Settings, db: Database, keyring: KeyRing, policy_copy: Path
) -> None:
    from consent.decisions.engine import PolicyLoadError

    _break_syntax(policy_copy)
    app = create_app(msgspec.structs.replace(settings, policy_dir=policy_copy), keyring=keyring)
    with pytest.raises(BaseExceptionGroup) as failed:  # the test client groups lifespan errors
        async with AsyncTestClient(app=app):
            pass
    assert failed.group_contains(PolicyLoadError, depth=None)


async def test_policy_test_command(policy_copy: Path, database_dsn: str, tmp_path: Path) -> None:
    code, out, _ = await _consent_cli(
        "policy", "test", "--root", str(policy_copy), database_dsn=database_dsn, tmp=tmp_path
    )
    assert code == 0
    assert out.splitlines()[-1].startswith("ok: ")
    cases = policy_copy / "cases" / "consent.json"
    doc: list[dict[str, Any]] = json.loads(cases.read_text())
    doc[0]["expect"]["allow"] = False
    cases.write_text(json.dumps(doc))
    code, out, _ = await _consent_cli(
        "policy", "test", "--root", str(policy_copy), database_dsn=database_dsn, tmp=tmp_path
    )
    assert code == 1
    assert "FAIL case:consent.json::granted consent allows" in out
