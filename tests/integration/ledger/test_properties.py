"""On real PostgreSQL: state is the fold of history, and linking is commutative/idempotent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent.consents.rules import ChoiceRecord, fold
from consent.consents.schemas import ChoiceIn, ConsentCreate
from consent.consents.service import ConsentService
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.subjects.resolver import SubjectResolver
from consent.subjects.schemas import IdentifierIn, SubjectRef
from consent.tenancy.service import create_tenant_with_admin_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PURPOSES = ["ads", "analytics", "email"]
NOW = datetime.now(UTC).replace(microsecond=0)

events = st.lists(
    st.tuples(
        st.integers(0, 2),  # which person (identifier)
        st.sampled_from(PURPOSES),
        st.sampled_from(["granted", "denied", "withdrawn"]),
        st.integers(0, 5),  # days ago: ties are likely, so arrival order matters too
    ),
    min_size=1,
    max_size=12,
)
SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _ident(i: int) -> IdentifierIn:
    return IdentifierIn(type="device", value=f"device-{i}")


async def _new_tenant(db: Database) -> uuid.UUID:
    tenant, _ = await create_tenant_with_admin_key(db, "property tenant")
    async with db.system() as conn:
        for key in PURPOSES:
            await conn.execute(
                "insert into purpose (tenant_id, key, name, legal_basis) "
                "values ($1, $2, $2, 'consent')",
                tenant.id,
                key,
            )
    return tenant.id


async def _record(service: ConsentService, who: int, purpose: str, choice: str, days: int) -> None:
    await service.record(
        ConsentCreate(
            identifier=_ident(who),
            choices=[ChoiceIn(purpose=purpose, choice=choice)],  # type: ignore[arg-type]
            surface="import",
            channel="other",
            method="import",
            occurred_at=NOW - timedelta(days=days),
        )
    )


async def _state_and_history(
    db: Database, keyring: KeyRing, tenant_id: uuid.UUID, who: int
) -> tuple[dict[str, str], dict[str, str], int]:
    service = ConsentService(db, keyring, tenant_id)
    state = await service.state(SubjectRef(identifier=_ident(who)))
    history = await service.history(state.subject_id, None, 200)
    records = [
        ChoiceRecord(
            purpose=c.purpose,
            choice=c.choice,
            occurred_at=e.occurred_at,
            seq=-i,  # history is newest first: arrival order reversed
            event_id=str(e.event_id),
        )
        for i, e in enumerate(history.items)
        for c in e.choices
    ]
    folded = {p: r.event_id for p, r in fold(records).items()}
    stored = {c.purpose: str(c.event_id) for c in state.consents}
    return stored, folded, len(history.items)


@SETTINGS
@given(events)
async def test_state_is_the_fold_of_history(
    db: Database, keyring: KeyRing, plan: list[tuple[int, str, str, int]]
) -> None:
    tenant_id = await _new_tenant(db)
    service = ConsentService(db, keyring, tenant_id)
    for who, purpose, choice, days in plan:
        await _record(service, who, purpose, choice, days)
    for who in {p[0] for p in plan}:
        stored, folded, count = await _state_and_history(db, keyring, tenant_id, who)
        assert stored == folded
        assert count == sum(1 for p in plan if p[0] == who)


@SETTINGS
@given(events, st.booleans())
async def test_linking_is_commutative_idempotent_and_loses_nothing(
    db: Database, keyring: KeyRing, plan: list[tuple[int, str, str, int]], twice: bool
) -> None:
    outcomes = []
    for order in ([0, 1, 2], [2, 1, 0]):
        tenant_id = await _new_tenant(db)
        service = ConsentService(db, keyring, tenant_id)
        for who, purpose, choice, days in plan:
            await _record(service, who, purpose, choice, days)
        resolver = SubjectResolver(keyring)
        for _ in range(2 if twice else 1):
            async with db.tenant(tenant_id) as conn:
                await resolver.link(
                    conn, tenant_id, [SubjectRef(identifier=_ident(i)) for i in order]
                )
        stored, folded, count = await _state_and_history(db, keyring, tenant_id, order[0])
        assert stored == folded
        assert count == len(plan)
        # Compare by content (event ids differ between the two tenants).
        state = await service.state(SubjectRef(identifier=_ident(1)))
        outcomes.append(sorted((c.purpose, c.choice, c.occurred_at) for c in state.consents))
    assert outcomes[0] == outcomes[1]
