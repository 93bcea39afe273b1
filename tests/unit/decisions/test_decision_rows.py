"""The decision rows the log writer sends are exactly the columns insert_decisions reads."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

from consent.decisions.engine import DecisionInput, SubjectState
from consent.decisions.logwriter import DecisionRecord, decision_rows

SQL = Path(__file__).resolve().parents[3] / "consent" / "decisions" / "queries.sql"


def _columns_read() -> set[str]:
    """The columns of `json_to_recordset($1::json) as u (...)` in insert_decisions."""
    text = SQL.read_text().split("-- name: insert_decisions", 1)[1].split("-- name:", 1)[0]
    found = re.search(r"json_to_recordset\(\$1::json\)\s+as u \((.*?)\)\n", text, re.DOTALL)
    assert found is not None
    return {part.split()[0] for part in found.group(1).split(",")}


def test_the_rows_carry_what_the_sql_reads_and_nothing_else() -> None:
    record = DecisionRecord(
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        decided_at=datetime(2026, 1, 2, tzinfo=UTC),
        subject_id=uuid.uuid4(),
        id_type=None,
        lookup_hmac=None,
        requester="esp",
        api_key_id="key",
        request_id=None,
        kind="single",
        batch_id=None,
        action="email.marketing",
        allow=False,
        reasons=("denied.no_consent",),
        purposes={"email_marketing": "denied.no_consent"},
        policy_revision="sha256:0",
        input=DecisionInput(
            now_ns=1,
            action="email.marketing",
            subject=SubjectState(known=True),
            purposes={},
            consents={},
        ),
        subject_token=b"\\x01" * 32,
    )
    (row,) = json.loads(decision_rows([record]))
    assert set(row) == _columns_read()  # no subject_token: its leaf alone uses it
    assert row["reasons"] == ["denied.no_consent"]
    assert row["input"]["now_ns"] == 1
