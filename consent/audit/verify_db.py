"""`consent audit verify`: recompute every tenant's tree from the stored leaves.

Checks, per log, streaming (constant memory): leaf indexes are contiguous from 0; each leaf
index names an existing event; each stored leaf hash is SHA-256(0x00 || leaf bytes); each leaf
is canonical and names its own event id; the recomputed nodes of the lowest stored level equal
the stored ones (which pins a reordered or swapped leaf to its group of 16); every checkpoint is
signed by the verification key, names the log's origin, and its root equals the root recomputed
from the leaves at its size; the log state's size and root equal the recomputation; no event is
missing from both the tree and the outbox. The first divergence is reported with its leaf index.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

import asyncpg

from consent.audit import merkle
from consent.audit.checkpoint import NoteError, VerifierKey, open_checkpoint
from consent.audit.leaf import LeafError, decode_leaf
from consent.audit.nodes import STORED_MIN_LEVEL
from consent.db.database import Conn, Database
from consent.db.sql import SqlFile

__all__ = ["LogReport", "verify_all"]

Q = SqlFile.beside(__file__, "queries.sql")
_PREFETCH = 10_000


@dataclass
class LogReport:
    log_id: int
    origin: str
    tree_size: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _LogVerifier:
    """Streams one log's leaves through a frontier, checking as it goes."""

    def __init__(self, conn: Conn, row: asyncpg.Record, vkey: VerifierKey) -> None:
        self.conn = conn
        self.row = row
        self.vkey = vkey
        self.log_id = int(row["log_id"])
        self.report = LogReport(self.log_id, str(row["origin"]))
        self.frontier = merkle.Frontier()
        self.roots: dict[int, bytes] = {}
        self.first: str | None = None

    def diverged(self, problem: str) -> None:
        if self.first is None:
            self.first = problem

    async def load_checkpoints(self) -> None:
        rows = await self.conn.fetch(Q.all_checkpoints, self.log_id)
        self.report.checkpoints = len(rows)
        for cp in rows:
            size = int(cp["tree_size"])
            try:
                parsed, _ = open_checkpoint(str(cp["note"]), [self.vkey], origin=self.report.origin)
            except NoteError as exc:
                self.report.problems.append(f"checkpoint {size}: {exc}")
                continue
            if parsed.size != size or parsed.root_hash != bytes(cp["root_hash"]):
                self.report.problems.append(f"checkpoint {size}: its signed note says another tree")
                continue
            self.roots[size] = parsed.root_hash

    def check_leaf(self, expected: int, record: asyncpg.Record) -> bytes:
        index, stored_hash = int(record["leaf_index"]), bytes(record["leaf_hash"])
        if record["leaf_bytes"] is None:
            self.diverged(f"leaf {index}: its event is missing")
            return stored_hash
        data = bytes(record["leaf_bytes"])
        computed = merkle.leaf_hash(data)
        if index != expected:
            self.diverged(f"leaf {expected}: missing or out of order (found {index})")
        elif not hmac.compare_digest(computed, stored_hash) or not hmac.compare_digest(
            computed, bytes(record["event_leaf_hash"])
        ):
            self.diverged(f"leaf {index}: bytes do not match the stored leaf hash")
        else:
            try:
                leaf = decode_leaf(data)
            except LeafError:
                self.diverged(f"leaf {index}: not a canonical leaf")
            else:
                if leaf.event_uuid != record["event_uuid"]:
                    self.diverged(f"leaf {index}: belongs to another event")
        return computed

    async def run(self) -> LogReport:
        await self.load_checkpoints()
        stored_nodes = self.conn.cursor(
            Q.stream_level, self.log_id, STORED_MIN_LEVEL, prefetch=_PREFETCH
        )
        lowest = stored_nodes.__aiter__()
        expected = 0
        async for record in self.conn.cursor(Q.stream_leaves, self.log_id, prefetch=_PREFETCH):
            computed = self.check_leaf(expected, record)
            for node in self.frontier.append(computed):
                if node.level == STORED_MIN_LEVEL:
                    stored = await anext(lowest, None)
                    if stored is None or (stored["idx"], bytes(stored["hash"])) != node[1:]:
                        span = f"{node.idx << node.level}-{((node.idx + 1) << node.level) - 1}"
                        self.diverged(f"leaves {span}: differ from the stored tree")
            size = self.frontier.size
            if size in self.roots and self.frontier.root() != self.roots[size]:
                self.diverged(f"checkpoint {size}: its root differs from the leaves")
                self.report.problems.append(f"checkpoint {size}: root differs from the leaves")
            expected = int(record["leaf_index"]) + 1
        for lost in await self.conn.fetch(Q.lost_events, self.log_id):
            self.report.problems.append(
                f"event {lost['event_uuid']}: neither integrated nor pending"
            )
        return self.finish()

    def finish(self) -> LogReport:
        report, size = self.report, self.frontier.size
        if self.first is not None:
            report.problems.insert(0, f"first divergence: {self.first}")
        report.tree_size = size
        report.problems += [
            f"checkpoint {s}: beyond the {size} stored leaves" for s in self.roots if s > size
        ]
        if size != int(self.row["tree_size"]):
            report.problems.append(f"log state says {self.row['tree_size']} leaves; {size} stored")
        elif self.frontier.root() != bytes(self.row["root_hash"]):
            report.problems.append("log state root differs from the leaves")
        return report


async def verify_all(
    db: Database, vkey: VerifierKey, tenant_id: str | None = None
) -> list[LogReport]:
    reports: list[LogReport] = []
    async with db.system() as conn:
        for row in await conn.fetch(Q.all_logs):
            if tenant_id is not None and str(row["tenant_id"]) != tenant_id:
                continue
            reports.append(await _LogVerifier(conn, row, vkey).run())
    return reports
