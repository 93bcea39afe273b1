"""Wiring of the decision service for the app's lifespan: policy, log writers, service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consent.audit.outbox import AuditWriter
from consent.audit.policy_leaves import record_policy_served
from consent.config import Settings
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.db.listening import Listener
from consent.decisions.audience import AudienceFilter
from consent.decisions.logwriter import GroupCommitWriter
from consent.decisions.policy import PolicyRuntime, warn_undefined_purposes
from consent.decisions.service import DecisionService

__all__ = ["Decisions"]


@dataclass(slots=True)
class Decisions:
    policy: PolicyRuntime
    service: DecisionService
    audiences: AudienceFilter
    writers: tuple[GroupCommitWriter, ...]

    @classmethod
    async def open(
        cls, settings: Settings, db: Database, keyring: KeyRing, listener: Listener
    ) -> Decisions:
        """Load and check the policy (PolicyLoadError if refused: the service does not start),
        start the decision-log writers (one for decisions, one for audience chunks, so that a
        big audience does not delay single decisions), and follow reload requests on
        `listener` (the caller starts and closes it). An action
        that needs a purpose no tenant defines is a warning in the log (`policy.purpose_undefined`),
        not a refusal."""
        policy = await PolicyRuntime.open(settings)
        await warn_undefined_purposes(db, policy.engine.bundle)
        audit = AuditWriter(settings.audit_origin)

        async def served(revision: str) -> None:
            await record_policy_served(db, audit, revision, policy.kind)

        await served(policy.revision)
        policy.on_served = served
        linger = settings.decision_log_linger_ms / 1000
        # Single decisions wait on a read group and a commit group: up to 4 of each at once
        # (+20 % decisions/s over 2 at 32 connections). Each holds a pool connection, so
        # beyond 2 of each, no more than a quarter of the pool each.
        groups = min(4, max(2, settings.db_pool_max // 4))
        log = GroupCommitWriter(
            db, name="decisions", linger=linger, audit=audit, concurrent_commits=groups
        )
        bulk = GroupCommitWriter(db, name="audiences", linger=linger, audit=audit)
        for writer in (log, bulk):
            writer.start()
        policy.listen(listener)
        service = DecisionService(
            db,
            keyring,
            policy,
            log,
            concurrency=max(2, settings.opa_pool_size * 2),
            read_groups=groups,
        )
        service.start()
        return cls(policy, service, AudienceFilter(service, bulk), (log, bulk))

    def install(self, state: Any) -> None:
        """`app.state.policy`, `.decisions`, `.audiences`."""
        state.policy = self.policy
        state.decisions = self.service
        state.audiences = self.audiences

    async def aclose(self) -> None:
        """Finish the reads, commit pending log records, stop the listener and the engine."""
        await self.service.aclose()
        for writer in self.writers:
            await writer.aclose()
        await self.policy.aclose()
