"""A group runner (`Grouped`: group commit of the decision log, group reads of the ledger)
holds the connections its groups ran on, so that the next group needs no pool round trip; a
connection no group used for `idle_release` seconds goes back to the pool, so that a burst of
decisions does not leave consent writes and the portal a smaller pool for good."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from consent.db.database import Conn, Database
from consent.db.grouped import Grouped

pytestmark = pytest.mark.integration


class BackendPids(Grouped[int, int]):
    """Each item gets the backend pid of the connection its group ran on."""

    async def process(self, conn: Conn, group: Sequence[tuple[int, asyncio.Future[int]]]) -> None:
        pid = await conn.fetchval("select pg_backend_pid() from pg_sleep(0.05)")
        for _, future in group:
            if not future.done():
                future.set_result(int(pid))


def in_use(db: Database) -> int:
    """Connections acquired from the pool (by anyone)."""
    pool: Any = db.pool
    return int(pool.get_size() - pool.get_idle_size())


async def burst(runner: BackendPids, groups: int) -> set[int]:
    """`groups` groups at once: each request arrives while the earlier groups still run."""
    tasks = []
    for i in range(groups):
        tasks.append(asyncio.create_task(runner.submit(i)))
        await asyncio.sleep(0.005)
    return set(await asyncio.gather(*tasks))


async def test_connections_held_after_a_burst_go_back_to_the_pool_once_idle(
    db: Database,
) -> None:
    runner = BackendPids(db, name="test", concurrent=4, idle_release=0.3)
    runner.start()
    try:
        before = in_use(db)
        pids = await burst(runner, 4)
        assert len(pids) == 4  # four groups ran at once, each on its own connection
        assert runner.held == 4
        assert in_use(db) == before + 4
        await asyncio.sleep(0.6)
        assert runner.held == 0
        assert in_use(db) == before
        # The runner still works, on a connection from the pool.
        assert await runner.submit(1) > 0
    finally:
        await runner.aclose()


async def test_a_connection_in_steady_use_is_kept_not_churned(db: Database) -> None:
    runner = BackendPids(db, name="test", concurrent=4, idle_release=0.3)
    runner.start()
    try:
        pids = set()
        for i in range(8):  # one group every ~0.15 s: always within the idle window
            pids.add(await runner.submit(i))
            await asyncio.sleep(0.1)
        assert len(pids) == 1
        assert runner.held == 1
    finally:
        await runner.aclose()


async def test_only_the_connections_idle_long_enough_are_released(db: Database) -> None:
    runner = BackendPids(db, name="test", concurrent=4, idle_release=0.4)
    runner.start()
    try:
        before = in_use(db)
        await burst(runner, 3)
        assert runner.held == 3
        # Keep one connection busy (the most recently used is taken first); the others age out.
        for i in range(5):
            await asyncio.sleep(0.15)
            await runner.submit(i)
        assert runner.held == 1
        assert in_use(db) == before + 1
    finally:
        await runner.aclose()


async def test_closing_gives_every_held_connection_back(db: Database) -> None:
    runner = BackendPids(db, name="test", concurrent=4, idle_release=60)
    runner.start()
    before = in_use(db)
    await burst(runner, 3)
    assert runner.held == 3
    await runner.aclose()
    assert runner.held == 0
    assert in_use(db) == before
