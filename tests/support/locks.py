"""Seeing, from another session, that a statement waits for a lock: how the tests that drive
a race know the other side is blocked, without a fixed sleep."""

from __future__ import annotations

import asyncio
from typing import Any

from consent.db.database import Database

__all__ = ["waiting_for_a_lock"]


async def waiting_for_a_lock(
    db: Database, done: asyncio.Future[Any], locktype: str | None = "advisory"
) -> bool:
    """Whether a session of this database waits for a lock (of `locktype`; None: any), polled
    until one does or `done` is, whichever comes first."""
    async with db.system() as watcher:
        for _ in range(500):
            if done.done():
                return False
            if await watcher.fetchval(
                # pg_locks, not pg_stat_activity: the statistics views keep one snapshot per
                # transaction, so polling them would never see a wait begin.
                "select count(*) from pg_locks as l where not l.granted"
                " and ($1::text is null or l.locktype = $1::text)"
                " and (l.database is null or l.database ="
                " (select oid from pg_database where datname = current_database()))",
                locktype,
            ):
                return True
            await asyncio.sleep(0.01)
    return False
