"""The audit endpoints as a client uses them: answers that say what to do next."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from consent.audit.integrator import Integrator
from consent.audit.verify_offline import verify_inclusion_proof
from tests.integration.conftest import Catalog

pytestmark = pytest.mark.integration


async def _consent(catalog: Catalog, device: str) -> Any:
    return await catalog.consent(
        identifier={"type": "device", "value": device},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )


async def test_a_proof_against_a_checkpoint_older_than_the_event_is_a_client_error(
    client: Any, catalog: Catalog, integrator: Integrator
) -> None:
    """Asked against a checkpoint signed before the event was integrated, the answer was 409
    `audit-pending` "retry shortly": retrying can never help, the size must change."""
    await _consent(catalog, "api-1")
    await integrator.integrate_all()
    old_size = int((await client.get("/v1/audit/checkpoint", headers=catalog.h)).text.split()[1])
    written = await _consent(catalog, "api-2")
    await integrator.integrate_all()
    url = f"/v1/audit/events/{written['event_id']}/proof"
    stale = await client.get(url, params={"size": old_size}, headers=catalog.h)
    assert stale.status_code == 400, stale.text
    assert stale.headers["content-type"].startswith("application/problem+json")
    problem = stale.json()
    assert problem["type"] == "/problems/validation-error"
    assert [e["field"] for e in problem["errors"]] == ["size"]
    new_size = old_size + 1
    fresh = await client.get(url, params={"size": new_size}, headers=catalog.h)
    assert fresh.status_code == 200, fresh.text
    info = (await client.get(f"/v1/audit/events/{written['event_id']}", headers=catalog.h)).json()
    vkey = (await client.get("/.well-known/consent-audit-keys")).text.strip()
    leaf = base64.b64decode(info["leaf"])
    result = verify_inclusion_proof(fresh.text, leaf, vkey, origin=info["log"])
    assert result.ok, result.reason


async def test_a_log_without_a_checkpoint_says_so(client: Any, catalog: Catalog) -> None:
    """The catalogue set-up created the log; nothing is signed yet."""
    answer = await client.get("/v1/audit/checkpoint", headers=catalog.h)
    assert answer.status_code == 404
    assert answer.json()["detail"] == "The log has no signed checkpoint yet."


async def test_the_verify_page_speaks_the_browsers_language(client: Any) -> None:
    page = await client.get(
        "/audit/verify", headers={"Accept-Language": "fr-CH, fr;q=0.9, de;q=0.8, en;q=0.5"}
    )
    assert page.status_code == 200
    assert '<html lang="de">' in page.text
    assert "Einen Eintrag des Einwilligungsprotokolls prüfen" in page.text
    assert "Accept-Language" in page.headers["vary"]
    chosen = await client.get("/audit/verify?lang=en", headers={"Accept-Language": "de"})
    assert '<html lang="en">' in chosen.text
    unknown = await client.get("/audit/verify", headers={"Accept-Language": "fr, *;q=0.1"})
    assert '<html lang="en">' in unknown.text


async def test_a_large_export_comes_in_files_that_each_verify_alone(
    client: Any, catalog: Catalog, integrator: Integrator
) -> None:
    """Beyond 10,000 leaves the export said `truncated` and gave no way to the rest."""
    written = [await _consent(catalog, "api-export") for _ in range(5)]
    await integrator.integrate_all()
    params: dict[str, Any] = {"subject_id": written[0]["subject_id"]}
    whole = (await client.get("/v1/audit/export", params=params, headers=catalog.h)).json()
    assert len(whole["entries"]) == 5
    assert (whole["truncated"], whole["next_start"]) == (False, None)
    from consent.audit import merkle
    from consent.audit.checkpoint import VerifierKey, open_checkpoint

    pieces: list[dict[str, Any]] = []
    start: int | None = 0
    while start is not None:
        answer = await client.get(
            "/v1/audit/export", params={**params, "limit": 2, "start": start}, headers=catalog.h
        )
        assert answer.status_code == 200, answer.text
        file = answer.json()
        checkpoint, _ = open_checkpoint(
            file["checkpoint"],
            [VerifierKey.parse(file["vkey"])],
            origin=file["checkpoint"].split()[0],
        )
        for entry in file["entries"]:
            merkle.verify_inclusion(
                merkle.leaf_hash(base64.b64decode(entry["leaf"])),
                entry["leaf_index"],
                checkpoint.size,
                [base64.b64decode(h) for h in entry["inclusion_proof"]],
                checkpoint.root_hash,
            )
        assert len(file["entries"]) <= 2
        assert file["truncated"] is (file["next_start"] is not None)
        pieces.extend(file["entries"])
        start = file["next_start"]
    assert pieces == whole["entries"]
    too_many = await client.get(
        "/v1/audit/export", params={**params, "limit": 10_001}, headers=catalog.h
    )
    assert too_many.status_code == 400
    assert too_many.headers["content-type"].startswith("application/problem+json")


async def test_an_export_asked_for_a_subject_and_a_period_is_refused_not_half_answered(
    client: Any, catalog: Catalog, integrator: Integrator
) -> None:
    """A subject's export ignored `since`/`until`: a regulator asking for one subject's month
    got every month, and a period that ends before it starts gave an empty file."""
    written = await _consent(catalog, "api-period")
    await integrator.integrate_all()
    both = await client.get(
        "/v1/audit/export",
        params={
            "subject_id": written["subject_id"],
            "since": "2026-01-01T00:00:00Z",
            "until": "2026-02-01T00:00:00Z",
        },
        headers=catalog.h,
    )
    assert both.status_code == 400, both.text
    assert [e["field"] for e in both.json()["errors"]] == ["since"]
    backwards = await client.get(
        "/v1/audit/export",
        params={"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        headers=catalog.h,
    )
    assert backwards.status_code == 400, backwards.text
    assert backwards.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in backwards.json()["errors"]] == ["until"]


async def test_a_bad_consistency_range_names_the_wrong_parameter(
    client: Any, catalog: Catalog, integrator: Integrator
) -> None:
    """`to` beyond the tree was reported as a problem with `from`."""
    await _consent(catalog, "api-range")
    await integrator.integrate_all()
    size = int((await client.get("/v1/audit/checkpoint", headers=catalog.h)).text.split()[1])
    cases = (
        ({"from": 1, "to": size + 1}, "to"),
        ({"from": 3, "to": 2}, "from"),
        # below their bounds, refused by the framework: named as sent, not as the Python names
        ({"from": 0, "to": size}, "from"),
        ({"from": 1, "to": 0}, "to"),
    )
    for params, field in cases:
        answer = await client.get("/v1/audit/consistency", params=params, headers=catalog.h)
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in answer.json()["errors"]] == [field], params
    fine = await client.get(
        "/v1/audit/consistency", params={"from": 2, "to": size}, headers=catalog.h
    )
    assert fine.status_code == 200, fine.text


async def test_text_answers_name_their_charset_once(
    client: Any, catalog: Catalog, integrator: Integrator
) -> None:
    """`text/plain; charset=utf-8; charset=utf-8` was what the key and checkpoint answers said."""
    await _consent(catalog, "d-charset")
    await integrator.integrate_all()
    keys = await client.get("/.well-known/consent-audit-keys")
    checkpoint = await client.get("/v1/audit/checkpoint", headers=catalog.h)
    for answer in (keys, checkpoint):
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "text/plain; charset=utf-8"
