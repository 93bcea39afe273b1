"""The result cache: keyed by (revision, canonical input), a bounded LRU, never caches failures."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import pytest

from consent.decisions.engine import (
    CachedPolicyEngine,
    DecisionInput,
    DecisionResult,
    InProcessOpaEngine,
    PolicyBundle,
    PolicyUnavailable,
    canonical_input,
)
from consent.decisions.shape import gpc_days, needed_purposes, normalise

INPUT: dict[str, Any] = {
    "now_ns": 1_750_000_000_000_000_000,
    "action": "web.analytics",
    "subject": {
        "known": True,
        "jurisdiction": "DE",
        "age": 30,
        "parental_consent": False,
        "parental_consent_third_parties": False,
        "gpc": False,
        "limit_sensitive": False,
        "objections": [],
    },
    "purposes": {
        "analytics": {
            "legal_basis": "consent",
            "max_age_ns": None,
            "strictly_necessary": False,
            "material_version": 1,
        }
    },
    "consents": {"analytics": {"status": "granted", "recorded_at_ns": 1, "material_version": 1}},
}


class FakeEngine:
    def __init__(self) -> None:
        self.revision = "sha256:one"
        self.calls = 0
        self.fail = False

    @property
    def bundle(self) -> PolicyBundle:
        return PolicyBundle(
            root=Path(), modules={}, test_modules={}, data={}, revision=self.revision
        )

    async def evaluate(self, input_value: DecisionInput | Mapping[str, Any]) -> DecisionResult:
        self.calls += 1
        if self.fail:
            raise PolicyUnavailable("down")
        return DecisionResult(
            allow=True, reasons=("allowed.consent",), purposes={}, revision=self.revision
        )

    async def reload(self, bundle: PolicyBundle | None = None) -> str:
        self.revision = "sha256:two"
        return self.revision

    async def aclose(self) -> None:
        pass


def _at(now_ns: int) -> dict[str, Any]:
    return {**INPUT, "now_ns": now_ns}


@pytest.mark.unit
async def test_identical_inputs_hit() -> None:
    inner = FakeEngine()
    cache = CachedPolicyEngine(inner, maxsize=8)
    first = await cache.evaluate(INPUT)
    reordered = dict(reversed(list(INPUT.items())))
    assert await cache.evaluate(reordered) is first
    assert await cache.evaluate(_as_struct()) is first
    assert (inner.calls, cache.hits, cache.misses) == (1, 2, 1)


@pytest.mark.unit
async def test_a_lookup_by_canonical_input_finds_only_what_this_revision_decided() -> None:
    inner = FakeEngine()
    cache = CachedPolicyEngine(inner, maxsize=8)
    key = canonical_input(_as_struct())
    assert cache.cached(key) is None
    first = await cache.evaluate(INPUT)
    assert cache.cached(key) is first
    assert cache.cached(canonical_input(_at(2))) is None
    assert (inner.calls, cache.hits, cache.misses) == (1, 1, 1)
    await cache.reload()
    assert cache.cached(key) is None


def _as_struct() -> DecisionInput:
    return msgspec.convert(INPUT, DecisionInput)


@pytest.mark.unit
async def test_time_is_part_of_the_key() -> None:
    inner = FakeEngine()
    cache = CachedPolicyEngine(inner)
    await cache.evaluate(_at(1))
    await cache.evaluate(_at(2))
    assert inner.calls == 2


@pytest.mark.unit
async def test_lru_is_bounded() -> None:
    inner = FakeEngine()
    cache = CachedPolicyEngine(inner, maxsize=2)
    for now in (1, 2, 1, 3):  # 2 is least recently used when 3 arrives
        await cache.evaluate(_at(now))
    assert len(cache) == 2
    await cache.evaluate(_at(1))
    assert inner.calls == 3
    await cache.evaluate(_at(2))
    assert inner.calls == 4


@pytest.mark.unit
async def test_revision_is_part_of_the_key_and_reload_clears() -> None:
    inner = FakeEngine()
    cache = CachedPolicyEngine(inner)
    await cache.evaluate(INPUT)
    inner.revision = "sha256:other"
    assert (await cache.evaluate(INPUT)).revision == "sha256:other"
    assert inner.calls == 2
    assert await cache.reload() == "sha256:two"
    assert len(cache) == 0
    assert cache.revision == "sha256:two"


@pytest.mark.unit
async def test_failures_are_not_cached() -> None:
    inner = FakeEngine()
    cache = CachedPolicyEngine(inner)
    inner.fail = True
    with pytest.raises(PolicyUnavailable):
        await cache.evaluate(INPUT)
    inner.fail = False
    assert (await cache.evaluate(INPUT)).allow
    assert len(cache) == 1


@pytest.mark.unit
def test_canonical_input_sorts_keys_and_rejects_non_objects() -> None:
    assert canonical_input({"b": 1, "a": {"d": 2, "c": 3}}) == b'{"a":{"c":3,"d":2},"b":1}'
    assert canonical_input(_as_struct()) == canonical_input(INPUT)
    with pytest.raises(TypeError):
        canonical_input([1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        canonical_input({1: object()})  # type: ignore[dict-item]


@pytest.mark.policy
async def test_cache_in_front_of_real_opa(bundle: PolicyBundle) -> None:
    engine = InProcessOpaEngine(bundle, pool_size=1, check=False)
    cache = CachedPolicyEngine(engine, maxsize=16)
    try:
        miss = await cache.evaluate(INPUT)
        hit = await cache.evaluate(INPUT)
        assert hit is miss
        assert (miss.allow, miss.reasons, miss.revision) == (
            True,
            ("allowed.consent",),
            bundle.revision,
        )
    finally:
        await cache.aclose()


@pytest.mark.policy
async def test_the_separate_parental_consent_is_part_of_the_key(bundle: PolicyBundle) -> None:
    """A US child's sale with both parental consents allows, with only the general one denies:
    the cache, and the normalised key the service looks it up by, keep the two apart."""
    engine = InProcessOpaEngine(bundle, pool_size=1, check=False)
    cache = CachedPolicyEngine(engine, maxsize=16)
    child = {
        **INPUT,
        "action": "data.sell.partner",
        "subject": {**INPUT["subject"], "jurisdiction": "US-NY", "age": 12},
        "purposes": {"data_sale": INPUT["purposes"]["analytics"]},
        "consents": {"data_sale": INPUT["consents"]["analytics"]},
    }
    values = {
        third: msgspec.convert(
            {
                **child,
                "subject": {
                    **child["subject"],
                    "parental_consent": True,
                    "parental_consent_third_parties": third,
                },
            },
            DecisionInput,
        )
        for third in (True, False)
    }
    needed = needed_purposes(bundle, "data.sell.partner")
    keys = {
        third: canonical_input(normalise(value, needed, gpc=gpc_days(bundle)))
        for third, value in values.items()
    }
    assert keys[True] != keys[False]
    try:
        for _ in range(2):  # the second round is answered from the cache
            for third, value in values.items():
                got = await cache.evaluate(value)
                assert (got.allow, got.reasons) == (
                    (True, ("allowed.consent",)) if third else (False, ("denied.child",))
                )
        assert (cache.hits, cache.misses) == (2, 2)
    finally:
        await cache.aclose()
