"""A revoked API key stops at once in every worker process and replica, not only in the one
that revoked it.

A revocation sends a PostgreSQL notification (`CHANNEL`, the key's public id) in its own
transaction; each process follows it (consent/db/listening.py) and forgets the key from its
key cache when the notification arrives (milliseconds after the commit). Each time a
connection starts listening, the whole key cache is forgotten (a notification may have been
missed meanwhile); while none listens, the cache's own 5-second lifetime bounds how long a
revoked key is accepted, as before.
"""

from __future__ import annotations

from typing import Final

from consent.db.listening import Listener
from consent.tenancy.auth import key_cache

__all__ = ["CHANNEL", "follow_revocations"]

CHANNEL: Final = "consent_api_key_revoked"


def follow_revocations(listener: Listener) -> None:
    """Make `listener` (before it starts) forget each revoked key from this process's cache."""
    listener.on(CHANNEL, key_cache.forget, lambda _again: key_cache.clear())
