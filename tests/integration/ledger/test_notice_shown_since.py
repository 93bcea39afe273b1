"""A consent names the notice version it was given under, as proof of what the person saw: a
choice made before that version was first shown proves nothing and is refused, by the API and
by the bulk import alike. A notice re-created from before (a business moving here) says since
when its text was shown (`shown_since`), and its old consents are then accepted."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from consent.consents.importer import import_file
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from tests.integration.ledger.conftest import Catalog

pytestmark = pytest.mark.integration

TEXTS = {"en": {"title": "Newsletter", "body": "May we e-mail you offers?"}}


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


async def _version(catalog: Catalog, key: str, **body: Any) -> dict[str, Any]:
    """A new notice `key` asking for `newsletter`, its version 1 published."""
    await catalog.post("/v1/notices", {"key": key, "purposes": ["newsletter"]})
    draft = await catalog.post(f"/v1/notices/{key}/versions", {"texts": TEXTS, **body})
    published: dict[str, Any] = await catalog.post(
        f"/v1/notices/{key}/versions/1/publish", None, status=200
    )
    assert published["shown_since"] == draft["shown_since"]
    return published


def _consent(version_id: str, at: datetime, email: str = "ann@example.com") -> dict[str, Any]:
    return {
        "identifier": {"type": "email", "value": email},
        "choices": [{"purpose": "newsletter", "choice": "granted"}],
        "notice_version_id": version_id,
        "language": "en",
        "surface": "form",
        "channel": "web",
        "occurred_at": _iso(at),
    }


async def _events(db: Database) -> int:
    async with db.system() as conn:
        return int(await conn.fetchval("select count(*) from consent_event"))


async def test_a_choice_before_the_version_was_published_is_refused_and_nothing_written(
    client: Any, catalog: Catalog, db: Database
) -> None:
    version = await _version(catalog, "news")
    published = datetime.fromisoformat(version["published_at"])
    assert version["shown_since"] is None
    before = await _events(db)

    response = await client.post(
        "/v1/consents",
        json=_consent(version["id"], published - timedelta(hours=1)),
        headers={**catalog.h, "Accept-Language": "de"},
    )
    assert response.status_code == 400, response.text
    problem = response.json()
    since = published.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    assert [e["field"] for e in problem["errors"]] == ["occurred_at"]
    assert since in problem["errors"][0]["message"]
    assert "ersten Zeigen" in problem["errors"][0]["message"]
    assert await _events(db) == before

    # A visitor's clock a few minutes behind the server's is not a false proof.
    late_clock = await catalog.post(
        "/v1/consents", _consent(version["id"], published - timedelta(minutes=3))
    )
    assert late_clock["occurred_at"].startswith(_iso(published - timedelta(minutes=3))[:19])


async def test_a_version_shown_before_its_publication_here_takes_its_old_consents(
    client: Any, catalog: Catalog
) -> None:
    since = datetime(2019, 3, 1, 9, 30, tzinfo=UTC)
    version = await _version(catalog, "old-news", shown_since="2019-03-01T10:30:00+01:00")
    assert version["shown_since"] == "2019-03-01T09:30:00Z"

    kept = await catalog.post("/v1/consents", _consent(version["id"], since + timedelta(days=300)))
    assert kept["occurred_at"].startswith("2019-12-26T09:30:00")
    response = await client.post(
        "/v1/consents",
        json=_consent(version["id"], since - timedelta(days=1), "bob@example.com"),
        headers=catalog.h,
    )
    assert response.status_code == 400, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == "occurred_at"
    assert "2019-03-01T09:30:00Z" in error["message"]


@pytest.mark.parametrize(
    ("shown_since", "says"),
    [
        ("2999-01-01T00:00:00Z", "is in the future"),
        ("2019-03-01T10:30:00", "must include a time zone"),
        ("1969-12-31T23:59:59Z", "is before 1970-01-01T00:00:00Z"),
    ],
)
async def test_a_first_showing_that_is_no_time_in_the_past_is_refused(
    client: Any, catalog: Catalog, shown_since: str, says: str
) -> None:
    await catalog.post("/v1/notices", {"key": "news", "purposes": ["newsletter"]})
    for request in (
        client.post(
            "/v1/notices/news/versions",
            json={"texts": TEXTS, "shown_since": shown_since},
            headers=catalog.h,
        ),
        client.put(
            "/v1/notices/news/versions/1",
            json={"texts": TEXTS, "shown_since": shown_since},
            headers=catalog.h,
        ),
    ):
        response = await request
        if response.status_code == 404:  # the PUT, when the POST refused to create the draft
            continue
        assert response.status_code == 400, response.text
        assert response.json()["errors"] == [{"field": "shown_since", "message": says}]
    listed = await client.get("/v1/notices/news/versions", headers=catalog.h)
    assert listed.json()["items"] == []


async def test_a_draft_changes_its_first_showing_a_published_version_does_not(
    client: Any, catalog: Catalog
) -> None:
    await catalog.post("/v1/notices", {"key": "news", "purposes": ["newsletter"]})
    await catalog.post("/v1/notices/news/versions", {"texts": TEXTS})
    changed = await client.put(
        "/v1/notices/news/versions/1",
        json={"texts": TEXTS, "shown_since": "2020-05-01T00:00:00Z"},
        headers=catalog.h,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["shown_since"] == "2020-05-01T00:00:00Z"
    await catalog.post("/v1/notices/news/versions/1/publish", None, status=200)
    refused = await client.put(
        "/v1/notices/news/versions/1",
        json={"texts": TEXTS, "shown_since": "2010-05-01T00:00:00Z"},
        headers=catalog.h,
    )
    assert refused.status_code == 409, refused.text
    listed = await client.get("/v1/notices/news/versions", headers=catalog.h)
    assert [v["shown_since"] for v in listed.json()["items"]] == ["2020-05-01T00:00:00Z"]


async def test_the_import_refuses_the_rows_from_before_the_first_showing(
    catalog: Catalog, db: Database, keyring: KeyRing, tmp_path: Path
) -> None:
    """The same rule for a file: the row is reported by line and field, nothing imported."""
    version = await _version(catalog, "news", shown_since="2021-01-01T00:00:00Z")
    rows = [
        {**_consent(version["id"], datetime(2022, 1, 1, tzinfo=UTC), f"p{i}@example.com")}
        for i in range(3)
    ]
    rows[1]["occurred_at"] = "2020-06-01T00:00:00Z"
    path = tmp_path / "old.ndjson"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = io.BytesIO()
    before = await _events(db)

    result = await import_file(
        db, keyring, UUID(catalog.tenant.id), path, stderr=io.StringIO(), report=report
    )
    (line,) = [json.loads(x) for x in report.getvalue().splitlines()]
    assert (line["line"], line["field"]) == (2, "occurred_at")
    assert "2021-01-01T00:00:00Z" in line["reason"]
    assert (result.rejected, result.imported, result.committed) == (1, 0, False)
    assert await _events(db) == before

    rows[1]["occurred_at"] = "2021-06-01T00:00:00Z"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = await import_file(db, keyring, UUID(catalog.tenant.id), path, stderr=io.StringIO())
    assert (result.rejected, result.imported, result.committed) == (0, 3, True)
