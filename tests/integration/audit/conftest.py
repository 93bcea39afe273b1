"""Decisions held before they are logged, for the tests that race them against erasures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID

import msgspec
import pytest

from consent.audit.outbox import AuditWriter
from consent.config import Settings
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.decisions.schemas import DecisionOut
from consent.decisions.service import Caller, DecisionService
from consent.subjects.schemas import SubjectRef
from tests.conftest import Catalog
from tests.support.held_decisions import HeldWriter, ask, held_decisions


class Deciding:
    """A decision service of this test's own (real policy engine, real log writer, the test
    database), whose decisions can be held before they are logged."""

    def __init__(self, service: DecisionService, writer: HeldWriter, tenant_id: UUID) -> None:
        self.service = service
        self.writer = writer
        self.tenant_id = tenant_id
        self.caller = Caller(tenant_id=tenant_id, api_key_id="race-test", request_id=None)

    def ask(self, identifier: dict[str, str]) -> asyncio.Task[DecisionOut]:
        return ask(self.service, self.caller.tenant_id, identifier)

    def hmac(self, identifier: dict[str, str]) -> bytes:
        subject = msgspec.convert({"identifier": identifier}, SubjectRef)
        digest = self.service.ref(self.caller.tenant_id, subject, "subject").digest
        assert digest is not None
        return digest


@pytest.fixture
async def deciding(
    db: Database, settings: Settings, keyring: KeyRing, catalog: Catalog
) -> AsyncIterator[Deciding]:
    audit = AuditWriter(settings.audit_origin)
    async with held_decisions(db, settings, keyring, audit) as (service, writer):
        yield Deciding(service, writer, UUID(catalog.tenant.id))
