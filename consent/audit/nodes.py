"""Serve Merkle proofs from the database: fetch exactly the nodes a proof needs, in one query.

The proof functions of `merkle` only branch on indexes and sizes, never on hash values, so a
first run with a recording getter lists every (level, index) they read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from consent.audit import merkle
from consent.db.database import Conn
from consent.db.sql import SqlFile

__all__ = ["with_nodes"]

Q = SqlFile.beside(__file__, "queries.sql")
_T = TypeVar("_T")
_PLACEHOLDER = b"\x00" * merkle.HASH_SIZE


async def with_nodes(conn: Conn, log_id: int, compute: Callable[[merkle.NodeGetter], _T]) -> _T:
    """Run `compute(get_node)` with the nodes it needs loaded from the database."""
    wanted: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        wanted.add((level, index))
        return _PLACEHOLDER

    compute(record)
    known: dict[tuple[int, int], bytes] = {}
    leaves = [i for level, i in wanted if level == 0]
    if leaves:
        for r in await conn.fetch(Q.leaf_hashes_at, log_id, leaves):
            known[(0, r["leaf_index"])] = bytes(r["leaf_hash"])
    inner = [(level, i) for level, i in wanted if level > 0]
    if inner:
        rows = await conn.fetch(
            Q.nodes_at, log_id, [level for level, _ in inner], [i for _, i in inner]
        )
        for r in rows:
            known[(r["level"], r["idx"])] = bytes(r["hash"])

    def get(level: int, index: int) -> bytes:
        try:
            return known[(level, index)]
        except KeyError:
            raise merkle.ProofError(f"node ({level}, {index}) is not stored") from None

    return compute(get)
