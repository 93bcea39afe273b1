"""Event ids are UUID v7: their first 48 bits are the millisecond they were made in, which period
exports select by and `consent audit verify` checks `recorded_at` against."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from consent.ids import uuid7, uuid7_floor, uuid7_ms

# 1970 to 9999-12-31, the range a datetime can name.
_MS = st.integers(min_value=0, max_value=253_402_300_799_999)


@given(_MS)
def test_an_id_gives_back_the_millisecond_it_was_made_in(ms: int) -> None:
    made = uuid7(ms * 1_000_000 + 999_999)
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    assert uuid7_ms(made) == ms


@given(_MS, _MS)
def test_the_floor_of_a_millisecond_splits_ids_made_before_it_from_those_made_at_or_after(
    bound: int, made_ms: int
) -> None:
    made = uuid7(made_ms * 1_000_000)
    assert (made >= uuid7_floor(bound)) == (made_ms >= bound)


def test_ids_of_other_versions_carry_no_time() -> None:
    assert uuid7_ms(uuid.uuid4()) is None
    assert uuid7_ms(uuid.UUID(int=0)) is None


def test_a_floor_before_1970_is_the_lowest_id() -> None:
    assert uuid7_floor(-5) == uuid.UUID(int=0)
