"""The integrator: assigns gapless leaf indexes in batches, stores subtree hashes, signs.

One transaction per batch: lock the log row, take up to `batch_size` pending leaves out of the
outbox (`audit_pending`) in arrival order, give them the next leaf indexes (`audit_leaf`, insert
only), extend the frontier, store the completed perfect-subtree nodes (of level >= 4: see
`nodes`), update the log state and sign a checkpoint. A crash rolls the whole batch back, so
integration is idempotent. Two integrators cannot corrupt a tree: an advisory lock makes the
second skip the log, and the `for update` on the log row would serialise them anyway. With a
`sign_interval`, a batch signs only when that long has passed since the log's last checkpoint,
and `sign_due` signs what was integrated meanwhile once it has: the service signs at most once a
second per log under load, not once per batch (five times a second), and within about a second
of the last batch.

Before signing (n, root) the signer guard verifies a consistency proof from the last signed
checkpoint (m, r): a log must never sign a checkpoint inconsistent with one it signed before.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import asyncpg
import structlog

from consent.audit import merkle
from consent.audit.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from consent.audit.nodes import stored, with_nodes
from consent.db.database import Conn, Database
from consent.db.sql import SqlFile

__all__ = ["IntegrationResult", "Integrator", "Outage", "SignerGuardError"]

Q = SqlFile.beside(__file__, "queries.sql")
DEFAULT_BATCH: Final = 5000
_log = structlog.get_logger(__name__)
_OUTAGE_RETRY: Final = 1.0  # seconds between attempts while the database is unavailable
_OUTAGE_REPEAT: Final = 30.0  # seconds between two log lines about one outage


class Outage:
    """The database unavailable to the integrator: one warning when it begins, then one every
    `_OUTAGE_REPEAT` seconds (not one per attempt: ~5 a second flooded the log), and one line
    when it is over, with its length."""

    retry_after: Final = _OUTAGE_RETRY

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.since: float | None = None
        self._said = 0.0

    def failed(self, error: str) -> None:
        now = self.clock()
        if self.since is None:
            self.since = now
        elif now - self._said < _OUTAGE_REPEAT:
            return
        self._said = now
        _log.warning(
            "audit.integrator_unavailable", error=error, seconds=round(now - self.since, 1)
        )

    def over(self) -> None:
        if self.since is not None:
            _log.info("audit.integrator_available", seconds=round(self.clock() - self.since, 1))
            self.since = None


class SignerGuardError(Exception):
    """The tree is not consistent with a checkpoint signed before: refuse to sign."""


@dataclass(frozen=True, slots=True)
class IntegrationResult:
    log_id: int
    integrated: int
    tree_size: int


class Integrator:
    def __init__(
        self,
        db: Database,
        signer: NoteSigner,
        *,
        batch_size: int = DEFAULT_BATCH,
        sign_interval: float = 0.0,
    ) -> None:
        """`sign_interval`: the least time in seconds between two checkpoints this integrator
        signs for one log (0: one per batch). A log integrated past its last checkpoint meanwhile
        is signed by `sign_due`, which `run` calls after every pass."""
        self.db = db
        self.signer = signer
        self.batch_size = batch_size
        self.sign_interval = sign_interval
        self._signed_at: dict[int, float] = {}  # monotonic time of each log's last checkpoint
        self._unsigned: set[int] = set()  # logs integrated past their last checkpoint here
        self._adopted = False  # whether `run` took over the logs an earlier run left unsigned

    def _due(self, log_id: int) -> bool:
        last = self._signed_at.get(log_id)
        return last is None or time.monotonic() - last >= self.sign_interval

    def _signed(self, log_id: int, *, signed: bool) -> None:
        """Bookkeeping once a transaction that integrated (and maybe signed) `log_id` committed."""
        if signed:
            self._signed_at[log_id] = time.monotonic()
            self._unsigned.discard(log_id)
        else:
            self._unsigned.add(log_id)

    async def integrate_log(self, log_id: int) -> IntegrationResult:
        """Integrate one batch of one log (no-op when another integrator holds it); sign a
        checkpoint when `sign_interval` has passed since this log's last one."""
        sign = self._due(log_id)
        result = await self._integrate(log_id, sign=sign)
        if result.integrated:
            self._signed(log_id, signed=sign)
        return result

    async def adopt_unsigned(self) -> int:
        """Take over the logs integrated past their last checkpoint before this integrator
        started (one stopped or killed between a batch and its signing): `sign_due` signs them,
        where they would otherwise wait for their next leaf. Returns how many there are."""
        async with self.db.pool.acquire() as conn:
            logs = [int(r["log_id"]) for r in await conn.fetch(Q.unsigned_logs)]
        self._unsigned.update(logs)
        return len(logs)

    async def sign_due(self, *, now: bool = False) -> int:
        """Sign a checkpoint for each log integrated past its last one whose `sign_interval`
        has passed (`now`: whether it has or not); returns how many were signed."""
        signed = 0
        for log_id in sorted(self._unsigned):
            if not now and not self._due(log_id):
                continue
            # An attempt that fails (the signer guard refusing, the database gone) is tried
            # again an interval later, not on every pass.
            self._signed_at[log_id] = time.monotonic()
            async with self.db.system() as conn:
                locked = await self._lock(conn, log_id)
                if locked is None:  # another integrator holds it: an interval later
                    continue
                origin, frontier = locked
                await self._sign(conn, log_id, origin, frontier.size, frontier.root())
            self._signed(log_id, signed=True)
            signed += 1
        return signed

    @staticmethod
    async def _lock(conn: Conn, log_id: int) -> tuple[str, merkle.Frontier] | None:
        """The log's origin and frontier, locked for this transaction (advisory lock, then the
        row); None when another integrator holds it."""
        if not await conn.fetchval(Q.try_lock_log, log_id):
            return None
        state = await conn.fetchrow(Q.lock_log, log_id)
        if state is None:
            return None
        size = int(state["tree_size"])
        return str(state["origin"]), merkle.Frontier(size, [bytes(h) for h in state["frontier"]])

    async def _integrate(self, log_id: int, *, sign: bool) -> IntegrationResult:
        async with self.db.system() as conn:
            locked = await self._lock(conn, log_id)
            if locked is None:
                return IntegrationResult(log_id, 0, -1)
            origin, frontier = locked
            size = frontier.size
            pending = await conn.fetch(Q.take_pending, log_id, self.batch_size)
            if not pending:
                return IntegrationResult(log_id, 0, size)
            nodes: list[merkle.Node] = []
            hashes = [bytes(r["leaf_hash"]) for r in pending]
            for leaf_hash in hashes:
                nodes.extend(frontier.append(leaf_hash))
            nodes = stored(nodes)
            await conn.execute(
                Q.insert_leaves, log_id, size, [r["event_id"] for r in pending], hashes
            )
            if nodes:
                await conn.execute(
                    Q.insert_nodes,
                    log_id,
                    [n.level for n in nodes],
                    [n.idx for n in nodes],
                    [n.hash for n in nodes],
                )
            root = frontier.root()
            await conn.execute(Q.update_log, log_id, frontier.size, root, list(frontier.hashes))
            if sign:
                await self._sign(conn, log_id, origin, frontier.size, root)
            return IntegrationResult(log_id, len(pending), frontier.size)

    async def _sign(self, conn: Conn, log_id: int, origin: str, size: int, root: bytes) -> None:
        last = await conn.fetchrow(Q.last_checkpoint, log_id)
        if last is not None:
            old_size, old_root = int(last["tree_size"]), bytes(last["root_hash"])
            if size < old_size:
                raise SignerGuardError(f"tree size {size} is below signed size {old_size}")
            if size == old_size:
                if root != old_root:
                    raise SignerGuardError("same size, different root: refusing to sign a fork")
                return
            proof = await with_nodes(
                conn, log_id, lambda get: merkle.consistency_proof(get, old_size, size)
            )
            try:
                merkle.verify_consistency(old_size, size, proof, old_root, root)
            except merkle.ProofError as exc:
                raise SignerGuardError(f"not consistent with checkpoint {old_size}") from exc
        note = sign_checkpoint(Checkpoint(origin, size, root), [self.signer])
        await conn.execute(Q.insert_checkpoint, log_id, size, root, note)

    async def integrate_all(self) -> int:
        """Integrate until nothing is pending; returns the number of leaves integrated."""
        total = 0
        while True:
            async with self.db.pool.acquire() as conn:
                logs = [int(r["log_id"]) for r in await conn.fetch(Q.pending_logs)]
            if not logs:
                return total
            progressed = 0
            for log_id in logs:
                result = await self.integrate_log(log_id)
                progressed += result.integrated
            total += progressed
            if progressed == 0:  # another integrator holds the pending logs
                return total

    async def run(self, stop: asyncio.Event, interval: float = 0.2) -> None:
        """Integrate continuously until `stop` is set (the service runs this in the background);
        then sign what is integrated but not yet signed, so that a stopped service leaves every
        leaf under a checkpoint."""
        outage = Outage()
        while not stop.is_set():
            started = time.monotonic()
            try:
                if not self._adopted:
                    await self.adopt_unsigned()
                    self._adopted = True
                count = await self.integrate_all()
                if count:
                    _log.debug("audit.integrated", leaves=count)
                await self.sign_due()
                outage.over()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                outage.failed(type(exc).__name__)
            except SignerGuardError:
                _log.exception("audit.signer_guard_refused")
            elapsed = time.monotonic() - started
            wait = outage.retry_after if outage.since is not None else interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, wait - elapsed))
        try:
            await self.sign_due(now=True)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            _log.warning("audit.integrator_unavailable", error=type(exc).__name__)
        except SignerGuardError:
            _log.exception("audit.signer_guard_refused")
