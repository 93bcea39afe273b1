"""`consent import` records each fact once: a row identical to an earlier row of the file, or
to an event the subject already has (an overlapping export imported the day before: another
file, so the file-hash check does not catch it), is skipped and counted as a duplicate.

Identical means: the same subject (or one linked to it), the same `occurred_at`, the same
choices (in any order) and the same proof fields (notice version, language, surface, channel,
method, agent, property).
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from consent.consents.importer import ImportResult, exit_status, import_file, summary
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from tests.conftest import Tenant
from tests.integration.ledger.conftest import Catalog

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
DAY_AGO = (NOW - timedelta(days=1)).isoformat()
TWO_DAYS_AGO = (NOW - timedelta(days=2)).isoformat()


def _row(value: str, purpose: str = "ads", choice: str = "granted", **extra: str) -> dict[str, Any]:
    row = {
        "identifier_type": "email",
        "identifier_value": value,
        "purpose": purpose,
        "choice": choice,
        "occurred_at": DAY_AGO,
        "channel": "email",
    }
    return {**row, **extra}


def _ndjson(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


async def _import(
    db: Database, keyring: KeyRing, tenant: Tenant, path: Path, **options: Any
) -> tuple[ImportResult, list[dict[str, Any]]]:
    report = io.BytesIO()
    result = await import_file(
        db, keyring, UUID(tenant.id), path, stderr=io.StringIO(), report=report, **options
    )
    return result, [json.loads(line) for line in report.getvalue().splitlines()]


async def _counts(db: Database) -> tuple[int, int]:
    """Consent events, and consent leaves of the audit log."""
    async with db.system() as conn:
        return (
            await conn.fetchval("select count(*) from consent_event"),
            await conn.fetchval("select count(*) from audit_event where kind = 'consent.recorded'"),
        )


async def _history(client: Any, catalog: Catalog, value: str) -> list[dict[str, Any]]:
    found = await catalog.post(
        "/v1/subjects/lookup", {"identifier": {"type": "email", "value": value}}, status=200
    )
    answer = await client.get(
        f"/v1/subjects/{found['subject_id']}/consents/history", headers=catalog.h
    )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def test_identical_rows_of_one_file_are_recorded_once(
    client: Any, catalog: Catalog, db: Database, keyring: KeyRing, tenant: Tenant, tmp_path: Path
) -> None:
    path = tmp_path / "crm.csv"
    path.write_text(
        "identifier_type,identifier_value,purpose,choice,occurred_at,channel\n"
        f"email,ann@example.com,ads,granted,{DAY_AGO},email\n"
        f"email,bob@example.com,ads,granted,{DAY_AGO},email\n"
        f"email,ANN@example.com,ads,granted,{DAY_AGO},email\n"  # the same address, normalised
        f"email,ann@example.com,ads,granted,{DAY_AGO},email\n"
    )
    result, report = await _import(db, keyring, tenant, path)
    assert (result.rows, result.valid, result.rejected) == (4, 4, 0)
    assert (result.imported, result.duplicates, result.committed) == (2, 2, True)
    assert report == []
    assert exit_status(result) == 0
    assert "imported 2 rows, skipped 2 duplicates, rejected 0" in summary(result)
    assert await _counts(db) == (2, 2)
    assert len(await _history(client, catalog, "ann@example.com")) == 1


async def test_overlapping_daily_exports_do_not_duplicate_history(
    client: Any, catalog: Catalog, db: Database, keyring: KeyRing, tenant: Tenant, tmp_path: Path
) -> None:
    monday = _ndjson(
        tmp_path / "export-monday.ndjson",
        [_row("a@example.com"), _row("b@example.com"), _row("c@example.com", choice="denied")],
    )
    tuesday = _ndjson(
        tmp_path / "export-tuesday.ndjson",  # the last two rows again, and a new one
        [_row("b@example.com"), _row("c@example.com", choice="denied"), _row("d@example.com")],
    )
    first, _ = await _import(db, keyring, tenant, monday)
    assert (first.imported, first.duplicates) == (3, 0)
    second, _ = await _import(db, keyring, tenant, tuesday)
    assert (second.rows, second.imported, second.duplicates) == (3, 1, 2)
    assert second.committed
    assert await _counts(db) == (4, 4)
    history = await _history(client, catalog, "c@example.com")
    assert [(e["choices"], e["occurred_at"][:10]) for e in history] == [
        ([{"purpose": "ads", "choice": "denied"}], DAY_AGO[:10])
    ]
    # A whole file of facts already recorded imports nothing, and succeeds.
    again = _ndjson(tmp_path / "export-again.ndjson", [_row("d@example.com")])
    third, _ = await _import(db, keyring, tenant, again)
    assert (third.imported, third.duplicates, third.committed) == (0, 1, True)
    assert exit_status(third) == 0
    assert "imported 0 rows, skipped 1 duplicate, rejected 0" in summary(third)


async def test_a_row_that_differs_in_any_field_is_recorded(
    catalog: Catalog, db: Database, keyring: KeyRing, tenant: Tenant, tmp_path: Path
) -> None:
    """Each row differs from an earlier one in one thing only: none is a duplicate."""
    v1 = catalog.versions[1]
    base = _row("e@example.com")
    rows = [
        base,
        _row("f@example.com"),
        _row("e@example.com", purpose="analytics"),
        _row("e@example.com", choice="denied"),
        _row("e@example.com", occurred_at=TWO_DAYS_AGO),
        _row("e@example.com", channel="web"),
        _row("e@example.com", surface="portal"),
        _row("e@example.com", notice_version_id=v1, method="agent", agent_id="agent-7"),
        _row("e@example.com", notice_version_id=v1, method="agent", agent_id="agent-8"),
        _row("e@example.com", notice_version_id=v1),
        _row("e@example.com", notice_version_id=v1, language="de"),
        _row("e@example.com", notice_version_id=v1, language="en"),
    ]
    result, report = await _import(db, keyring, tenant, _ndjson(tmp_path / "x.ndjson", rows))
    assert report == []
    assert (result.imported, result.duplicates) == (len(rows), 0)
    assert await _counts(db) == (len(rows), len(rows))


async def test_the_same_choices_in_another_order_are_a_duplicate(
    catalog: Catalog, db: Database, keyring: KeyRing, tenant: Tenant, tmp_path: Path
) -> None:
    """An NDJSON line may be a `POST /v1/consents` body: its choices are a set."""

    def body(*choices: tuple[str, str]) -> dict[str, Any]:
        return {
            "identifier": {"type": "email", "value": "g@example.com"},
            "choices": [{"purpose": p, "choice": c} for p, c in choices],
            "surface": "import",
            "channel": "email",
            "method": "import",
            "occurred_at": DAY_AGO,
        }

    rows = [
        body(("ads", "granted"), ("analytics", "denied")),
        body(("analytics", "denied"), ("ads", "granted")),
        body(("ads", "granted")),  # a subset: another fact
        body(("ads", "granted"), ("analytics", "granted")),
    ]
    result, report = await _import(db, keyring, tenant, _ndjson(tmp_path / "y.ndjson", rows))
    assert report == []
    assert (result.imported, result.duplicates) == (3, 1)


async def test_a_choice_recorded_through_the_api_is_not_imported_again(
    catalog: Catalog, db: Database, keyring: KeyRing, tenant: Tenant, tmp_path: Path
) -> None:
    body: dict[str, Any] = {
        "identifier": {"type": "email", "value": "h@example.com"},
        "choices": [{"purpose": "ads", "choice": "granted"}],
        "notice_version_id": catalog.versions[1],
        "language": "en",
        "surface": "portal",
        "channel": "web",
        "occurred_at": DAY_AGO,
    }
    await catalog.consent(**body)
    flat = _row(
        "h@example.com",
        channel="web",
        surface="portal",
        method="explicit",
        notice_version_id=catalog.versions[1],
        language="en",
    )
    result, _ = await _import(db, keyring, tenant, _ndjson(tmp_path / "z.ndjson", [body, flat]))
    assert (result.imported, result.duplicates) == (0, 2)
    assert await _counts(db) == (1, 1)


async def test_a_fact_recorded_under_a_since_linked_identifier_is_a_duplicate(
    client: Any, catalog: Catalog, db: Database, keyring: KeyRing, tenant: Tenant, tmp_path: Path
) -> None:
    """Monday's export recorded the device's choice; the device then became a known customer
    (linked); Tuesday's export repeats Monday's row: it is the linked subject's fact already."""
    customer = await catalog.consent(  # the older subject: the device is merged into it
        identifier={"type": "email", "value": "known@example.com"},
        choices=[{"purpose": "newsletter", "choice": "granted"}],
    )
    device = {**_row("x"), "identifier_type": "device", "identifier_value": "dev-123"}
    first, _ = await _import(db, keyring, tenant, _ndjson(tmp_path / "mon.ndjson", [device]))
    assert first.imported == 1
    await catalog.post(
        "/v1/subjects/link",
        {
            "subjects": [
                {"identifier": {"type": "email", "value": "known@example.com"}},
                {"identifier": {"type": "device", "value": "dev-123"}},
            ]
        },
        status=200,
    )
    tuesday = _ndjson(tmp_path / "tue.ndjson", [device, _row("known@example.com", "analytics")])
    second, _ = await _import(db, keyring, tenant, tuesday)
    assert (second.imported, second.duplicates) == (1, 1)
    assert await _counts(db) == (3, 3)
    history = await _history(client, catalog, "known@example.com")
    # The API's choice and Tuesday's new row on the customer; Monday's row once, on the device.
    owners = sorted(e["subject_id"] == customer["subject_id"] for e in history)
    assert owners == [False, True, True]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 500])
async def test_duplicates_across_batches_and_around_a_rejected_row(
    catalog: Catalog,
    db: Database,
    keyring: KeyRing,
    tenant: Tenant,
    tmp_path: Path,
    batch_size: int,
) -> None:
    """Duplicates within a batch, across batches, and in a batch replayed row by row because
    the database refused one of its rows (a property that does not exist)."""
    rows = [
        _row("p@example.com"),
        _row("q@example.com"),
        _row("p@example.com"),
        _row("r@example.com", property_id="00000000-0000-4000-8000-000000000000"),
        _row("q@example.com"),
        _row("r@example.com", property_id="00000000-0000-4000-8000-000000000000"),
        _row("s@example.com"),
        _row("p@example.com"),
    ]
    path = _ndjson(tmp_path / "batches.ndjson", rows)
    result, report = await _import(
        db, keyring, tenant, path, batch_size=batch_size, skip_invalid=True
    )
    assert [r["line"] for r in report] == [4, 6]  # both rejected, neither a "duplicate"
    assert (result.rows, result.valid, result.rejected) == (8, 6, 2)
    assert (result.imported, result.duplicates) == (3, 3)
    assert await _counts(db) == (3, 3)


async def test_a_dry_run_counts_duplicates_and_writes_nothing(
    catalog: Catalog, db: Database, keyring: KeyRing, tenant: Tenant, tmp_path: Path
) -> None:
    rows = [_row("t@example.com"), _row("t@example.com"), _row("u@example.com")]
    path = _ndjson(tmp_path / "dry.ndjson", rows)
    result, _ = await _import(db, keyring, tenant, path, dry_run=True)
    assert (result.valid, result.duplicates, result.imported) == (3, 1, 0)
    assert "3 valid (1 duplicate), 0 rejected; would import 2 rows" in summary(result)
    assert await _counts(db) == (0, 0)


async def test_a_file_imported_again_on_purpose_adds_no_duplicates(
    catalog: Catalog, db: Database, keyring: KeyRing, tenant: Tenant, tmp_path: Path
) -> None:
    """`--again` passes the file-hash check; the rows it repeats are still duplicates. After
    an erasure the person's identifiers are gone, and the row is a new person's fact."""
    path = _ndjson(tmp_path / "same.ndjson", [_row("w@example.com"), _row("v@example.com")])
    assert (await _import(db, keyring, tenant, path))[0].imported == 2
    forced, _ = await _import(db, keyring, tenant, path, again=True)
    assert (forced.committed, forced.imported, forced.duplicates) == (True, 0, 2)
    assert await _counts(db) == (2, 2)
    await catalog.post(
        "/v1/subjects/erase", {"identifier": {"type": "email", "value": "w@example.com"}}, 200
    )
    after, _ = await _import(db, keyring, tenant, path, again=True)
    assert (after.imported, after.duplicates) == (1, 1)
    assert await _counts(db) == (3, 3)
