"""What a key may record for, and which browser origins a list admits (pure)."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from consent.errors import Forbidden
from consent.tenancy.auth import Principal, _KeyCache, origin_allowed


def _key(property_id: UUID | None) -> Principal:
    return Principal(
        tenant_id=uuid4(),
        key_id="0123456789abcdef",
        scopes=frozenset({"write"}),
        property_id=property_id,
        allowed_origins=(),
    )


def test_an_unbound_key_records_what_is_named() -> None:
    named = uuid4()
    assert _key(None).property_for(named) == named
    assert _key(None).property_for(None) is None


def test_a_bound_key_records_its_property_and_refuses_another() -> None:
    shop = uuid4()
    assert _key(shop).property_for(None) == shop
    assert _key(shop).property_for(shop) == shop
    with pytest.raises(Forbidden):
        _key(shop).property_for(uuid4())


@pytest.mark.parametrize(
    ("origin", "allowed", "admitted"),
    [
        (None, [], True),
        ("https://any.example", [], True),
        ("https://shop.example", ["https://shop.example"], True),
        ("https://Shop.Example", ["https://shop.example"], True),
        ("https://evil.example", ["https://shop.example"], False),
        ("https://shop.example:8443", ["https://shop.example"], False),
        (None, ["https://shop.example"], False),
    ],
)
def test_origins(origin: str | None, allowed: list[str], admitted: bool) -> None:
    assert origin_allowed(origin, allowed) is admitted


def test_a_key_read_before_its_revocation_is_not_cached_after_it() -> None:
    """A request reads a key (not yet revoked), the revocation commits and forgets the key
    here, then the request caches what it read: the revoked key must not be served from the
    cache for the next seconds."""
    cache = _KeyCache()
    key = _key(None)
    digest = b"\x01" * 32
    read_at = cache.generation  # the request starts reading the key from the database
    cache.forget(key.key_id)  # meanwhile: the key is revoked through this process
    cache.put(key.key_id, digest, key, read_at)  # the request caches what it read
    assert cache.get(key.key_id, "any secret") is None
    assert key.key_id not in cache._entries
    # A read that no revocation overtook is cached as before.
    cache.put(key.key_id, digest, key, cache.generation)
    assert key.key_id in cache._entries
