"""The ledger's rules as pure functions: state is a fold of history, linking is a merge.

Order of choices: an event is newer when it occurred later; ties break by arrival (`seq`).
Per purpose (or preference key) the newest explicit choice wins. Hence:
- a withdrawal is never undone by an older grant (an import of an old grant changes nothing);
- linking two subjects folds the union of their histories, so it is commutative, associative
  and idempotent in outcome, and nothing from either side is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from datetime import datetime
from typing import Literal, Protocol, TypeVar

import msgspec

__all__ = ["Choice", "ChoiceRecord", "PreferenceRecord", "fold", "latest_by", "merge", "newer"]

Choice = Literal["granted", "denied", "withdrawn"]


class Ordered(Protocol):
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def seq(self) -> int: ...


R = TypeVar("R", bound=Ordered)
K = TypeVar("K", bound=Hashable)


class ChoiceRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One purpose's choice within one event, with what orders it."""

    purpose: str
    choice: str
    occurred_at: datetime
    seq: int
    event_id: str


class PreferenceRecord(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    key: str
    value: str
    occurred_at: datetime
    seq: int
    event_id: str


def newer(a: Ordered, b: Ordered) -> bool:
    """True when `a` supersedes `b`."""
    return (a.occurred_at, a.seq) > (b.occurred_at, b.seq)


def latest_by(records: Iterable[R], key: Callable[[R], K]) -> dict[K, R]:
    """The newest record per key, from history in any order."""
    state: dict[K, R] = {}
    for record in records:
        k = key(record)
        current = state.get(k)
        if current is None or newer(record, current):
            state[k] = record
    return state


def fold(records: Iterable[ChoiceRecord]) -> dict[str, ChoiceRecord]:
    """Current consent state per purpose."""
    return latest_by(records, lambda r: r.purpose)


def merge(a: Mapping[str, ChoiceRecord], b: Mapping[str, ChoiceRecord]) -> dict[str, ChoiceRecord]:
    """State of two linked subjects: per purpose, the newer of the two."""
    return fold([*a.values(), *b.values()])
