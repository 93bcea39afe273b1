"""Every decision about a known subject is a use of their data: a leaf of the audit log."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from consent.audit.decision_leaves import state_digest
from consent.audit.integrator import Integrator
from consent.audit.leaf import DecisionMade, decode_leaf
from consent.db.database import Database
from tests.conftest import Catalog

pytestmark = pytest.mark.integration


async def test_decisions_are_leaves_in_the_subjects_activity(
    client: Any, catalog: Catalog, db: Database, integrator: Integrator
) -> None:
    written = await catalog.consent(
        identifier={"type": "device", "value": "decided-1"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )
    answers = []
    for action in ("web.analytics", "ads.retarget"):
        response = await client.post(
            "/v1/decisions",
            json={
                "subject": {"subject_id": written["subject_id"]},
                "action": action,
                "context": {"requester": "cdp-main"},
            },
            headers=catalog.h,
        )
        assert response.status_code in {200, 201}, response.text
        answers.append(response.json())
    await integrator.integrate_all()
    page = (
        await client.get(f"/v1/subjects/{written['subject_id']}/activity", headers=catalog.h)
    ).json()
    uses = [i for i in page["items"] if i["kind"] == "decision.made"]
    assert [u["action"] for u in uses] == ["ads.retarget", "web.analytics"]
    for use, answer in zip(uses, reversed(answers), strict=True):
        assert use["event_uuid"] == answer["decision_id"]
        assert use["allow"] == answer["allow"]
        assert use["reasons"] == answer["reasons"]
        assert use["requester"] == "cdp-main"
        assert use["policy_revision"] == answer["policy_revision"]
        assert isinstance(use["leaf_index"], int)
    async with db.system() as conn:
        stored = await conn.fetchrow(
            "select input from decision_log where id = $1::uuid", answers[0]["decision_id"]
        )
    assert stored is not None
    leaf = decode_leaf(base64.b64decode(uses[-1]["leaf"]))
    assert isinstance(leaf, DecisionMade)
    assert leaf.state_digest == state_digest(stored["input"])
