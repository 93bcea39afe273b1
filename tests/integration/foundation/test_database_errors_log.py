"""An unexpected database error is a 500 whose log line says where and what kind (SQLSTATE,
table, constraint, stack), never PostgreSQL's message, whose DETAIL can quote the request's
values (personal data): PostgreSQL leaves them out for a table under row-level security, as
here, but the log no longer depends on that."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from consent.db.database import Database
from tests.conftest import Tenant

pytestmark = pytest.mark.integration

QUOTED = "shop-of-ann-example-4711"


async def test_a_database_error_logs_its_kind_not_the_values_it_quotes(
    client: Any, tenant: Tenant, db: Database, service_log: io.BytesIO
) -> None:
    # A constraint the code does not expect (as a DBA might add one): PostgreSQL refuses the
    # row and quotes all of it.
    async with db.system() as conn:
        await conn.execute(
            f"alter table property add constraint zz_test_no_such_name check (name <> '{QUOTED}')"
        )
    try:
        answer = await client.post(
            "/v1/properties", json={"name": QUOTED, "kind": "website"}, headers=tenant.headers
        )
    finally:
        async with db.system() as conn:
            await conn.execute("alter table property drop constraint zz_test_no_such_name")
    assert answer.status_code == 500, answer.text
    assert answer.json()["type"] == "/problems/internal-error"
    assert QUOTED not in answer.text
    text = service_log.getvalue().decode()
    assert QUOTED not in text
    failed = [
        line for line in map(json.loads, text.splitlines()) if line.get("event") == "request.failed"
    ]
    assert len(failed) == 1, text
    assert failed[0]["error"] == "CheckViolationError"
    assert failed[0]["sqlstate"] == "23514"
    assert failed[0]["table"] == "property"
    assert failed[0]["constraint"] == "zz_test_no_such_name"
    assert "tenancy" in failed[0]["stack"]  # where it failed, for whoever debugs it
