"""Reloading: a broken bundle is refused and the old one keeps serving; the revision hash."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from consent.decisions.engine import (
    InProcessOpaEngine,
    OpaServerEngine,
    PolicyBundle,
    PolicyLoadError,
    bundle_revision,
)
from tests.policies.conftest import SALE_IN_UTAH
from tests.support.opa_server import LocalOpaServer

pytestmark = pytest.mark.policy

BROKEN: dict[str, Callable[[str], str]] = {
    "syntax": lambda src: src.replace("allow if count(denials) == 0", "allow { true }"),
    "type": lambda src: src + "\nbad if startswith(1, 2)\n",
    "failing tests": lambda src: src.replace("opt_out_scope(a) if a.sale_or_share == true", ""),
    "fails open": lambda src: src.replace(
        "default allow := false", "default allow := true"
    ).replace("allow if count(denials) == 0", ""),
}


@pytest.fixture
def root(tmp_path: Path, policy_root: Path) -> Path:
    copy = tmp_path / "policies"
    shutil.copytree(policy_root, copy)
    return copy


def _edit(root: Path, relative: str, change: Callable[[str], str]) -> None:
    path = root / relative
    path.write_text(change(path.read_text()))


def _add_gpc_state(root: Path, state: str, since: str = "2024-01-01") -> None:
    """List `state` in gpc_legal_effect, GPC having legal effect there from the day `since`."""
    path = root / "data" / "jurisdictions.json"
    doc = json.loads(path.read_text())
    doc["value"]["gpc_legal_effect"][state] = since
    doc["value"]["gpc_legal_effect_sources"][state] = {"statute": "test", "sources": ["test"]}
    path.write_text(json.dumps(doc))


@pytest.fixture
async def engine(root: Path) -> AsyncIterator[InProcessOpaEngine]:
    engine = InProcessOpaEngine(PolicyBundle.load(root), pool_size=2)
    yield engine
    await engine.aclose()


@pytest.mark.parametrize("kind", sorted(BROKEN))
async def test_broken_policy_is_refused_and_the_old_one_keeps_serving(
    root: Path, engine: InProcessOpaEngine, kind: str
) -> None:
    before = engine.revision
    first = await engine.evaluate(SALE_IN_UTAH)
    _edit(root, "consent/decision.rego", BROKEN[kind])
    with pytest.raises(PolicyLoadError):
        await engine.reload()
    assert engine.revision == before
    assert await engine.evaluate(SALE_IN_UTAH) == first


async def test_a_policy_test_that_errors_is_refused_as_a_failure(
    root: Path, engine: InProcessOpaEngine
) -> None:
    """A test rule whose evaluation errors (here a conflict) fails the bundle like a false one,
    naming the test, instead of escaping as the engine's own error."""
    before = engine.revision
    _edit(
        root,
        "consent/decision_test.rego",
        lambda src: (
            src + "\nclash := 1 if true\n\nclash := 2 if true\n\ntest_clash if clash == 1\n"
        ),
    )
    with pytest.raises(PolicyLoadError, match=r"test_clash: .*conflict"):
        await engine.reload()
    assert engine.revision == before


async def test_broken_data_is_refused(root: Path, engine: InProcessOpaEngine) -> None:
    before = engine.revision
    (root / "data" / "jurisdictions.json").write_text('{"path": "consent.jurisdictions"')
    with pytest.raises(PolicyLoadError):
        await engine.reload()
    assert engine.revision == before


async def test_good_reload_swaps(root: Path, engine: InProcessOpaEngine) -> None:
    before = engine.revision
    assert (await engine.evaluate(SALE_IN_UTAH)).allow
    _add_gpc_state(root, "US-UT")
    revision = await engine.reload()
    assert revision != before
    assert engine.revision == revision
    decision = await engine.evaluate(SALE_IN_UTAH)
    assert (decision.allow, decision.reasons, decision.revision) == (
        False,
        ("denied.gpc",),
        revision,
    )


async def test_gpc_has_effect_from_the_day_the_data_gives(
    root: Path, engine: InProcessOpaEngine
) -> None:
    _add_gpc_state(root, "US-UT", since="2025-06-16")  # the day after SALE_IN_UTAH's now_ns
    await engine.reload()
    assert (await engine.evaluate(SALE_IN_UTAH)).reasons == ("allowed.consent",)
    _add_gpc_state(root, "US-UT", since="2025-06-15")  # the day of its now_ns
    await engine.reload()
    assert (await engine.evaluate(SALE_IN_UTAH)).reasons == ("denied.gpc",)


@pytest.mark.parametrize(
    "effect",
    [["US-CA", "US-UT"], {"US-CA": "2020-8-14"}, {"US-CA": "2020-02-30"}, {"US-CA": None}],
    ids=["the-old-list", "not-iso", "not-a-day", "no-day"],
)
async def test_unreadable_gpc_days_are_refused(
    root: Path, engine: InProcessOpaEngine, effect: object
) -> None:
    before = engine.revision
    path = root / "data" / "jurisdictions.json"
    doc = json.loads(path.read_text())
    doc["value"]["gpc_legal_effect"] = effect
    path.write_text(json.dumps(doc))
    with pytest.raises(PolicyLoadError, match="test_gpc_legal_effect"):
        await engine.reload()
    assert engine.revision == before


async def test_server_reload_refuses_a_broken_policy(root: Path) -> None:
    with LocalOpaServer() as server:
        async with OpaServerEngine(server.url, PolicyBundle.load(root)) as engine:
            before = engine.revision
            first = await engine.evaluate(SALE_IN_UTAH)
            pushes = len(server.requests)
            _edit(root, "consent/decision.rego", BROKEN["syntax"])
            with pytest.raises(PolicyLoadError):
                await engine.reload()
            assert len(server.requests) == pushes  # checked before anything was sent
            assert engine.revision == before
            assert await engine.evaluate(SALE_IN_UTAH) == first


async def test_server_reload_pushes_new_data(root: Path) -> None:
    with LocalOpaServer() as server:
        async with OpaServerEngine(server.url, PolicyBundle.load(root)) as engine:
            _add_gpc_state(root, "US-UT")
            revision = await engine.reload()
            decision = await engine.evaluate(SALE_IN_UTAH)
            assert decision.reasons == ("denied.gpc",)
            assert decision.revision == revision


@pytest.mark.unit
def test_revision_changes_with_data(root: Path) -> None:
    before = PolicyBundle.load(root).revision
    assert before.startswith("sha256:")
    assert len(before) == len("sha256:") + 64
    assert PolicyBundle.load(root).revision == before  # deterministic
    _add_gpc_state(root, "US-UT")
    assert PolicyBundle.load(root).revision != before


@pytest.mark.unit
def test_revision_covers_policies_and_tests_but_not_cases(root: Path) -> None:
    before = PolicyBundle.load(root).revision
    (root / "cases" / "extra.json").write_text("[]")
    (root / "schemas" / "input.json").write_text("{}")
    assert PolicyBundle.load(root).revision == before
    _edit(root, "consent/decision_test.rego", lambda s: s + "\n# comment\n")
    after_test = PolicyBundle.load(root).revision
    assert after_test != before
    _edit(root, "consent/decision.rego", lambda s: s + "\n# comment\n")
    assert PolicyBundle.load(root).revision not in {before, after_test}


@pytest.mark.unit
def test_revision_is_unambiguous() -> None:
    assert bundle_revision({"a": b"bc"}) != bundle_revision({"ab": b"c"})
    assert bundle_revision({"a": b"x", "b": b"y"}) == bundle_revision({"b": b"y", "a": b"x"})


@pytest.mark.unit
def test_bundle_separates_tests_and_maps_data_paths(root: Path) -> None:
    bundle = PolicyBundle.load(root)
    assert set(bundle.modules) == {"consent/decision.rego"}
    assert set(bundle.test_modules) == {"consent/decision_test.rego"}
    assert set(bundle.data) == {"consent.actions", "consent.jurisdictions", "consent.reasons"}
    assert "email.marketing" in bundle.data["consent.actions"]


@pytest.mark.unit
def test_duplicate_data_path_is_refused(root: Path) -> None:
    shutil.copy(root / "data" / "actions.json", root / "data" / "actions2.json")
    with pytest.raises(PolicyLoadError, match="defined twice"):
        PolicyBundle.load(root)
