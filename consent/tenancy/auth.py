"""Authentication by API key and authorisation by scope, as Litestar guards.

`requires("write")` on a route authenticates the `Authorization: Bearer csk_…` key (401 when
missing, unknown, malformed or revoked), checks that it has the scope (403 otherwise; `admin`
holds every scope) and, for keys restricted to browser origins, that the request's `Origin`
is one of them. The principal is stored on the connection for the handler (`principal()`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Final
from uuid import UUID

import msgspec
import structlog
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from consent.db.database import Database
from consent.errors import Forbidden, Unauthorized
from consent.locales import Localized
from consent.tenancy.keys import parse_api_key, secret_matches
from consent.tenancy.repository import TenancyRepository

__all__ = [
    "BANNER_IDENTIFIER_TYPES",
    "BANNER_METHODS",
    "BANNER_SCOPES",
    "Principal",
    "authenticate",
    "bearer_key",
    "key_cache",
    "origin_allowed",
    "principal",
    "requires",
]

_SCOPE_KEY: Final = "consent.principal"
_UNAUTHORIZED: Final = Localized("api-key-required")
_ORIGIN_NOT_ALLOWED: Final = Localized("key-origin-not-allowed")
_BANNER_WRITES_ONLY: Final = Localized("banner-key-writes-only")
# What a banner key may record: a visitor's own choice in the browser, on the device (its
# secret is public: any client could otherwise grant consent for anyone's e-mail address).
BANNER_METHODS: Final = frozenset({"explicit", "gpc"})
BANNER_IDENTIFIER_TYPES: Final = frozenset({"device"})
_BANNER_RECORDS_VISITORS: Final = Localized("banner-key-visitor-only")


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: UUID
    key_id: str
    scopes: frozenset[str]
    property_id: UUID | None
    allowed_origins: tuple[str, ...]

    def has(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def property_for(self, named: UUID | None) -> UUID | None:
        """The property a consent or preference written with this key is recorded for.

        A key bound to a property records for that property alone: a body naming none gets
        it, a body naming another is refused (403). An unbound key records what the body names.
        """
        if self.property_id is None:
            return named
        if named is not None and named != self.property_id:
            raise Forbidden(Localized("key-own-property-only"))
        return self.property_id

    def check_banner_write(self, method: str, id_type: str | None) -> None:
        """403 unless a banner key (one with `allowed_origins`) records what a banner can
        prove: a visitor's own choice (`explicit`, or a `gpc` signal) about the device's
        identifier (`device`, or a subject id the banner was given). `agent` and `import`
        events and other identifiers (e-mail, phone, customer id) need a server key."""
        if not self.allowed_origins:
            return
        if method not in BANNER_METHODS or (
            id_type is not None and id_type not in BANNER_IDENTIFIER_TYPES
        ):
            raise Forbidden(_BANNER_RECORDS_VISITORS)


def origin_allowed(origin: str | None, allowed: Sequence[str]) -> bool:
    """Whether a request's `Origin` header is one of `allowed` (stored in lower case); an
    empty list allows every origin, a non-empty one refuses a request without the header."""
    return not allowed or (origin is not None and origin.lower() in allowed)


class _KeyCache:
    """Verified keys for a few seconds, so the hot path makes no lookup per request.

    Revoking a key through this process forgets it at once, and every other process listening
    for revocations (consent.tenancy.revocations) when the notification arrives; a process
    that is not listening may accept a revoked key for at most `ttl` seconds. A key read from the
    database before a revocation in this process and put here after it would be cached again:
    `put` takes the `generation` seen before the read and keeps nothing if a key was forgotten
    since.
    """

    def __init__(self, ttl: float = 5.0, max_size: int = 10_000) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self._entries: dict[str, tuple[float, bytes, Principal]] = {}
        self.generation = 0  # how many keys this process has forgotten

    def get(self, key_id: str, secret: str) -> Principal | None:
        entry = self._entries.get(key_id)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[2] if secret_matches(secret, entry[1]) else None

    def put(self, key_id: str, digest: bytes, who: Principal, generation: int) -> None:
        """Cache a key read while `self.generation` was `generation` (unless one was forgotten
        since: the read may predate its revocation)."""
        if generation != self.generation:
            return
        if len(self._entries) >= self.max_size:
            self._entries.clear()
        self._entries[key_id] = (time.monotonic() + self.ttl, digest, who)

    def forget(self, key_id: str) -> None:
        self.generation += 1
        self._entries.pop(key_id, None)

    def clear(self) -> None:
        """Forget every key (a revocation may have been missed: consent.tenancy.revocations)."""
        self.generation += 1
        self._entries.clear()


key_cache = _KeyCache()


def bearer_key(authorization: str | None) -> tuple[str, str] | None:
    """(key id, secret) of an `Authorization: Bearer csk_…` header, or None."""
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":  # auth schemes are case-insensitive (RFC 9110 §11.1)
        return None
    return parse_api_key(credentials.strip())


async def authenticate(db: Database, authorization: str | None) -> Principal:
    parsed = bearer_key(authorization)
    if parsed is None:
        raise Unauthorized(_UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
    key_id, secret = parsed
    cached = key_cache.get(key_id, secret)
    if cached is not None:
        return cached
    generation = key_cache.generation
    async with db.pool.acquire() as conn:
        row = await TenancyRepository(conn).find_api_key(key_id)
    if (
        row is None
        or row["revoked_at"] is not None
        or not secret_matches(secret, row["secret_sha256"])
    ):
        raise Unauthorized(_UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
    who = Principal(
        tenant_id=row["tenant_id"],
        key_id=key_id,
        scopes=frozenset(row["scopes"]),
        property_id=row["property_id"],
        allowed_origins=tuple(row["allowed_origins"]),
    )
    key_cache.put(key_id, bytes(row["secret_sha256"]), who, generation)
    return who


# What a key restricted to browser origins (a banner key, its secret in web pages) may do.
BANNER_SCOPES: Final = frozenset({"write"})


def requires(scope: str) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Any]:
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        db: Database = connection.app.state.db
        who = await authenticate(db, connection.headers.get("authorization"))
        if not who.has(scope):
            raise Forbidden(
                Localized("key-lacks-scope", scope=scope),
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )
        if who.allowed_origins and scope not in BANNER_SCOPES:
            # Also a key made before banner keys were limited to writing: its secret is public.
            raise Forbidden(
                _BANNER_WRITES_ONLY,
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )
        if not origin_allowed(connection.headers.get("origin"), who.allowed_origins):
            raise Forbidden(_ORIGIN_NOT_ALLOWED)
        connection.state[_SCOPE_KEY] = who
        structlog.contextvars.bind_contextvars(tenant_id=str(who.tenant_id))

    guard.__name__ = f"requires_{scope}"
    return guard


def principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The authenticated caller (set by a `requires(...)` guard on the route)."""
    who = connection.state.get(_SCOPE_KEY)
    if not isinstance(who, Principal):
        raise Unauthorized(_UNAUTHORIZED)
    return who
