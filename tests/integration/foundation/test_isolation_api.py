"""Every `/v1` read and write of one tenant, given an id that belongs to another tenant,
answers exactly as for an id that never existed: same status, problem type, title, detail
and field errors. A tenant cannot even learn that the other tenant's id exists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest

from tests.conftest import Catalog, Tenant

pytestmark = pytest.mark.integration

_CONTEXT = {"requester": "crm", "jurisdiction": "DE"}


def _answer(response: Any) -> tuple[int, Any]:
    """What a client can tell apart: the status and the problem, without per-request parts."""
    body = response.json()
    if response.status_code < 300:
        if "decisions" in body:  # a batch: each decision's verdict
            return 200, [(d["allow"], d["reasons"], d["subject_id"]) for d in body["decisions"]]
        return 200, (body["allow"], body["reasons"], body["subject_id"])
    return response.status_code, {
        k: body.get(k) for k in ("type", "title", "status", "detail", "errors")
    }


async def test_another_tenants_ids_are_answered_as_ids_that_never_existed(
    client: Any, catalog: Catalog, other_tenant: Tenant
) -> None:
    theirs = Catalog(client, other_tenant)
    await theirs.post("/v1/purposes", {"key": "analytics", "name": "A", "legal_basis": "consent"})
    await theirs.post("/v1/notices", {"key": "main", "purposes": ["analytics"]})
    their_version = await theirs.publish_version()
    their_property = (await theirs.post("/v1/properties", {"name": "web", "kind": "website"}))["id"]
    their_consent = await theirs.consent(
        identifier={"type": "email", "value": "bob@example.com"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )
    decided = await theirs.post(
        "/v1/decisions",
        {
            "subject": {"subject_id": their_consent["subject_id"]},
            "action": "analytics.measure",
            "context": _CONTEXT,
        },
        status=200,
    )
    their_key = (await client.get("/v1/api-keys", headers=other_tenant.headers)).json()["items"][0][
        "id"
    ]
    await theirs.post("/v1/identifier-types", {"key": "member_no"})

    h = catalog.h
    version = catalog.versions[1]
    write = {"surface": "banner", "channel": "web"}
    grant = [{"purpose": "analytics", "choice": "granted"}]

    def read(path: str) -> Callable[[str], Any]:
        return lambda s: client.get(f"/v1/subjects/{s}/{path}", headers=h)

    requests: list[tuple[str, Callable[[str], Any]]] = [
        ("subject", read(path))
        for path in ("consents", "consents/history", "preferences", "preferences/history")
    ]
    requests.append(("subject", read("activity")))
    requests += [
        ("subject", lambda s: client.delete(f"/v1/subjects/{s}", headers=h)),
        ("subject", lambda s: client.post("/v1/subjects/erase", json={"subject_id": s}, headers=h)),
        (
            "subject",
            lambda s: client.post("/v1/subjects/lookup", json={"subject_id": s}, headers=h),
        ),
        (
            "subject",
            lambda s: client.post(
                "/v1/subjects/link",
                json={
                    "subjects": [
                        {"subject_id": s},
                        {"identifier": {"type": "device", "value": "d"}},
                    ]
                },
                headers=h,
            ),
        ),
        (
            "subject",
            lambda s: client.post(
                "/v1/consents",
                json={"subject_id": s, "choices": grant, "notice_version_id": version, **write},
                headers=h,
            ),
        ),
        (
            "subject",
            lambda s: client.post(
                "/v1/preferences",
                json={
                    "subject_id": s,
                    "items": [{"kind": "channel", "key": "email", "value": "opt_in"}],
                    **write,
                },
                headers=h,
            ),
        ),
        (
            "subject",
            lambda s: client.post(
                "/v1/decisions",
                json={
                    "subject": {"subject_id": s},
                    "action": "analytics.measure",
                    "context": _CONTEXT,
                },
                headers=h,
            ),
        ),
        (
            "subject",
            lambda s: client.post(
                "/v1/decisions/batch",
                json={
                    "decisions": [
                        {
                            "subject": {"subject_id": s},
                            "action": "analytics.measure",
                            "context": _CONTEXT,
                        }
                    ]
                },
                headers=h,
            ),
        ),
        ("event", lambda e: client.get(f"/v1/audit/events/{e}", headers=h)),
        ("event", lambda e: client.get(f"/v1/audit/events/{e}/proof", headers=h)),
        ("decision", lambda d: client.get(f"/v1/decisions/{d}", headers=h)),
        ("decision", lambda d: client.get(f"/v1/decisions/{d}?replay=true", headers=h)),
        ("key", lambda k: client.delete(f"/v1/api-keys/{k}", headers=h)),
        (
            "version",
            lambda v: client.post(
                "/v1/consents",
                json={
                    "identifier": {"type": "device", "value": "d1"},
                    "choices": grant,
                    "notice_version_id": v,
                    **write,
                },
                headers=h,
            ),
        ),
        (
            "property",
            lambda p: client.post(
                "/v1/consents",
                json={
                    "identifier": {"type": "device", "value": "d2"},
                    "choices": grant,
                    "notice_version_id": version,
                    "property_id": p,
                    **write,
                },
                headers=h,
            ),
        ),
        (
            "property",
            lambda p: client.post(
                "/v1/api-keys",
                json={"name": "k", "scopes": ["write"], "property_id": p},
                headers=h,
            ),
        ),
        (
            "type",
            lambda t: client.post(
                "/v1/subjects/lookup", json={"identifier": {"type": t, "value": "7"}}, headers=h
            ),
        ),
        (
            "email",
            lambda e: client.post(
                "/v1/subjects/lookup",
                json={"identifier": {"type": "email", "value": e}},
                headers=h,
            ),
        ),
    ]
    theirs_by_kind = {
        "subject": their_consent["subject_id"],
        "event": their_consent["event_id"],
        "decision": decided["decision_id"],
        "key": their_key,
        "version": their_version,
        "property": their_property,
        "type": "member_no",
        "email": "bob@example.com",
    }
    for kind, send in requests:
        if kind == "type":
            never = "member_nx"
        elif kind == "email":
            never = "nobody@example.com"
        else:
            never = str(uuid4())
        theirs_named = theirs_by_kind[kind]
        # A problem may name what it was given (an unknown type's name): that part aside.
        expected = repr(_answer(await send(never))).replace(never, "<named>")
        got = repr(_answer(await send(theirs_named))).replace(theirs_named, "<named>")
        assert got == expected, kind
    # ...and the other tenant's data is as it was.
    found = await theirs.post(
        "/v1/subjects/lookup", {"subject_id": their_consent["subject_id"]}, status=200
    )
    assert [(c["purpose"], c["choice"]) for c in found["consents"]] == [("analytics", "granted")]
    listed = (await client.get("/v1/api-keys", headers=other_tenant.headers)).json()["items"]
    assert listed[0]["revoked_at"] is None
