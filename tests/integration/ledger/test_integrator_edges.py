"""What a demanding integrator (a shop's CRM and its call centre) sends that a happy path does
not: cursors from elsewhere or out of range, times outside any plausible calendar, a database
whose time zone is not UTC. Each answer is a precise 4xx (never a 500) or the same state the
decisions apply."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from consent.consents.importer import import_file
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from tests.conftest import SHOWN_SINCE
from tests.integration.ledger.conftest import Catalog

pytestmark = pytest.mark.integration

_BERLIN = "Europe/Berlin"


def _seq_cursor(n: int) -> str:
    """A cursor as the API used to make them: a sequence number in 8 bytes."""
    return base64.urlsafe_b64encode(n.to_bytes(8, "big")).decode().rstrip("=")


async def _subject_with_events(catalog: Catalog, device: str, n: int) -> str:
    first = await catalog.consent(
        identifier={"type": "device", "value": device},
        choices=[{"purpose": "ads", "choice": "granted"}],
    )
    for i in range(n - 1):
        choice = "withdrawn" if i % 2 == 0 else "granted"
        await catalog.consent(
            subject_id=first["subject_id"], choices=[{"purpose": "ads", "choice": choice}]
        )
    await catalog.post(
        "/v1/preferences",
        {
            "subject_id": first["subject_id"],
            "items": [{"kind": "topic", "key": "offers", "value": "subscribed"}],
            "surface": "portal",
            "channel": "web",
        },
    )
    await catalog.post(
        "/v1/preferences",
        {
            "subject_id": first["subject_id"],
            "items": [{"kind": "topic", "key": "offers", "value": "unsubscribed"}],
            "surface": "portal",
            "channel": "web",
        },
    )
    return str(first["subject_id"])


def _assert_cursor_refused(response: Any) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in response.json()["errors"]] == ["cursor"]


async def test_a_cursor_out_of_range_is_a_400_not_a_500(client: Any, catalog: Catalog) -> None:
    subject = await _subject_with_events(catalog, "d-range", 2)
    for path in (
        f"/v1/subjects/{subject}/consents/history",
        f"/v1/subjects/{subject}/preferences/history",
        "/v1/notices/main/versions",
    ):
        for n in (2**63, 2**64 - 1, 2**40):
            response = await client.get(path, params={"cursor": _seq_cursor(n)}, headers=catalog.h)
            _assert_cursor_refused(response)


async def test_a_version_number_out_of_range_is_a_400_not_a_500(
    client: Any, catalog: Catalog
) -> None:
    """No version can have such a number (versions are 1..2^31-1, as the document says)."""
    for version in (2**31, 99_999_999_999, 0):
        path = f"/v1/notices/main/versions/{version}/publish"
        response = await client.post(path, headers=catalog.h)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in response.json()["errors"]] == ["version"]


async def test_a_history_cursor_is_only_good_for_the_history_it_came_from(
    client: Any, catalog: Catalog
) -> None:
    """A call centre pages two customers at once and mixes up their cursors: the second
    customer's page must not continue from the first one's position (a page of someone else's
    list, silently), nor a preference history's cursor continue a consent history."""
    ann = await _subject_with_events(catalog, "d-ann", 3)
    bob = await _subject_with_events(catalog, "d-bob", 3)
    ann_history = f"/v1/subjects/{ann}/consents/history"
    bob_history = f"/v1/subjects/{bob}/consents/history"
    page = await client.get(ann_history, params={"limit": 1}, headers=catalog.h)
    ann_cursor = page.json()["next_cursor"]
    assert ann_cursor is not None
    _assert_cursor_refused(
        await client.get(bob_history, params={"cursor": ann_cursor}, headers=catalog.h)
    )
    prefs = await client.get(
        f"/v1/subjects/{ann}/preferences/history", params={"limit": 1}, headers=catalog.h
    )
    pref_cursor = prefs.json()["next_cursor"]
    assert pref_cursor is not None
    _assert_cursor_refused(
        await client.get(ann_history, params={"cursor": pref_cursor}, headers=catalog.h)
    )
    _assert_cursor_refused(
        await client.get(
            f"/v1/subjects/{bob}/preferences/history",
            params={"cursor": pref_cursor},
            headers=catalog.h,
        )
    )
    # A subject's data activity (the portal's list of uses) is bound the same way.
    activity = await client.get(
        f"/v1/subjects/{ann}/activity", params={"limit": 1}, headers=catalog.h
    )
    activity_cursor = activity.json()["next_cursor"]
    assert activity_cursor is not None
    for url, cursor in (
        (f"/v1/subjects/{bob}/activity", activity_cursor),
        (f"/v1/subjects/{ann}/activity", ann_cursor),
        (ann_history, activity_cursor),
        (f"/v1/subjects/{ann}/activity", "__________8"),  # beyond bigint: not a 500
    ):
        _assert_cursor_refused(await client.get(url, params={"cursor": cursor}, headers=catalog.h))
    more = await client.get(
        f"/v1/subjects/{ann}/activity", params={"cursor": activity_cursor}, headers=catalog.h
    )
    assert more.status_code == 200, more.text
    # ... while its own history continues with it, every event exactly once.
    seen = [e["event_id"] for e in page.json()["items"]]
    cursor = ann_cursor
    while cursor is not None:
        more = await client.get(
            ann_history, params={"limit": 1, "cursor": cursor}, headers=catalog.h
        )
        assert more.status_code == 200, more.text
        seen += [e["event_id"] for e in more.json()["items"]]
        cursor = more.json()["next_cursor"]
    everything = await client.get(ann_history, headers=catalog.h)
    assert seen == [e["event_id"] for e in everything.json()["items"]]
    assert len(set(seen)) == 3


_IMPLAUSIBLE_TIMES = (
    "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
)


@pytest.mark.parametrize("occurred_at", _IMPLAUSIBLE_TIMES)
async def test_a_time_before_1970_is_a_400_and_writes_nothing(
    client: Any, catalog: Catalog, db: Database, occurred_at: str
) -> None:
    consent = await client.post(
        "/v1/consents",
        json={
            "identifier": {"type": "device", "value": "d-old"},
            "choices": [{"purpose": "ads", "choice": "granted"}],
            "notice_version_id": catalog.versions[1],
            "surface": "call_centre",
            "channel": "phone",
            "occurred_at": occurred_at,
        },
        headers=catalog.h,
    )
    preference = await client.post(
        "/v1/preferences",
        json={
            "identifier": {"type": "device", "value": "d-old"},
            "items": [{"kind": "channel", "key": "email", "value": "opt_in"}],
            "surface": "call_centre",
            "channel": "phone",
            "occurred_at": occurred_at,
        },
        headers=catalog.h,
    )
    for response in (consent, preference):
        assert response.status_code == 400, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["occurred_at"]
    async with db.system() as conn:
        assert await conn.fetchval("select count(*) from consent_event") == 0
        assert await conn.fetchval("select count(*) from preference_event") == 0
        assert await conn.fetchval("select count(*) from subject") == 0


async def test_an_import_row_before_1970_is_reported_not_a_crash(
    db: Database, keyring: KeyRing, catalog: Catalog, tmp_path: Path
) -> None:
    path = tmp_path / "old.csv"
    path.write_text(
        "identifier_type,identifier_value,purpose,choice,occurred_at,channel\n"
        "device,d-1,ads,granted,2025-01-01T00:00:00Z,web\n"
        "device,d-2,ads,granted,0001-01-01T00:00:00+14:00,web\n"
    )
    report = io.BytesIO()
    result = await import_file(
        db, keyring, UUID(catalog.tenant.id), path, stderr=io.StringIO(), report=report
    )
    assert (result.rows, result.valid, result.rejected, result.committed) == (2, 1, 1, False)
    assert b'"line":3,"field":"occurred_at"' in report.getvalue()
    async with db.system() as conn:
        assert await conn.fetchval("select count(*) from consent_event") == 0


# -- expiry in a database whose time zone is not UTC -------------------------------------------


@pytest.fixture
async def berlin_database(db: Database) -> AsyncIterator[None]:
    """The test database set to a time zone with summer time, as a German shop's PostgreSQL
    often is (connections opened from now on use it); reset afterwards."""
    async with db.pool.acquire() as conn:
        name = await conn.fetchval("select current_database()")
        await conn.execute(f"alter database \"{name}\" set timezone = '{_BERLIN}'")
    yield
    async with db.pool.acquire() as conn:
        await conn.execute(f'alter database "{name}" reset timezone')
    await db.pool.expire_connections()  # none opened meanwhile keeps Berlin time for later tests


def _days_across_a_clock_change(now: datetime) -> int:
    """The fewest whole days back from `now` over which Berlin's UTC offset changed (a day of
    23 or 25 hours lies between): at most about 220."""
    zone = ZoneInfo(_BERLIN)
    offset = now.astimezone(zone).utcoffset()
    days = 1
    while (now - timedelta(days=days)).astimezone(zone).utcoffset() == offset:
        days += 1
    return days


async def test_expiry_is_the_same_instant_whatever_the_database_time_zone(
    berlin_database: None, client: Any, catalog: Catalog
) -> None:
    """A purpose's maximum age is counted in days of 24 hours, as decisions count it
    (`recorded_at_ns + max_age_ns`): in a database on Berlin time a day of 23 or 25 hours (a
    clock change) must not move the state's `expired` an hour away from what decisions say."""
    now = datetime.now(UTC)
    days = _days_across_a_clock_change(now)
    await catalog.post(
        "/v1/purposes",
        {
            "key": "email_marketing",
            "name": "Loyalty",
            "legal_basis": "consent",
            "max_age_days": days,
        },
    )
    await catalog.post(
        "/v1/purposes",
        {"key": "sms_marketing", "name": "Surveys", "legal_basis": "consent", "max_age_days": days},
    )
    await catalog.post(
        "/v1/notices", {"key": "club", "purposes": ["email_marketing", "sms_marketing"]}
    )
    draft = await catalog.post(
        "/v1/notices/club/versions",
        {"texts": {"de": {"title": "Club", "body": "Angebote"}}, "shown_since": SHOWN_SINCE},
    )
    version = await catalog.post(
        f"/v1/notices/club/versions/{draft['version']}/publish", None, status=200
    )
    age = timedelta(days=days)
    margin = timedelta(minutes=30)
    recorded = await catalog.consent(
        identifier={"type": "loyalty_card", "value": "4000 1234"},
        choices=[{"purpose": "email_marketing", "choice": "granted"}],
        notice_version_id=version["id"],
        occurred_at=(now - age + margin).isoformat(),  # expires in 30 minutes
    )
    await catalog.consent(
        subject_id=recorded["subject_id"],
        choices=[{"purpose": "sms_marketing", "choice": "granted"}],
        notice_version_id=version["id"],
        occurred_at=(now - age - margin).isoformat(),  # expired 30 minutes ago
    )
    response = await client.get(
        f"/v1/subjects/{recorded['subject_id']}/consents", headers=catalog.h
    )
    state = {c["purpose"]: c for c in response.json()["consents"]}
    assert (state["email_marketing"]["expired"], state["email_marketing"]["effective"]) == (
        False,
        True,
    )
    assert (state["sms_marketing"]["expired"], state["sms_marketing"]["effective"]) == (True, False)
    for action, allowed in (("email.marketing", True), ("sms.marketing", False)):
        decided = await catalog.post(
            "/v1/decisions",
            {
                "subject": {"subject_id": recorded["subject_id"]},
                "action": action,
                "context": {"requester": "crm", "jurisdiction": "DE"},
            },
            status=200,
        )
        assert decided["allow"] is allowed, decided


async def test_a_tcf_vendor_id_beyond_the_vendor_list_is_a_400(
    client: Any, catalog: Catalog
) -> None:
    """TCF vendor ids are 16-bit numbers; a larger one (a typo, a GVL id pasted twice) is the
    client's mistake, not a 500 from the database's integer column."""
    for vendor_id in (2**31, 65_536, 2**40):
        response = await client.post(
            "/v1/vendors",
            json={"name": f"Vendor {vendor_id}", "purposes": ["ads"], "tcf_vendor_id": vendor_id},
            headers=catalog.h,
        )
        assert response.status_code == 400, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["tcf_vendor_id"]
    accepted = await catalog.post(
        "/v1/vendors", {"name": "Largest", "purposes": ["ads"], "tcf_vendor_id": 65_535}
    )
    assert accepted["tcf_vendor_id"] == 65_535
    listed = await client.get("/v1/vendors", headers=catalog.h)
    assert [v["name"] for v in listed.json()["items"]] == ["Largest"]


async def test_a_grant_under_a_materially_superseded_version_is_recorded_and_stale(
    client: Any, catalog: Catalog
) -> None:
    """The call centre still reads version 1 after version 2 changed it materially: the choice
    is recorded with the proof of what was read, and does not count as consent; a withdrawal
    under the old text still counts; an editorial version 3 changes nothing of that."""
    await catalog.post(
        "/v1/purposes", {"key": "email_marketing", "name": "Offers", "legal_basis": "consent"}
    )
    await catalog.post("/v1/notices", {"key": "script", "purposes": ["email_marketing"]})
    versions: list[str] = []
    for kind in ("material", "material", "editorial"):
        draft = await catalog.post(
            "/v1/notices/script/versions",
            {"texts": {"en": {"title": "Offers", "body": f"Script ({kind})"}}, "change_kind": kind},
        )
        published = await catalog.post(
            f"/v1/notices/script/versions/{draft['version']}/publish", None, status=200
        )
        versions.append(published["id"])
    old = await catalog.consent(
        identifier={"type": "phone", "value": "+49 30 1234567"},
        choices=[{"purpose": "email_marketing", "choice": "granted"}],
        notice_version_id=versions[0],
        surface="call_centre",
        channel="phone",
        method="agent",
        agent_id="agent-7",
    )
    path = f"/v1/subjects/{old['subject_id']}/consents"
    state = (await client.get(path, headers=catalog.h)).json()["consents"][0]
    assert (state["choice"], state["stale"], state["effective"]) == ("granted", True, False)
    decided = await catalog.post(
        "/v1/decisions",
        {
            "subject": {"subject_id": old["subject_id"]},
            "action": "email.marketing",
            "context": {"requester": "esp", "jurisdiction": "DE"},
        },
        status=200,
    )
    assert (decided["allow"], decided["reasons"]) == (False, ["denied.stale"])
    for version, effective in ((versions[2], True), (versions[1], True)):
        await catalog.consent(
            subject_id=old["subject_id"],
            choices=[{"purpose": "email_marketing", "choice": "granted"}],
            notice_version_id=version,
        )
        state = (await client.get(path, headers=catalog.h)).json()["consents"][0]
        assert (state["stale"], state["effective"]) == (False, effective)
    await catalog.consent(
        subject_id=old["subject_id"],
        choices=[{"purpose": "email_marketing", "choice": "withdrawn"}],
        notice_version_id=versions[0],
    )
    state = (await client.get(path, headers=catalog.h)).json()["consents"][0]
    assert (state["choice"], state["effective"]) == ("withdrawn", False)


async def test_history_pages_stay_stable_while_new_events_arrive(
    client: Any, catalog: Catalog
) -> None:
    """A CRM pages a customer's history while the call centre and the web keep writing: every
    event there was when it started is listed exactly once, in order; the new ones come on a
    fresh first page, never in the middle of the old listing."""
    subject = await _subject_with_events(catalog, "d-busy", 7)
    path = f"/v1/subjects/{subject}/consents/history"
    before = [e["event_id"] for e in (await client.get(path, headers=catalog.h)).json()["items"]]
    seen: list[str] = []
    cursor: str | None = None
    arrived: list[str] = []
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(path, params=params, headers=catalog.h)).json()
        seen += [e["event_id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        new = await catalog.consent(  # an older choice, recorded now (an offline channel)
            subject_id=subject,
            choices=[{"purpose": "analytics", "choice": "granted"}],
            occurred_at=(datetime.now(UTC) - timedelta(days=3)).isoformat(),
        )
        arrived.append(new["event_id"])
    assert seen == before
    fresh = (await client.get(path, params={"limit": 200}, headers=catalog.h)).json()
    assert [e["event_id"] for e in fresh["items"]] == arrived[::-1] + before


async def test_the_service_talks_to_its_database_in_utc(
    berlin_database: None, database_dsn: str
) -> None:
    """Whatever the server's TimeZone, no statement of the service may depend on it."""
    fresh = await Database.connect(database_dsn, min_size=1, max_size=1)
    try:
        async with fresh.pool.acquire() as conn:
            assert await conn.fetchval("show timezone") == "UTC"
    finally:
        await fresh.close()
