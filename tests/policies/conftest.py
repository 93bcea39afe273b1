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
