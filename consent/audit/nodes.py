"""Serve Merkle proofs from the database: fetch exactly the nodes a proof needs.

The proof functions of `merkle` only branch on indexes and sizes, never on hash values, so a
first run with a recording getter lists every (level, index) they read.

The integrator stores only the perfect subtree nodes of level >= `STORED_MIN_LEVEL` (one per
16 leaves instead of one per leaf: storing nodes was a third of integration time); a node below
that level is recomputed from the at most 2**(STORED_MIN_LEVEL-1) leaf hashes under it, read
with the leaves a proof needs anyway, in one query.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

from consent.audit import merkle
from consent.db.database import Conn
from consent.db.sql import SqlFile

__all__ = ["STORED_MIN_LEVEL", "stored", "with_nodes"]

Q = SqlFile.beside(__file__, "queries.sql")
_T = TypeVar("_T")
_PLACEHOLDER = b"\x00" * merkle.HASH_SIZE
STORED_MIN_LEVEL: Final = 4


def stored(nodes: list[merkle.Node]) -> list[merkle.Node]:
    """The nodes the integrator keeps (see the module docstring)."""
    return [n for n in nodes if n.level >= STORED_MIN_LEVEL]


async def with_nodes(conn: Conn, log_id: int, compute: Callable[[merkle.NodeGetter], _T]) -> _T:
    """Run `compute(get_node)` with the nodes it needs loaded from the database."""
    wanted: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        wanted.add((level, index))
        return _PLACEHOLDER

    compute(record)
    known: dict[tuple[int, int], bytes] = {}
    low = [(level, i) for level, i in wanted if 0 < level < STORED_MIN_LEVEL]
    leaves = {i for level, i in wanted if level == 0}
    for level, i in low:
        leaves.update(range(i << level, (i + 1) << level))
    if leaves:
        for r in await conn.fetch(Q.leaf_hashes_at, log_id, sorted(leaves)):
            known[(0, r["leaf_index"])] = bytes(r["leaf_hash"])
    for level, i in low:
        under = [known.get((0, j)) for j in range((i << level), (i + 1) << level)]
        if all(h is not None for h in under):
            known[(level, i)] = merkle.root_from_leaf_hashes([h for h in under if h is not None])
    inner = [(level, i) for level, i in wanted if level >= STORED_MIN_LEVEL]
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
