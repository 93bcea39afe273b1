"""Period exports (`consent audit export --since --until`, `GET /v1/audit/export`) choose their
leaves by what the leaves commit to, and `consent audit verify` notices a moved record time.

A regulator asks for "every leaf of March". The export chose them by `audit_event.recorded_at`,
a column no hash covers: an operator with database access moved an event's `recorded_at` out of
the period, the export left the event out, and verify said nothing. The tampering runs as a
superuser with triggers disabled, as in test_tamper.py.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consent.audit.checkpoint import NoteSigner
from consent.audit.integrator import Integrator
from consent.audit.leaf import decode_leaf
from consent.audit.verify_db import verify_all
from consent.db.database import Database
from tests.integration.conftest import Catalog

pytestmark = pytest.mark.integration


def _id_time(event_id: str) -> datetime:
    """The time in a UUID v7: its first 48 bits, Unix milliseconds."""
    return datetime.fromtimestamp((uuid.UUID(event_id).int >> 80) / 1000, UTC)


async def _write(catalog: Catalog, integrator: Integrator, n: int) -> list[str]:
    events = [
        (
            await catalog.consent(
                identifier={"type": "device", "value": f"period-{i}"},
                choices=[{"purpose": "analytics", "choice": "granted"}],
            )
        )["event_id"]
        for i in range(n)
    ]
    await integrator.integrate_all()
    return events


async def _exported(client: Any, catalog: Catalog, since: datetime, until: datetime) -> set[str]:
    answer = await client.get(
        "/v1/audit/export",
        params={"since": since.isoformat(), "until": until.isoformat()},
        headers=catalog.h,
    )
    assert answer.status_code == 200, answer.text
    return {
        str(decode_leaf(base64.b64decode(e["leaf"])).event_uuid) for e in answer.json()["entries"]
    }


async def _move_recorded_at(db: Database, event_id: str, by: timedelta) -> None:
    async with db.system() as conn:
        await conn.execute("set local session_replication_role = replica")
        changed = await conn.execute(
            "update audit_event set recorded_at = recorded_at + $2 where event_uuid = $1",
            uuid.UUID(event_id),
            by,
        )
        assert changed == "UPDATE 1"


async def test_moving_an_events_record_time_does_not_take_it_out_of_a_period_export(
    client: Any, catalog: Catalog, db: Database, integrator: Integrator
) -> None:
    events = await _write(catalog, integrator, 3)
    since = _id_time(events[0]) - timedelta(seconds=1)
    until = _id_time(events[-1]) + timedelta(seconds=1)
    assert set(events) <= await _exported(client, catalog, since, until)
    await _move_recorded_at(db, events[1], timedelta(days=2))
    await _move_recorded_at(db, events[2], -timedelta(days=2))
    assert set(events) <= await _exported(client, catalog, since, until)
    later = await _exported(client, catalog, until + timedelta(days=1), until + timedelta(days=3))
    earlier = await _exported(client, catalog, since - timedelta(days=3), since)
    assert not set(events) & (later | earlier)


async def test_a_period_is_the_time_in_the_event_id_to_the_millisecond(
    client: Any, catalog: Catalog, integrator: Integrator
) -> None:
    """What a regulator can check from the leaves alone: `since` is in, `until` is out."""
    first, second = await _write(catalog, integrator, 2)
    at = _id_time(second)
    assert second in await _exported(client, catalog, at, at + timedelta(milliseconds=1))
    assert second not in await _exported(client, catalog, at - timedelta(seconds=1), at)
    # A bound inside the event's millisecond: the millisecond starts before `since`.
    inside = at + timedelta(microseconds=500)
    assert second not in await _exported(client, catalog, inside, at + timedelta(seconds=1))
    assert second in await _exported(client, catalog, at - timedelta(seconds=1), inside)
    # A bound without a time zone is local time, as the database took it before.
    naive = at.astimezone().replace(tzinfo=None)
    assert second in await _exported(client, catalog, naive, naive + timedelta(milliseconds=1))
    assert first not in await _exported(client, catalog, at, at + timedelta(milliseconds=1))


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        (-timedelta(days=1), "recorded before its event id was made"),
        (timedelta(days=2), "recorded long after its event id was made"),
    ],
)
async def test_verify_reports_a_record_time_moved_away_from_the_event_id(
    catalog: Catalog,
    db: Database,
    integrator: Integrator,
    signer: NoteSigner,
    by: timedelta,
    expected: str,
) -> None:
    """The activity view shows `recorded_at`; verify checks it against the time in the event
    id, which the leaf commits to (within the clock skew and write time it allows)."""
    events = await _write(catalog, integrator, 3)
    (report,) = await verify_all(db, signer.verifier, catalog.tenant.id)
    assert report.ok, report.problems
    await _move_recorded_at(db, events[1], by)
    async with db.system() as conn:
        index = await conn.fetchval(
            "select f.leaf_index from audit_leaf as f join audit_event as e using (event_id) "
            "where e.event_uuid = $1",
            uuid.UUID(events[1]),
        )
    (report,) = await verify_all(db, signer.verifier, catalog.tenant.id)
    assert f"first divergence: leaf {index}: {expected}" in report.problems, report.problems
