"""`consent audit verify`: recompute every tenant's tree from the stored leaves.

Checks, per log, streaming (constant memory): leaf indexes are contiguous from 0; each leaf
index names an existing event; each stored leaf hash is SHA-256(0x00 || leaf bytes); each leaf
is canonical and names its own event id; its event's `kind` is the leaf's, and the subject it
is filed under (what the activity view and exports read) holds the leaf's subject token; the
stored evidence hashes to the leaf's digest (until an erasure deletes both token and evidence);
its `recorded_at` lies within bounds of the time in its event id (`_recorded_at_problem`); the
recomputed nodes equal every stored one (proofs are served from them; the lowest stored
level pins a reordered or swapped leaf to its group of 16); every checkpoint is signed by the
verification key, names the log's origin, and its root equals the root recomputed from the
leaves at its size; the log state's size, root and frontier (what the next integration builds
on) equal the recomputation; every outbox row carries its event's hash; no event is missing from
both the tree and the outbox. The first divergence is reported with its leaf index.

Audience runs store what their `audience.used` leaves commit to beside them (which subjects a
run decided, with which input values, and each shape's answer), and the portal and exports read
those rows: each `audience_member` row with a leaf is checked against it (members_digest
recomputed from the row, the shape's answer and input digest, the run's requester, action and
time), and every integrated `audience.used` leaf must have its row. One streamed query over the
tenant's rows, in chunks of a few rows (each holds up to a chunk's member arrays). Erasure does
not change these rows (they hold random subject ids only), so an erased member's runs verify
unchanged. Rows without a leaf (written before migration 0005, or by a writer without the
audit log) have nothing to be checked against.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Final
from uuid import UUID

import asyncpg

from consent.audit import merkle
from consent.audit.checkpoint import NoteError, VerifierKey, open_checkpoint
from consent.audit.decision_leaves import members_digest, state_digest
from consent.audit.leaf import (
    AudienceUsed,
    DecisionMade,
    Leaf,
    LeafError,
    SubjectErased,
    decode_leaf,
)
from consent.audit.nodes import STORED_MIN_LEVEL
from consent.audit.outbox import token_text
from consent.db.database import Conn, Database
from consent.db.sql import SqlFile
from consent.ids import uuid7_ms

__all__ = ["LogReport", "verify_all"]

Q = SqlFile.beside(__file__, "queries.sql")
_PREFETCH = 10_000
# audience_member rows carry a chunk's member arrays (tens of thousands of ids each).
_AUDIENCE_PREFETCH = 32
_AUDIENCE_REPORTED = 10
# Event ids are UUID v7 (`uuid7_ms`: the millisecond they were made in). How far the
# writers' clocks may be from the database's, and the longest a write may take from making
# its event id to inserting its row (one statement later, but for lock waits).
_CLOCK_SKEW_MS: Final = 5 * 60 * 1000
_WRITE_TIME_MS: Final = 60 * 60 * 1000
_MADE_BEFORE_WRITE: Final = (DecisionMade, AudienceUsed)


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
        # Integrated audience.used leaves seen: each must have its audience_member row.
        self.audience_leaves = 0

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
                if isinstance(leaf, AudienceUsed):
                    self.audience_leaves += 1
                problem = _filing_problem(leaf, record)
                if problem is not None:
                    self.diverged(f"leaf {index}: {problem}")
        return computed

    async def run(self) -> LogReport:
        await self.load_checkpoints()
        stored_nodes = self.conn.cursor(
            Q.stream_nodes, self.log_id, STORED_MIN_LEVEL, prefetch=_PREFETCH
        )
        nodes = stored_nodes.__aiter__()
        expected = 0
        async for record in self.conn.cursor(Q.stream_leaves, self.log_id, prefetch=_PREFETCH):
            computed = self.check_leaf(expected, record)
            for node in self.frontier.append(computed):
                if node.level >= STORED_MIN_LEVEL:
                    stored = await anext(nodes, None)
                    if stored is None or (
                        stored["level"],
                        stored["idx"],
                        bytes(stored["hash"]),
                    ) != tuple(node):
                        span = f"{node.idx << node.level}-{((node.idx + 1) << node.level) - 1}"
                        self.diverged(f"leaves {span}: differ from the stored tree")
            size = self.frontier.size
            if size in self.roots and self.frontier.root() != self.roots[size]:
                self.diverged(f"checkpoint {size}: its root differs from the leaves")
                self.report.problems.append(f"checkpoint {size}: root differs from the leaves")
            expected = int(record["leaf_index"]) + 1
        extra = await anext(nodes, None)
        if extra is not None:
            self.report.problems.append(
                f"stored node ({extra['level']}, {extra['idx']}): beyond the stored leaves"
            )
        for bad in await self.conn.fetch(Q.bad_pending, self.log_id):
            self.report.problems.append(
                f"outbox row of event {bad['event_uuid'] or bad['event_id']}: "
                "does not carry its event's leaf hash"
            )
        for lost in await self.conn.fetch(Q.lost_events, self.log_id):
            self.report.problems.append(
                f"event {lost['event_uuid']}: neither integrated nor pending"
            )
        await self.check_audiences()
        return self.finish()

    async def check_audiences(self) -> None:
        """Every audience_member row of the tenant that has a leaf against that leaf, then
        every integrated audience.used leaf against the rows (by count: the leaf stream
        counted them; the leaves are looked up only when some lack their row)."""
        problems: list[str] = []
        linked = 0
        async for group in self.conn.cursor(
            Q.audience_groups, self.row["tenant_id"], prefetch=_AUDIENCE_PREFETCH
        ):
            problem, integrated = _audience_problem(group, self.log_id)
            linked += integrated
            if problem is not None:
                index = group["leaf_index"]
                leaf = "pending leaf" if index is None else f"leaf {index}"
                problems.append(
                    f"audience run {group['run_id']}, chunk {group['chunk']}, shape "
                    f"{group['shape']} ({leaf}): {problem}"
                )
        if linked < self.audience_leaves:
            missing = await self.conn.fetch(
                Q.audience_leaves_without_rows, self.log_id, self.row["tenant_id"]
            )
            problems += [
                f"leaf {r['leaf_index']} (audience run {_run_of(r['leaf_bytes'])}): "
                "its audience_member row is missing"
                for r in missing
            ] or [f"{self.audience_leaves - linked} audience.used leaves: no row links them"]
        if len(problems) > _AUDIENCE_REPORTED:
            more = len(problems) - _AUDIENCE_REPORTED
            problems[_AUDIENCE_REPORTED:] = [f"... and {more} more audience rows or leaves"]
        self.report.problems += problems

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
        elif [bytes(h) for h in self.row["frontier"]] != list(self.frontier.hashes):
            report.problems.append("log state frontier differs from the leaves")
        return report


@dataclass(frozen=True, slots=True)
class _StoredMembers:
    """The member columns of an audience_member row, as members_digest takes them."""

    subject_ids: list[UUID]
    purpose_keys: list[str]
    purpose_material: list[int | None]
    recorded_at_ns: list[int | None]
    consent_material: list[int | None]


def _audience_problem(group: asyncpg.Record, log_id: int) -> tuple[str | None, bool]:
    """What is wrong with an audience_member row (and its shape and run) against its leaf, and
    whether the row links an integrated audience.used leaf of the log."""
    leaf = _audience_leaf(group, log_id)
    if isinstance(leaf, str):
        return leaf, False
    return _audience_row_problem(leaf, group), group["leaf_index"] is not None


def _audience_leaf(group: asyncpg.Record, log_id: int) -> AudienceUsed | str:
    """The audience.used leaf a row links, or what is wrong with the link."""
    if group["leaf_bytes"] is None:
        return "its leaf is missing"
    if group["log_id"] != log_id:
        return "its leaf is in another log"
    try:
        leaf = decode_leaf(bytes(group["leaf_bytes"]))
    except LeafError:
        return "its leaf is not a canonical leaf"
    return leaf if isinstance(leaf, AudienceUsed) else "its leaf is not an audience.used leaf"


def _audience_row_problem(leaf: AudienceUsed, group: asyncpg.Record) -> str | None:
    """The first of the row's members, its shape's answer and input (a missing shape reads as
    null) and its run that differs from what the leaf commits to."""
    members = _StoredMembers(
        subject_ids=list(group["subject_ids"]),
        purpose_keys=list(group["purpose_keys"]),
        purpose_material=list(group["purpose_material"]),
        recorded_at_ns=list(group["recorded_at_ns"]),
        consent_material=list(group["consent_material"]),
    )
    shape = (group["allow"], tuple(group["reasons"] or ()), group["policy_revision"])
    run = (group["requester"], group["action"], group["started_at"])
    checks = (
        (leaf.run_id == group["run_id"], "its leaf names another run"),
        (
            leaf.members == len(members.subject_ids)
            and hmac.compare_digest(leaf.members_digest, members_digest(members)),
            "its members differ from the leaf's digest",
        ),
        (
            shape == (leaf.allow, leaf.reasons, leaf.policy_revision)
            and leaf.state_digest == state_digest(group["shape_input"]),
            "its shape's decision differs from the leaf's",
        ),
        (
            run == (leaf.requester, leaf.action, leaf.occurred_at),
            "its run differs from the leaf's (requester, action, time)",
        ),
    )
    return next((problem for holds, problem in checks if not holds), None)


def _run_of(leaf_bytes: bytes) -> str:
    try:
        leaf = decode_leaf(bytes(leaf_bytes))
    except LeafError:
        return "unknown"
    return str(leaf.run_id) if isinstance(leaf, AudienceUsed) else "unknown"


def _filing_problem(leaf: Leaf, record: asyncpg.Record) -> str | None:
    """What is wrong with the columns beside the leaf bytes, which the hashes do not cover: the
    kind and subject the event is filed under, its stored evidence and its record time."""
    if record["kind"] != leaf.__struct_config__.tag:
        return f"filed as {record['kind']!r}, the leaf is {leaf.__struct_config__.tag!r}"
    return (
        _subject_problem(leaf, record)
        or _evidence_problem(leaf, record)
        or _recorded_at_problem(leaf, record["recorded_ms"])
    )


def _recorded_at_problem(leaf: Leaf, recorded_ms: int) -> str | None:
    """The event's `recorded_at` (`recorded_ms`, Unix milliseconds: the database's clock when
    the row was inserted; the activity view shows it) against the millisecond in the leaf's
    event id (a UUID v7, made by the writer just before): never more than the clocks' skew
    earlier and, but for kinds whose ids carry an earlier time (a decision's the decision
    clock's, an audience run's leaves the run's start), not later than a write takes. A bound,
    not an equality: a time moved within it is not seen, but it selects nothing (period exports
    go by the event id itself)."""
    made_ms = uuid7_ms(leaf.event_uuid)
    if made_ms is None:  # no time in it: nothing to check
        return None
    lag_ms = recorded_ms - made_ms
    if lag_ms < -_CLOCK_SKEW_MS:
        return "recorded before its event id was made"
    if lag_ms > _CLOCK_SKEW_MS + _WRITE_TIME_MS and not isinstance(leaf, _MADE_BEFORE_WRITE):
        return "recorded long after its event id was made"
    return None


def _subject_problem(leaf: Leaf, record: asyncpg.Record) -> str | None:
    token: str | None = getattr(leaf, "subject_token", None)
    stored = record["subject_token"]
    if token is None:
        return None if record["subject_id"] is None else "filed under a subject it does not name"
    if isinstance(leaf, SubjectErased):  # filed under no subject: its token is gone
        return None
    if record["subject_id"] is None:
        return "not filed under its subject"
    if stored is not None and token_text(bytes(stored)) != token:
        return "filed under another subject than its token's"
    return None


def _evidence_problem(leaf: Leaf, record: asyncpg.Record) -> str | None:
    digest: str | None = getattr(leaf, "evidence_digest", None)
    evidence = record["evidence_sha256"]
    if digest is None:
        return None
    if evidence is not None and bytes(evidence).hex() != digest:
        return "its evidence differs from the leaf's digest"
    if evidence is None and record["subject_token"] is not None:
        return "its evidence is missing (its subject is not erased)"
    return None


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
