"""Batch and audience decisions equal single decisions for every subject (Hypothesis, over random
ledgers, actions and contexts), and the audience log holds each member's exact input."""

from __future__ import annotations

import json
import uuid
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent.db.database import Database
from consent.decisions.audience import member_input
from consent.decisions.engine import DecisionInput, default_policy_root
from tests.integration.decisions.conftest import PURPOSES, Ledger

pytestmark = [pytest.mark.integration, pytest.mark.policy]

ACTIONS = [
    *json.loads((default_policy_root() / "data" / "actions.json").read_text())["value"],
    "teleport.customer",
]
ALL_PURPOSES = [*PURPOSES, "essential"]
# Half-day offsets keep every consent clear of a maximum-age boundary (30 and 395 days).
DAYS = [0.5, 10.5, 29.5, 30.5, 394.5, 395.5, 1000.5]

contexts = st.fixed_dictionaries(
    {
        "jurisdiction": st.sampled_from([None, "DE", "FR", "GB", "US-CA", "US-UT", "US"]),
        "age": st.sampled_from([None, 10, 12, 14, 15, 17, 40]),
        "gpc": st.booleans(),
        "parental_consent": st.booleans(),
        "parental_consent_third_parties": st.booleans(),
        "limit_sensitive": st.booleans(),
    }
)
events = st.lists(
    st.tuples(
        st.dictionaries(
            st.sampled_from(ALL_PURPOSES),
            st.sampled_from(["granted", "denied", "withdrawn"]),
            min_size=1,
            max_size=4,
        ),
        st.sampled_from(DAYS),
        st.booleans(),  # publish a material notice version before this event
    ),
    max_size=3,
)
subjects = st.lists(st.tuples(st.booleans(), events), min_size=1, max_size=5)
asks = st.lists(
    st.tuples(st.integers(0, 4), st.sampled_from(ACTIONS), contexts, st.booleans()),
    min_size=1,
    max_size=12,
)
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def _audience_results(
    ledger: Ledger, items: list[tuple[str, str | None, str, dict[str, Any]]]
) -> dict[int, tuple[bool, tuple[str, ...], str]]:
    """Item index -> (allow, reasons, audience id), one audience run per action."""
    out: dict[int, tuple[bool, tuple[str, ...], str]] = {}
    by_action: dict[str, list[int]] = {}
    for i, (_, _, action, _) in enumerate(items):
        by_action.setdefault(action, []).append(i)
    for action, indexes in by_action.items():
        members = []
        for i in indexes:
            email, subject_id, _, context = items[i]
            ref = {"subject_id": subject_id} if subject_id else {"type": "email", "value": email}
            members.append({**ref, **context})
        lines = await ledger.audience(
            {"action": action, "context": {"requester": "prop", "age": 99}, "output": "all"},
            members,
        )
        *results, summary = lines
        assert len(results) == len(indexes)
        for i, line in zip(indexes, results, strict=True):
            out[i] = (line["allow"], tuple(line["reasons"]), summary["summary"]["audience_id"])
        assert summary["summary"]["total"] == len(indexes)
        assert summary["summary"]["allowed"] == sum(1 for r in results if r["allow"])
    return out


async def _make_subjects(
    ledger: Ledger, plan: list[tuple[bool, list[tuple[dict[str, str], float, bool]]]]
) -> tuple[list[str], list[str | None]]:
    run = uuid.uuid4().hex[:8]
    emails: list[str] = []
    ids: list[str | None] = []
    for n, (known, history) in enumerate(plan):
        email = f"s{n}-{run}@example.com"
        emails.append(email)
        subject_id = None
        if known:
            subject_id = await ledger.consent(
                email, {"personalization": "denied"}, occurred_days_ago=2000
            )
            for choices, days, publish in history:
                if publish:
                    await ledger.publish("material")
                await ledger.consent(email, choices, occurred_days_ago=days)
        ids.append(subject_id)
    return emails, ids


async def _single(
    ledger: Ledger, email: str, subject_id: str | None, action: str, context: dict[str, Any]
) -> dict[str, Any]:
    if subject_id is None:
        return await ledger.decide(email, action, **context)
    body: dict[str, Any] = await ledger.post(
        "/v1/decisions",
        {
            "subject": {"subject_id": subject_id},
            "action": action,
            "context": {"requester": "prop", **context},
        },
        status=200,
    )
    return body


@SETTINGS
@given(plan=subjects, questions=asks)
async def test_batch_and_audience_equal_single(
    ledger: Ledger,
    db: Database,
    plan: list[tuple[bool, list[tuple[dict[str, str], float, bool]]]],
    questions: list[tuple[int, str, dict[str, Any], bool]],
) -> None:
    emails, ids = await _make_subjects(ledger, plan)
    items = [
        (emails[who % len(emails)], ids[who % len(emails)] if by_id else None, action, context)
        for who, action, context, by_id in questions
    ]

    singles = [await _single(ledger, *item) for item in items]
    batch = await ledger.post(
        "/v1/decisions/batch",
        {
            "decisions": [
                {
                    "subject": {"subject_id": sid}
                    if sid
                    else {"identifier": {"type": "email", "value": e}},
                    "action": a,
                    "context": {"requester": "prop", **c},
                }
                for e, sid, a, c in items
            ]
        },
        status=200,
    )
    audience = await _audience_results(ledger, items)

    for i, (single, batched) in enumerate(zip(singles, batch["decisions"], strict=True)):
        expected = (single["allow"], tuple(single["reasons"]), single["purposes"])
        assert (batched["allow"], tuple(batched["reasons"]), batched["purposes"]) == expected
        assert audience[i][:2] == expected[:2], (items[i], single, audience[i])
        assert batched["subject_id"] == single["subject_id"]

    # The batch logs each decision's input as the single call does (the state of the purposes
    # its action needs, no more), but for its time.
    async with db.system() as conn:
        for single, batched in zip(singles, batch["decisions"], strict=True):
            one, many = [
                msgspec.convert(
                    await conn.fetchval(
                        "select input from decision_log where id = $1",
                        uuid.UUID(d["decision_id"]),
                    ),
                    DecisionInput,
                )
                for d in (single, batched)
            ]
            assert msgspec.structs.replace(many, now_ns=one.now_ns) == one

    # The audience log holds each member's exact input: the single call's, at the run's time.
    async with db.system() as conn:
        for i, single in enumerate(singles):
            if single["subject_id"] is None:
                continue
            logged = await conn.fetchval(
                "select input from decision_log where id = $1", uuid.UUID(single["decision_id"])
            )
            rows = await conn.fetch(
                "select m.subject_ids, m.purpose_keys, m.purpose_material, m.recorded_at_ns,"
                " m.consent_material, s.input as shape_input, r.now_ns"
                " from audience_member m join audience_shape s using (run_id, shape)"
                " join audience_run r on r.id = m.run_id where m.run_id = $1"
                " and $2 = any(m.subject_ids)",
                uuid.UUID(audience[i][2]),
                uuid.UUID(single["subject_id"]),
            )
            exact = msgspec.convert(logged, DecisionInput)
            subject = uuid.UUID(single["subject_id"])
            rebuilt = []
            for row in rows:  # the subject may be a member more than once (other contexts)
                k = len(row["purpose_keys"])
                shape = msgspec.convert(row["shape_input"], DecisionInput)
                for j, member in enumerate(row["subject_ids"]):
                    if member == subject:
                        value = member_input(
                            shape,
                            row["now_ns"],
                            row["purpose_keys"],
                            row["purpose_material"][j * k : (j + 1) * k],
                            row["recorded_at_ns"][j * k : (j + 1) * k],
                            row["consent_material"][j * k : (j + 1) * k],
                        )
                        assert value.now_ns == row["now_ns"]
                        rebuilt.append(msgspec.structs.replace(value, now_ns=exact.now_ns))
            assert exact in rebuilt, "an audience member's exact input is not in the log"
