"""`consent import` reports what is wrong with a row without the identifiers it holds.

A file whose identifier columns are swapped puts the identifier where its type belongs (or an
id where a purpose belongs): a lowercase device or customer id is a well-formed type and
purpose key, and the report used to quote it (`unknown identifier type 'kd4711a'`) on stderr,
into cron logs and into the --report file. A rejection names the accepted values instead. And a
short identifier value (a customer id `1`) is taken out of the report where a message would
quote it, not out of every word and path (`choices[[identifier]].purpose`).
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from consent.consents.importer import ImportResult, import_file
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from tests.integration.ledger.conftest import Catalog

pytestmark = pytest.mark.integration

DAY_AGO = (datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)).isoformat()


async def _import(
    db: Database, keyring: KeyRing, catalog: Catalog, path: Path
) -> tuple[ImportResult, str, list[dict[str, Any]]]:
    err = io.StringIO()
    report = io.BytesIO()
    result = await import_file(
        db, keyring, UUID(catalog.tenant.id), path, stderr=err, report=report
    )
    return result, err.getvalue(), [json.loads(x) for x in report.getvalue().splitlines()]


async def test_an_identifier_in_the_type_column_is_not_printed(
    catalog: Catalog, db: Database, keyring: KeyRing, tmp_path: Path
) -> None:
    await catalog.post("/v1/identifier-types", {"key": "member_no", "description": "club"})
    secret = "kd4711a"  # the customer's id, where its type belongs
    path = tmp_path / "swapped.csv"
    path.write_text(
        "identifier_value,identifier_type,purpose,choice,occurred_at,channel\n"
        f"customer_id,{secret},ads,granted,{DAY_AGO},store\n"
    )
    result, err, report = await _import(db, keyring, catalog, path)
    assert [(r["line"], r["field"]) for r in report] == [(2, "identifier_type")]
    assert secret not in err
    assert secret not in json.dumps(report)
    # What is accepted instead: the built-in types and the tenant's own.
    assert "customer_id, device, email, loyalty_card, member_no, phone" in report[0]["reason"]
    assert not result.committed


async def test_an_identifier_in_the_purpose_column_is_not_printed(
    catalog: Catalog, db: Database, keyring: KeyRing, tmp_path: Path
) -> None:
    secret = "a3f9c0d2e1"  # a cookie id, where the purpose belongs
    row = {
        "identifier_type": "customer_id",
        "identifier_value": "C-1",
        "purpose": secret,
        "choice": "granted",
        "occurred_at": DAY_AGO,
        "channel": "web",
    }
    path = tmp_path / "swapped.ndjson"
    path.write_text(json.dumps(row) + "\n")
    result, err, report = await _import(db, keyring, catalog, path)
    assert [(r["line"], r["field"]) for r in report] == [(1, "purpose")]
    assert secret not in err
    assert secret not in json.dumps(report)
    assert "ads" in report[0]["reason"]  # the tenant's purposes, by key
    assert not result.committed


async def test_a_short_identifier_value_does_not_garble_the_report(
    catalog: Catalog, db: Database, keyring: KeyRing, tmp_path: Path
) -> None:
    body = {
        "identifier": {"type": "customer_id", "value": "1"},
        "choices": [
            {"purpose": "ads", "choice": "granted"},
            {"purpose": "analytics", "choice": "maybe"},
        ],
        "surface": "import",
        "channel": "store",
        "method": "import",
        "occurred_at": DAY_AGO,
    }
    path = tmp_path / "short.ndjson"
    path.write_text(json.dumps(body) + "\n")
    _, err, report = await _import(db, keyring, catalog, path)
    assert [r["field"] for r in report] == ["choices[1].choice"]
    assert "[identifier]" not in err
    assert "line 1: choices[1].choice: not one of granted, denied, withdrawn" in err
