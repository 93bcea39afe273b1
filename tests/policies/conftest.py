from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from consent.decisions.engine import (
    CompiledPolicy,
    InProcessOpaEngine,
    OpaServerEngine,
    PolicyBundle,
    default_policy_root,
)
from tests.support.opa_server import LocalOpaServer

# A sale under a GPC signal in Utah (no legal effect there): allowed by the shipped policy.
SALE_IN_UTAH = {
    "now_ns": 1_750_000_000_000_000_000,
    "action": "data.sell.partner",
    "subject": {
        "known": True,
        "jurisdiction": "US-UT",
        "age": 40,
        "parental_consent": False,
        "parental_consent_third_parties": False,
        "gpc": True,
        "limit_sensitive": False,
        "objections": [],
    },
    "purposes": {
        "data_sale": {
            "legal_basis": "consent",
            "max_age_ns": None,
            "strictly_necessary": False,
            "material_version": 1,
        }
    },
    "consents": {"data_sale": {"status": "granted", "recorded_at_ns": 1, "material_version": 1}},
}


@pytest.fixture(scope="session")
def policy_root() -> Path:
    return default_policy_root()


@pytest.fixture(scope="session")
def bundle(policy_root: Path) -> PolicyBundle:
    return PolicyBundle.load(policy_root)


@pytest.fixture(scope="session")
def compiled(bundle: PolicyBundle) -> Iterator[CompiledPolicy]:
    policy = CompiledPolicy(bundle, with_tests=True)
    yield policy
    policy.close()


@pytest.fixture(scope="session")
def opa_server() -> Iterator[LocalOpaServer]:
    with LocalOpaServer() as server:
        yield server


@pytest.fixture(scope="session")
async def inprocess_engine(bundle: PolicyBundle) -> AsyncIterator[InProcessOpaEngine]:
    engine = InProcessOpaEngine(bundle, pool_size=2)
    yield engine
    await engine.aclose()


@pytest.fixture(scope="session")
async def server_engine(
    bundle: PolicyBundle, opa_server: LocalOpaServer
) -> AsyncIterator[OpaServerEngine]:
    async with OpaServerEngine(opa_server.url, bundle, timeout=2.0) as engine:
        yield engine
