"""A policy whose data names a purpose no tenant defines (a typo: `newsleter`) denies every
decision on that action with `denied.unknown_purpose`. It is not refused (the purpose may be
created after the policy), but whoever deploys it is told: `consent policy reload` and a
SIGHUP reload, the service when it starts, and `consent policy test` when a database is at
hand, each name the action and the purpose key."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import msgspec
import pytest
import structlog
from litestar.testing import AsyncTestClient

from consent.app import create_app
from consent.config import Settings
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.db.scratch import create_database, drop_database
from consent.decisions.engine import PolicyBundle
from consent.decisions.policy import reload_everywhere
from consent.decisions.shape import ACTIONS_DATA_PATH, needed_purposes
from consent.tenancy.service import create_tenant_with_admin_key
from tests.support.cli import cli_env, free_port, run_consent

pytestmark = [pytest.mark.integration, pytest.mark.policy]

ACTION = "newsletter.digest"
TYPO = "newsleter"
WARNING = (
    f"action '{ACTION}' needs the purpose '{TYPO}' (did you mean 'newsletter'?), which no "
    "tenant defines"
)


@pytest.fixture
def root(tmp_path: Path, policy_root: Path) -> Path:
    """The shipped policies plus an action whose purpose key is misspelt (no case uses it, so
    the policy's own tests pass)."""
    copy = tmp_path / "policies"
    shutil.copytree(policy_root, copy)
    actions = copy / "data" / "actions.json"
    doc = json.loads(actions.read_text())
    doc["value"][ACTION] = {
        "purposes": [TYPO],
        "sale_or_share": False,
        "targeted_advertising": False,
        "sensitive": False,
        "direct_marketing": True,
        "personalization": False,
    }
    actions.write_text(json.dumps(doc, indent=1))
    return copy


@pytest.fixture
async def lone_dsn(pg_server_dsn: str) -> AsyncIterator[str]:
    """A migrated database of its own: no other test's tenants, and a reload request reaches
    no other test's service."""
    dsn = await create_database(pg_server_dsn)
    yield dsn
    await drop_database(pg_server_dsn, dsn)


@pytest.fixture
async def catalogue(lone_dsn: str, bundle: PolicyBundle) -> str:
    """`lone_dsn` with a tenant whose catalogue has every purpose the shipped policy needs,
    and `newsletter`."""
    keys = {key for name in bundle.data[ACTIONS_DATA_PATH] for key in needed_purposes(bundle, name)}
    db = await Database.connect(lone_dsn, min_size=1, max_size=1)
    try:
        tenant, _ = await create_tenant_with_admin_key(db, "Catalogue tenant")
        async with db.system() as conn:
            for key in sorted({*keys, "newsletter"}):
                await conn.execute(
                    "insert into purpose (tenant_id, key, name, legal_basis)"
                    " values ($1, $2, $3, 'consent')",
                    uuid.UUID(str(tenant.id)),
                    key,
                    key.replace("_", " ").capitalize(),
                )
    finally:
        await db.close()
    return lone_dsn


def _undefined(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == "policy.purpose_undefined"]


def test_policy_reload_names_the_action_and_the_purpose(
    root: Path, catalogue: str, tmp_path: Path
) -> None:
    done = run_consent(
        "policy",
        "reload",
        "--root",
        str(root),
        "--wait",
        "0.5",
        env=cli_env(catalogue, data_dir=tmp_path / "data", CONSENT_LOG_LEVEL="warning"),
    )
    assert f"consent policy reload: warning: {WARNING}" in done.stderr, done.stderr
    # a warning, not a refusal: the bundle passed and was sent (no service runs here)
    assert "passed its checks; reload requested" in done.stdout, done.stdout + done.stderr
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stderr.count("warning:") == 1  # the other actions' purposes are defined


async def test_a_sighup_reload_logs_the_warning(
    root: Path, catalogue: str, settings: Settings
) -> None:
    """SIGHUP to `consent serve` reloads through `reload_everywhere` without a terminal: the
    warning is in the service's log."""
    operator = msgspec.structs.replace(settings, database_url=catalogue, policy_dir=root)
    with structlog.testing.capture_logs() as logs:
        bundle, _ = await reload_everywhere(operator, wait=0.2)
    assert _undefined(logs) == [
        {
            "event": "policy.purpose_undefined",
            "log_level": "warning",
            "action": ACTION,
            "purposes": [TYPO],
            "did_you_mean": {TYPO: "newsletter"},
            "revision": bundle.revision,
        }
    ]


async def test_the_service_warns_when_it_starts(
    root: Path, catalogue: str, settings: Settings, keyring: KeyRing
) -> None:
    app_settings = msgspec.structs.replace(settings, database_url=catalogue, policy_dir=root)
    with structlog.testing.capture_logs() as logs:
        async with AsyncTestClient(app=create_app(app_settings, keyring=keyring)) as client:
            served = (await client.get("/health/live")).status_code
    assert served == 200
    assert [(e["action"], e["purposes"]) for e in _undefined(logs)] == [(ACTION, [TYPO])]


async def test_no_warning_before_any_tenant_has_purposes(
    root: Path, lone_dsn: str, settings: Settings
) -> None:
    """A new installation has no purposes at all: naming every action would tell nobody
    anything."""
    operator = msgspec.structs.replace(settings, database_url=lone_dsn, policy_dir=root)
    with structlog.testing.capture_logs() as logs:
        await reload_everywhere(operator, wait=0.2)
    assert _undefined(logs) == []


def test_policy_test_warns_and_still_passes(root: Path, catalogue: str, tmp_path: Path) -> None:
    done = run_consent(
        "policy", "test", "--root", str(root), env=cli_env(catalogue, data_dir=tmp_path / "d")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert f"WARN {WARNING}" in "\n".join(lines), done.stdout
    assert lines[-1].startswith("ok: ")
    assert "0 failed, 1 warning" in lines[-1]


def test_policy_test_without_a_database_says_it_did_not_compare(root: Path, tmp_path: Path) -> None:
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/consent"
    done = run_consent(
        "policy", "test", "--root", str(root), env=cli_env(unreachable, data_dir=tmp_path / "d")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "were not compared" in done.stderr
    assert "Traceback" not in done.stderr
    assert "WARN" not in done.stdout
