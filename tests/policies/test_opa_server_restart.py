"""An OPA server that restarts loses what was pushed to it: the service notices, fails closed
meanwhile, and pushes its bundle again without a restart. Every decision names the revision
the server actually evaluated it with."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from consent.decisions.engine import (
    OpaServerEngine,
    PolicyBundle,
    PolicyUnavailable,
)
from tests.policies.conftest import SALE_IN_UTAH
from tests.support.opa_server import LocalOpaServer

pytestmark = pytest.mark.policy


def _port(server: LocalOpaServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _policy_ids(server: LocalOpaServer) -> list[str]:
    with urllib.request.urlopen(f"{server.url}/v1/policies") as response:  # noqa: S310
        return [p["id"] for p in json.loads(response.read())["result"]]


async def test_a_restarted_empty_server_gets_the_bundle_again(bundle: PolicyBundle) -> None:
    old = LocalOpaServer().start()
    port = _port(old)
    async with OpaServerEngine(old.url, bundle, timeout=1.0) as engine:
        first = await engine.evaluate(SALE_IN_UTAH)
        assert first.allow
        old.stop()
        with LocalOpaServer(port=port) as restarted:  # same address, nothing loaded
            assert _policy_ids(restarted) == []
            outcomes: list[object] = []
            for _ in range(3):  # the first may find the old connection closed: 503, not a deny
                try:
                    outcomes.append(await engine.evaluate(SALE_IN_UTAH))
                except PolicyUnavailable as exc:
                    outcomes.append(exc)
            assert outcomes[-1] == first, outcomes
            assert all(o == first or isinstance(o, PolicyUnavailable) for o in outcomes)
            assert set(bundle.modules) <= set(_policy_ids(restarted))


async def test_the_revision_is_the_one_the_server_decided_with(
    bundle: PolicyBundle, tmp_path: Path
) -> None:
    """Two processes pushed different bundles to one server (one reloaded, one did not yet):
    the one that did not must not label the server's decisions with its own revision."""
    root = tmp_path / "policies"
    shutil.copytree(bundle.root, root)
    path = root / "data" / "jurisdictions.json"
    doc = json.loads(path.read_text())
    doc["value"]["gpc_legal_effect"]["US-UT"] = "2024-01-01"
    doc["value"]["gpc_legal_effect_sources"]["US-UT"] = {"statute": "test", "sources": ["t"]}
    path.write_text(json.dumps(doc))
    newer = PolicyBundle.load(root)
    with LocalOpaServer() as server:
        async with (
            OpaServerEngine(server.url, bundle) as stale,
            OpaServerEngine(server.url, newer) as fresh,
        ):
            decision = await stale.evaluate(SALE_IN_UTAH)
            assert decision.reasons == ("denied.gpc",)  # the newer policy decided
            assert decision.revision == newer.revision
            assert (await fresh.evaluate(SALE_IN_UTAH)).revision == newer.revision
