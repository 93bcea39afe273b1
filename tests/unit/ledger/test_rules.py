"""The merge rules as properties of the pure fold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent.consents.rules import ChoiceRecord, fold, merge

pytestmark = pytest.mark.unit

BASE = datetime(2026, 1, 1, tzinfo=UTC)

records = st.builds(
    ChoiceRecord,
    purpose=st.sampled_from(["ads", "analytics", "email"]),
    choice=st.sampled_from(["granted", "denied", "withdrawn"]),
    occurred_at=st.integers(0, 20).map(lambda d: BASE + timedelta(days=d)),
    seq=st.integers(0, 10_000),
    event_id=st.uuids().map(str),
)
histories = st.lists(records, max_size=30, unique_by=lambda r: r.seq)


@st.composite
def split_history(draw: st.DrawFn, parts: int) -> list[list[ChoiceRecord]]:
    """Disjoint histories: arrival numbers (`seq`) are unique across a whole database."""
    whole = draw(st.lists(records, max_size=45, unique_by=lambda r: r.seq))
    cuts = sorted(
        draw(st.lists(st.integers(0, len(whole)), min_size=parts - 1, max_size=parts - 1))
    )
    bounds = [0, *cuts, len(whole)]
    return [whole[bounds[i] : bounds[i + 1]] for i in range(parts)]


@given(histories, st.randoms())
def test_fold_does_not_depend_on_order(history: list[ChoiceRecord], rnd: object) -> None:
    shuffled = list(history)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert fold(history) == fold(shuffled)


@given(split_history(2))
def test_merge_is_commutative_and_idempotent(parts: list[list[ChoiceRecord]]) -> None:
    sa, sb = fold(parts[0]), fold(parts[1])
    assert merge(sa, sb) == merge(sb, sa)
    assert merge(merge(sa, sb), sb) == merge(sa, sb)
    assert merge(sa, sa) == sa


@given(split_history(3))
def test_merge_is_associative(parts: list[list[ChoiceRecord]]) -> None:
    sa, sb, sc = (fold(p) for p in parts)
    assert merge(merge(sa, sb), sc) == merge(sa, merge(sb, sc))


@given(split_history(2))
def test_merge_is_the_fold_of_the_union(parts: list[list[ChoiceRecord]]) -> None:
    a, b = parts
    assert merge(fold(a), fold(b)) == fold(a + b)


@given(histories, st.integers(1, 10))
def test_an_older_grant_never_undoes_a_withdrawal(history: list[ChoiceRecord], days: int) -> None:
    withdrawal = ChoiceRecord(
        purpose="ads",
        choice="withdrawn",
        occurred_at=BASE + timedelta(days=30),
        seq=20_000,
        event_id="w",
    )
    older_grant = ChoiceRecord(
        purpose="ads",
        choice="granted",
        occurred_at=BASE + timedelta(days=30 - days),
        seq=30_000,
        event_id="g",
    )
    state = fold([*history, withdrawal, older_grant])
    assert state["ads"].choice == "withdrawn"
