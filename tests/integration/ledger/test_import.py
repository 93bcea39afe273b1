"""`consent import`: CSV and NDJSON files, all or nothing, row reports without personal data.

Runs the real command (`python -m consent import ...`) against the test database with the test
key ring, and the Python entry point `import_file` for the cases that need no process.
"""

from __future__ import annotations

import io
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from consent.consents.importer import (
    ANALYZE_FIRST_AT,
    ImportResult,
    ImportUsageError,
    exit_status,
    import_file,
)
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from tests.conftest import Tenant
from tests.integration.ledger.conftest import Catalog
from tests.support.cli import cli_env, run_consent

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
DAY_AGO = (NOW - timedelta(days=1)).isoformat()
WEEK_AGO = (NOW - timedelta(days=7)).isoformat()
# Identifier values that must never appear in a report, a log line or the summary.
SECRETS = ("ann.import@example.com", "not-an-email-zz9", "bad.time@example.com", "+4915112345678")

CSV_HEADER = "identifier_type,identifier_value,purpose,choice,occurred_at,channel,language\n"


def _env(database_dsn: str, keys_dir: Path, data_dir: Path) -> dict[str, str]:
    return cli_env(database_dsn, keys_dir, data_dir, CONSENT_LOG_LEVEL="warning")


@pytest.fixture
def run_cli(database_dsn: str, keys_dir: Path, tmp_path: Path) -> Any:
    env = _env(database_dsn, keys_dir, tmp_path / "data")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_consent("import", *args, env=env)

    return run


async def _counts(db: Database) -> tuple[int, int, int]:
    async with db.system() as conn:
        return (
            await conn.fetchval("select count(*) from consent_event"),
            await conn.fetchval("select count(*) from subject"),
            await conn.fetchval("select count(*) from subject_identifier"),
        )


async def _state(catalog: Catalog, id_type: str, value: str) -> dict[str, dict[str, Any]]:
    body = await catalog.post(
        "/v1/subjects/lookup", {"identifier": {"type": id_type, "value": value}}, status=200
    )
    return {c["purpose"]: c for c in body["consents"]}


async def _unknown(client: Any, catalog: Catalog, id_type: str, value: str) -> bool:
    response = await client.post(
        "/v1/subjects/lookup",
        json={"identifier": {"type": id_type, "value": value}},
        headers=catalog.h,
    )
    return bool(response.status_code == 404)


def _ndjson(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _flat(value: str, purpose: str, choice: str = "granted", **extra: str) -> dict[str, str]:
    row = {
        "identifier_type": "email",
        "identifier_value": value,
        "purpose": purpose,
        "choice": choice,
        "occurred_at": DAY_AGO,
        "channel": "email",
    }
    return {**row, **extra}


def _assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text.lower()


def _report(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def _import(
    db: Database, keyring: KeyRing, tenant: Tenant, path: Path, **options: Any
) -> tuple[ImportResult, str, list[dict[str, Any]]]:
    err = io.StringIO()
    report = io.BytesIO()
    result = await import_file(
        db, keyring, UUID(tenant.id), path, stderr=err, report=report, **options
    )
    lines = [json.loads(line) for line in report.getvalue().splitlines()]
    return result, err.getvalue(), lines


# -- good files -------------------------------------------------------------------------------


async def test_csv_import_through_the_cli(
    run_cli: Any, client: Any, catalog: Catalog, db: Database, tmp_path: Path
) -> None:
    v1 = catalog.versions[1]
    path = tmp_path / "consents.csv"
    path.write_text(
        "identifier_type,identifier_value,purpose,choice,occurred_at,channel,notice_version_id,"
        "language,surface,method,agent_id\n"
        f"email,Ann.Import@Example.com,analytics,granted,{DAY_AGO},web,{v1},en,,,\n"
        f"email,ann.import@example.com,ads,denied,{WEEK_AGO},web,,,,,\n"
        f"phone,+49 151 12345678,newsletter,granted,{DAY_AGO},phone,{v1},,"
        "call_centre,agent,desk-4\n"
        "\n"
        f'loyalty_card,"1234 5678",ads,granted,{DAY_AGO},store,,,store,,\n'
    )
    done = run_cli(str(path), "--tenant", catalog.tenant.id)
    assert done.returncode == 0, done.stderr
    assert "import: 4/4 rows (100%)" in done.stderr
    # The result alone on stdout (`consent import … | tee` keeps it), the progress on stderr.
    assert done.stdout.startswith("imported 4 rows, skipped 0 duplicates, rejected 0: 4 rows in")
    assert "rows/s" in done.stdout
    assert "imported 4 rows" not in done.stderr
    _assert_no_secrets(done.stdout, done.stderr)

    ann = await _state(catalog, "email", "ann.import@example.com")
    assert ann["analytics"]["effective"] is True
    assert ann["analytics"]["notice_version_id"] == v1
    assert ann["ads"]["choice"] == "denied"
    assert ann["ads"]["occurred_at"].startswith(WEEK_AGO[:19])
    phone = await _state(catalog, "phone", "+4915112345678")
    assert phone["newsletter"]["effective"] is True
    card = await _state(catalog, "loyalty_card", "12345678")
    assert card["ads"]["choice"] == "granted"

    who = {"identifier": {"type": "phone", "value": "+4915112345678"}}
    subject = (await catalog.post("/v1/subjects/lookup", who, status=200))["subject_id"]
    history = await client.get(f"/v1/subjects/{subject}/consents/history", headers=catalog.h)
    (event,) = history.json()["items"]
    assert (event["surface"], event["channel"], event["method"], event["agent_id"]) == (
        "call_centre",
        "phone",
        "agent",
        "desk-4",
    )
    assert await _counts(db) == (4, 3, 3)


async def test_ndjson_import_flat_rows_and_api_bodies(
    client: Any, catalog: Catalog, db: Database, keyring: KeyRing, tmp_path: Path
) -> None:
    existing = await catalog.consent(
        identifier={"type": "device", "value": "cookie-1"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )
    v1 = catalog.versions[1]
    path = _ndjson(
        tmp_path / "consents.ndjson",
        [
            _flat("ann.import@example.com", "ads", "withdrawn", occurred_at=DAY_AGO),
            # Older than the withdrawal above: recorded in the history, never undoes it.
            _flat("ann.import@example.com", "ads", "granted", occurred_at=WEEK_AGO),
            {
                "identifier": {"type": "email", "value": "ann.import@example.com"},
                "choices": [
                    {"purpose": "analytics", "choice": "granted"},
                    {"purpose": "newsletter", "choice": "denied"},
                ],
                "notice_version_id": v1,
                "language": "de",
                "surface": "portal",
                "channel": "web",
                "occurred_at": DAY_AGO,
            },
            {
                "subject_id": existing["subject_id"],
                "purpose": "analytics",
                "choice": "denied",
                "occurred_at": datetime.now(UTC).isoformat(),  # after the consent above
                "channel": "web",
            },
        ],
    )
    result, err, report = await _import(db, keyring, catalog.tenant, path)
    assert (result.rows, result.valid, result.rejected, result.imported) == (4, 4, 0, 4)
    assert result.committed
    assert exit_status(result) == 0
    assert report == []
    assert "import: 4/4 rows" in err

    ann = await _state(catalog, "email", "ann.import@example.com")
    assert ann["ads"]["choice"] == "withdrawn"
    assert ann["analytics"]["effective"] is True
    assert ann["analytics"]["notice_version_id"] == v1
    assert ann["newsletter"]["choice"] == "denied"
    device = await _state(catalog, "device", "cookie-1")
    assert device["analytics"]["choice"] == "denied"
    assert await _counts(db) == (5, 2, 2)


# -- bad rows ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (_flat("ann.import@example.com", "telepathy"), "purpose"),
        (_flat("not-an-email-zz9", "ads"), "identifier_value"),
        (_flat("bad.time@example.com", "ads", occurred_at="2025-13-01T00:00:00Z"), "occurred_at"),
        (_flat("bad.time@example.com", "ads", occurred_at="2025-01-01T10:00:00"), "occurred_at"),
        (_flat("bad.time@example.com", "ads", occurred_at="2999-01-01T10:00:00Z"), "occurred_at"),
        (_flat("bad.time@example.com", "ads", occurred_at=""), "occurred_at"),
        (_flat("bad.time@example.com", "ads", choice="maybe"), "choice"),
        (_flat("bad.time@example.com", "ads", notice_version_id=str(uuid4())), "notice_version_id"),
        ({**_flat("x@example.com", "ads"), "identifier_value": None}, "identifier_value"),
        ({**_flat("x@example.com", "ads"), "shoe_size": "42"}, "shoe_size"),
        ({**_flat("x@example.com", "ads"), "subject_id": str(uuid4())}, "subject_id"),
        (
            {
                "identifier": {"type": "email", "value": "ann.import@example.com"},
                "choices": [
                    {"purpose": "ads", "choice": "granted"},
                    {"purpose": "ads", "choice": "denied"},
                ],
                "surface": "banner",
                "channel": "web",
                "method": "import",
                "occurred_at": DAY_AGO,
            },
            "choices",
        ),
        ('{"identifier_type": "email", "identifier_value": "ann.import@', "row"),
        ("[1, 2]", "row"),
    ],
)
async def test_one_bad_row_imports_nothing(
    catalog: Catalog, db: Database, keyring: KeyRing, tmp_path: Path, bad: Any, field: str
) -> None:
    rows = [_flat(f"good{i}@example.com", "ads") for i in range(5)]
    rows.insert(3, bad)
    path = _ndjson(tmp_path / "bad.ndjson", rows)
    result, err, report = await _import(db, keyring, catalog.tenant, path, batch_size=2)
    assert (result.rows, result.valid, result.rejected, result.imported) == (6, 5, 1, 0)
    assert not result.committed
    assert exit_status(result) == 1
    assert [(r["line"], r["field"]) for r in report] == [(4, field)], report
    assert f"line 4: {field}: " in err
    _assert_no_secrets(err, json.dumps(report))
    assert await _counts(db) == (0, 0, 0)


async def test_bad_rows_are_each_reported_by_the_cli_and_nothing_is_imported(
    run_cli: Any, catalog: Catalog, db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(
        CSV_HEADER
        + f"email,good1@example.com,ads,granted,{DAY_AGO},web,en\n"
        + f"email,ann.import@example.com,telepathy,granted,{DAY_AGO},web,en\n"
        + f"email,not-an-email-zz9,ads,granted,{DAY_AGO},web,en\n"
        + "email,bad.time@example.com,ads,granted,yesterday,web,en\n"
        + f"phone,+4915112345678,ads,granted,{DAY_AGO},web,en,extra\n"
        + f"email,good2@example.com,ads,granted,{DAY_AGO},web,en\n"
    )
    report = tmp_path / "report.ndjson"
    done = run_cli(str(path), "--tenant", catalog.tenant.id, "--report", str(report))
    assert done.returncode == 1, done.stderr
    found = [(r["line"], r["field"]) for r in _report(report)]
    assert found == [(3, "purpose"), (4, "identifier_value"), (5, "occurred_at"), (6, "row")]
    for line, field in found:
        assert f"line {line}: {field}: " in done.stderr
    assert "nothing imported: 4 of 6 rows rejected" in done.stdout
    _assert_no_secrets(done.stdout, done.stderr, report.read_text())
    assert await _counts(db) == (0, 0, 0)


async def test_skip_invalid_imports_the_good_rows(
    run_cli: Any, client: Any, catalog: Catalog, db: Database, tmp_path: Path
) -> None:
    rows: list[Any] = [_flat(f"good{i}@example.com", "ads") for i in range(6)]
    rows[1] = _flat("ann.import@example.com", "telepathy")  # found before the database
    rows[4] = {**_flat("x@example.com", "ads"), "identifier_type": None}  # shape
    # Found by the database checks, inside a batch: the batch is replayed row by row.
    rows.insert(3, _flat("ann.import@example.com", "ads", notice_version_id=str(uuid4())))
    path = _ndjson(tmp_path / "mixed.ndjson", rows)
    report = tmp_path / "report.ndjson"
    done = run_cli(
        str(path),
        "--tenant",
        catalog.tenant.id,
        "--skip-invalid",
        "--batch-size",
        "3",
        "--report",
        str(report),
    )
    assert done.returncode == 0, done.stderr
    assert [(r["line"], r["field"]) for r in _report(report)] == [
        (2, "purpose"),
        (4, "notice_version_id"),
        (6, "identifier_type"),
    ]
    assert "imported 4 rows, skipped 0 duplicates, rejected 3" in done.stdout
    assert await _counts(db) == (4, 4, 4)
    for i in (0, 2, 3, 5):
        assert (await _state(catalog, "email", f"good{i}@example.com"))["ads"]["effective"]
    assert await _unknown(client, catalog, "email", "ann.import@example.com")


async def test_skip_invalid_with_no_valid_row_fails(
    catalog: Catalog, db: Database, keyring: KeyRing, tmp_path: Path
) -> None:
    path = _ndjson(tmp_path / "bad.ndjson", [_flat("a@example.com", "telepathy")] * 3)
    result, _, report = await _import(db, keyring, catalog.tenant, path, skip_invalid=True)
    assert (result.rejected, result.imported, result.committed) == (3, 0, False)
    assert exit_status(result) == 1
    assert [r["line"] for r in report] == [1, 2, 3]


async def test_dry_run_writes_nothing(
    run_cli: Any, catalog: Catalog, db: Database, tmp_path: Path
) -> None:
    path = _ndjson(tmp_path / "good.ndjson", [_flat(f"g{i}@example.com", "ads") for i in range(3)])
    done = run_cli(str(path), "--tenant", catalog.tenant.id, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "dry run, nothing written" in done.stdout
    assert "3 valid (0 duplicates), 0 rejected; would import 3 rows" in done.stdout
    assert await _counts(db) == (0, 0, 0)

    bad = _ndjson(tmp_path / "bad.ndjson", [_flat("g@example.com", "ads"), "{}"])
    done = run_cli(str(bad), "--tenant", catalog.tenant.id, "--dry-run")
    assert done.returncode == 1, done.stderr
    assert "would import 0 rows" in done.stdout
    assert await _counts(db) == (0, 0, 0)


async def test_progress_and_throughput(
    catalog: Catalog, db: Database, keyring: KeyRing, tmp_path: Path
) -> None:
    path = tmp_path / "many.csv"
    with path.open("w") as f:
        f.write(CSV_HEADER)
        for i in range(1500):  # a second choice, a second later, for 500 of the customers
            at = (NOW - timedelta(days=1, seconds=i // 1000)).isoformat()
            f.write(f"customer_id,C-{i % 1000},ads,granted,{at},web,\n")
    result, err, _ = await _import(db, keyring, catalog.tenant, path, batch_size=100)
    assert (result.rows, result.imported) == (1500, 1500)
    assert result.rows_per_s > 0
    # Redrawn on a terminal, plain lines elsewhere: test_import_files.py.
    assert err.splitlines()[-1].startswith("import: 1,500/1,500 rows (100%)")
    assert await _counts(db) == (1500, 1000, 1000)


async def test_an_import_brings_its_own_rows_into_the_planners_statistics(
    catalog: Catalog, db: Database, keyring: KeyRing, tmp_path: Path
) -> None:
    """A long import into tables analysed while small: the import analyses what it wrote as it
    grows (migrations/0016), so the planner stops treating the tables as small and each row
    keeps its cost (bench/ledger_import.py measures the rate)."""
    async with db.system() as conn:
        await conn.execute("analyze consent_event, subject_identifier")
        before = await conn.fetchval(
            "select reltuples from pg_class where relname = 'consent_event'"
        )
    rows = ANALYZE_FIRST_AT + 300
    path = tmp_path / "big.csv"
    with path.open("w") as f:
        f.write(CSV_HEADER)
        for i in range(rows):
            f.write(f"customer_id,C-{i},ads,granted,{DAY_AGO},web,\n")
    result, _, _ = await _import(db, keyring, catalog.tenant, path, batch_size=100)
    assert result.imported == rows
    async with db.system() as conn:
        seen = await conn.fetch(
            "select relname, reltuples from pg_class"
            " where relname in ('consent_event', 'subject_identifier')"
        )
    assert {r["relname"] for r in seen} == {"consent_event", "subject_identifier"}
    for r in seen:
        assert r["reltuples"] >= max(before, 0) + ANALYZE_FIRST_AT, r["relname"]


# -- refusals ---------------------------------------------------------------------------------


async def test_bad_header_or_tenant_is_refused_before_anything(
    run_cli: Any, catalog: Catalog, db: Database, keyring: KeyRing, tmp_path: Path
) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("email,purpose,choice\nann@example.com,ads,granted\n")
    done = run_cli(str(path), "--tenant", catalog.tenant.id)
    assert done.returncode == 2
    assert "unknown column(s) email" in done.stderr
    assert "missing column(s) occurred_at, channel" in done.stderr

    good = _ndjson(tmp_path / "good.ndjson", [_flat("g@example.com", "ads")])
    with pytest.raises(ImportUsageError, match="no tenant"):
        await import_file(db, keyring, uuid4(), good, stderr=io.StringIO())
    done = run_cli(str(good), "--tenant", "acme")
    assert done.returncode == 2
    assert "not a tenant id" in done.stderr
    done = run_cli(str(tmp_path / "missing.csv"), "--tenant", catalog.tenant.id)
    assert done.returncode == 2
    assert await _counts(db) == (0, 0, 0)


# -- running the same import again ------------------------------------------------------------
async def test_the_same_file_again_imports_nothing_unless_asked(
    run_cli: Any, catalog: Catalog, db: Database, tmp_path: Path
) -> None:
    """A retried job or a second cron run must not record every consent twice."""
    path = _ndjson(tmp_path / "crm.ndjson", [_flat(f"r{i}@example.com", "ads") for i in range(3)])
    first = run_cli(str(path), "--tenant", catalog.tenant.id)
    assert first.returncode == 0, first.stderr
    assert await _counts(db) == (3, 3, 3)

    copy = tmp_path / "crm-copy.ndjson"  # same bytes under another name: the same file
    copy.write_bytes(path.read_bytes())
    for again in (path, copy):
        rerun = run_cli(str(again), "--tenant", catalog.tenant.id)
        assert rerun.returncode == 0, rerun.stderr
        assert rerun.stdout.startswith("nothing to do: this file was imported at ")
        assert "--again" in rerun.stdout
    dry = run_cli(str(path), "--tenant", catalog.tenant.id, "--dry-run")
    assert "nothing to do" in dry.stdout
    assert await _counts(db) == (3, 3, 3)

    changed = _ndjson(tmp_path / "crm2.ndjson", [_flat("r0@example.com", "ads", "withdrawn")])
    assert run_cli(str(changed), "--tenant", catalog.tenant.id).returncode == 0
    assert await _counts(db) == (4, 3, 3)

    # --again passes the file check; its rows are facts recorded already (test_import_dedupe.py)
    forced = run_cli(str(path), "--tenant", catalog.tenant.id, "--again")
    assert forced.returncode == 0, forced.stderr
    assert "imported 0 rows, skipped 3 duplicates" in forced.stdout
    assert await _counts(db) == (4, 3, 3)


async def test_a_failed_or_dry_run_import_is_not_remembered(
    catalog: Catalog, db: Database, keyring: KeyRing, tenant: Tenant, tmp_path: Path
) -> None:
    path = _ndjson(tmp_path / "x.ndjson", [_flat("f@example.com", "ads"), "{}"])
    failed, _, _ = await _import(db, keyring, tenant, path)
    assert (failed.committed, failed.already_imported_at) == (False, None)
    dry, _, _ = await _import(db, keyring, tenant, path, dry_run=True)
    assert dry.already_imported_at is None
    partial, _, _ = await _import(db, keyring, tenant, path, skip_invalid=True)
    assert (partial.committed, partial.imported) == (True, 1)
    again, _, _ = await _import(db, keyring, tenant, path, skip_invalid=True)
    assert again.already_imported_at is not None
    assert exit_status(again) == 0
    assert await _counts(db) == (1, 1, 1)


async def test_each_tenant_imports_its_own_copy(
    catalog: Catalog, db: Database, keyring: KeyRing, other_tenant: Tenant, tmp_path: Path
) -> None:
    path = _ndjson(tmp_path / "shared.ndjson", [_flat("t@example.com", "ads")])
    mine, _, _ = await _import(db, keyring, catalog.tenant, path)
    assert mine.committed
    theirs = Catalog(catalog.client, other_tenant)
    await theirs.post("/v1/purposes", {"key": "ads", "name": "Ads", "legal_basis": "consent"})
    other, _, _ = await _import(db, keyring, other_tenant, path)
    assert (other.committed, other.imported) == (True, 1)
