from __future__ import annotations

import pytest

from consent.audit.checkpoint import NoteSigner
from consent.audit.integrator import Integrator
from consent.config import Settings
from consent.crypto.keys import KeyRing
from consent.db.database import Database


@pytest.fixture
def signer(keyring: KeyRing, settings: Settings) -> NoteSigner:
    return NoteSigner(settings.audit_origin, keyring.signing_key)


@pytest.fixture
def integrator(db: Database, signer: NoteSigner) -> Integrator:
    return Integrator(db, signer, batch_size=7)
