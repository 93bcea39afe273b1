"""A tenant that uses a few actions has no purpose for most of the others: naming each of them
on every start and reload buried the one line that matters, a misspelt purpose key in the
policy's data (`newsleter`, did you mean `newsletter`?). Each likely typo keeps its own line;
the other actions are one line, pointing at GET /v1/policy/actions for the full list."""

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

from consent.config import Settings
from consent.db.database import Database
from consent.db.scratch import create_database, drop_database
from consent.decisions.engine import default_policy_root
from consent.decisions.policy import reload_everywhere
from consent.tenancy.service import create_tenant_with_admin_key
from tests.support.cli import cli_env, run_consent

pytestmark = [pytest.mark.integration, pytest.mark.policy]

ACTION, TYPO = "newsletter.digest", "newsleter"
TYPO_LINE = (
    f"action '{ACTION}' needs the purpose '{TYPO}' (did you mean 'newsletter'?), which no "
    "tenant defines"
)
# The shipped actions whose purposes the tenant below lacks (it has only `email_marketing`).
OTHERS = 9
SUMMARY = f"{OTHERS} actions need purposes no tenant defines yet: ads.retarget, ads.targeted, "


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The shipped policies plus an action whose purpose key is misspelt."""
    copy = tmp_path / "policies"
    shutil.copytree(default_policy_root(), copy)
    actions = copy / "data" / "actions.json"
    doc = json.loads(actions.read_text())
    doc["value"][ACTION] = {**doc["value"]["email.marketing"], "purposes": [TYPO]}
    actions.write_text(json.dumps(doc, indent=1))
    return copy


@pytest.fixture
async def few_purposes(pg_server_dsn: str) -> AsyncIterator[str]:
    """A database of its own whose one tenant defines two purposes: `email_marketing` (for
    the shipped `email.marketing`) and `newsletter`."""
    dsn = await create_database(pg_server_dsn)
    db = await Database.connect(dsn, min_size=1, max_size=1)
    try:
        tenant, _ = await create_tenant_with_admin_key(db, "Few purposes")
        async with db.system() as conn:
            for key in ("email_marketing", "newsletter"):
                await conn.execute(
                    "insert into purpose (tenant_id, key, name, legal_basis)"
                    " values ($1, $2, $3, 'consent')",
                    uuid.UUID(str(tenant.id)),
                    key,
                    key.capitalize(),
                )
    finally:
        await db.close()
    yield dsn
    await drop_database(pg_server_dsn, dsn)


def test_policy_reload_names_the_typo_and_summarises_the_rest(
    root: Path, few_purposes: str, tmp_path: Path
) -> None:
    done = run_consent(
        "policy",
        "reload",
        "--root",
        str(root),
        "--wait",
        "0.5",
        env=cli_env(few_purposes, data_dir=tmp_path / "data", CONSENT_LOG_LEVEL="warning"),
    )
    assert done.returncode == 3, done.stdout + done.stderr  # no service runs on this database
    warnings = [line for line in done.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 2, done.stderr
    typo, summary = warnings
    assert TYPO_LINE in typo
    summary = summary.removeprefix("consent policy reload: warning: ")
    assert summary.startswith(SUMMARY), summary
    assert "and 4 more" in summary
    assert "GET /v1/policy/actions" in summary
    assert ACTION not in summary


def _events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


async def test_the_log_has_one_event_per_typo_and_one_for_the_rest(
    root: Path, few_purposes: str, settings: Settings
) -> None:
    """What the service logs at start and on SIGHUP (`warn_undefined_purposes` without a
    terminal)."""
    operator = msgspec.structs.replace(settings, database_url=few_purposes, policy_dir=root)
    with structlog.testing.capture_logs() as logs:
        bundle, _ = await reload_everywhere(operator, wait=0.2)
    assert [e["action"] for e in _events(logs, "policy.purpose_undefined")] == [ACTION]
    [summary] = _events(logs, "policy.purposes_undefined_summary")
    assert summary["count"] == OTHERS
    assert summary["actions"][:2] == ["ads.retarget", "ads.targeted"]
    assert ACTION not in summary["actions"]
    assert summary["revision"] == bundle.revision
    assert summary["log_level"] == "warning"


def test_policy_test_has_two_warnings(root: Path, few_purposes: str, tmp_path: Path) -> None:
    done = run_consent(
        "policy", "test", "--root", str(root), env=cli_env(few_purposes, data_dir=tmp_path / "d")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    warnings = [line for line in lines if line.startswith("WARN ")]
    assert len(warnings) == 2, done.stdout
    assert TYPO_LINE in warnings[0]
    assert warnings[1].startswith(f"WARN {SUMMARY}"), warnings[1]
    assert "0 failed, 2 warnings" in lines[-1]
