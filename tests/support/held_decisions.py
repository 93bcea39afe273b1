"""Decisions whose logging a test holds: the real decision service (real policy engine, real
group-commit writer, the test database), with the writer's door held after the state read, so
that a test can drive what happens between a decision's read and its commit (erasures,
re-spellings) without sleeping and hoping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import msgspec

from consent.audit.outbox import AuditWriter
from consent.config import Settings
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.decisions.logwriter import GroupCommitWriter, LogBatch
from consent.decisions.policy import PolicyRuntime
from consent.decisions.schemas import DecisionOut, DecisionRequest
from consent.decisions.service import Caller, DecisionService

__all__ = ["HeldWriter", "ask", "held_decisions"]


class HeldWriter(GroupCommitWriter):
    """The real group-commit writer, with its door held: records submitted wait (their reads
    done, their rows built) until `release` is set."""

    def __init__(self, db: Database, audit: AuditWriter) -> None:
        super().__init__(db, name="held", audit=audit)
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.stopped: list[LogBatch] = []

    async def write(self, records: LogBatch) -> None:
        self.stopped.append(records)
        self.arrived.set()
        await self.release.wait()
        await super().write(records)


@asynccontextmanager
async def held_decisions(
    db: Database, settings: Settings, keyring: KeyRing, audit: AuditWriter
) -> AsyncIterator[tuple[DecisionService, HeldWriter]]:
    """A decision service of the test's own whose decisions wait in a HeldWriter (released,
    and everything closed, at the end)."""
    policy = await PolicyRuntime.open(settings)
    writer = HeldWriter(db, audit)
    writer.start()
    service = DecisionService(db, keyring, policy, writer)
    service.start()
    try:
        yield service, writer
    finally:
        writer.release.set()
        await service.aclose()
        await writer.aclose()
        await policy.aclose()


def ask(
    service: DecisionService, tenant_id: UUID, identifier: dict[str, str]
) -> asyncio.Task[DecisionOut]:
    """A decision about `identifier` (web.analytics for cdp-main), under way as a task."""
    request = msgspec.convert(
        {
            "subject": {"identifier": identifier},
            "action": "web.analytics",
            "context": {"requester": "cdp-main"},
        },
        DecisionRequest,
    )
    caller = Caller(tenant_id=tenant_id, api_key_id="race-test", request_id=None)
    return asyncio.create_task(service.decide(caller, request))
