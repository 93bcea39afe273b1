"""In-process OPA and an OPA server (local stand-in) give identical decisions; both fail closed."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.decisions.engine import (
    CachedPolicyEngine,
    DecisionResult,
    InProcessOpaEngine,
    OpaServerEngine,
    PolicyBundle,
    PolicyLoadError,
    PolicyUnavailable,
    check_bundle,
    open_engine,
)
from consent.decisions.policy_tests import load_cases
from tests.support.opa_server import LocalOpaServer

pytestmark = pytest.mark.policy

NOW = 1_750_000_000_000_000_000
DAY = 86_400_000_000_000
PURPOSE_KEYS = [
    "essential",
    "analytics",
    "personalization",
    "advertising",
    "email_marketing",
    "sms_marketing",
    "data_sharing",
    "data_sale",
    "offline_join",
]
ACTIONS = [
    "email.marketing",
    "sms.marketing",
    "ads.retarget",
    "ads.targeted",
    "web.analytics",
    "personalize.recommendations",
    "data.share.partner",
    "data.sell.partner",
    "profile.join_offline",
    "service.essential",
    "unknown.action",
]
JURISDICTIONS = [None, "DE", "FR", "GB", "IT", "US", "US-CA", "US-CO", "US-VA", "XX"]

purpose_key = st.sampled_from(PURPOSE_KEYS)
purpose = st.fixed_dictionaries(
    {
        "legal_basis": st.sampled_from(
            ["consent", "consent", "legitimate_interest", "contract", "legal_obligation"]
        ),
        "max_age_ns": st.none() | st.integers(0, 60 * DAY),
        "strictly_necessary": st.booleans(),
        "material_version": st.integers(1, 3),
    }
)
consent = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["granted", "granted", "denied", "withdrawn"]),
        "recorded_at_ns": st.integers(NOW - 90 * DAY, NOW),
        "material_version": st.integers(1, 3),
    }
)
subject = st.fixed_dictionaries(
    {
        "known": st.booleans(),
        "jurisdiction": st.sampled_from(JURISDICTIONS),
        "age": st.none() | st.integers(0, 40),
        "parental_consent": st.booleans(),
        "parental_consent_third_parties": st.booleans(),
        "gpc": st.booleans(),
        "limit_sensitive": st.booleans(),
        "objections": st.lists(purpose_key, unique=True, max_size=3),
    }
)
inputs = st.fixed_dictionaries(
    {
        "now_ns": st.just(NOW) | st.integers(0, 2**62),
        "action": st.sampled_from(ACTIONS),
        "subject": subject,
        "purposes": st.dictionaries(purpose_key, purpose, max_size=9),
        "consents": st.dictionaries(purpose_key, consent, max_size=9),
    }
)


def _check_invariants(decision: DecisionResult, input_doc: dict[str, Any]) -> None:
    denials = [r for r in decision.reasons if r.startswith("denied.")]
    assert decision.allow is (not denials)
    assert list(decision.reasons) == sorted(set(decision.reasons))
    assert decision.reasons, "every decision gives a reason"
    if not input_doc["subject"]["known"]:
        assert not decision.allow


async def _agree(
    inprocess: InProcessOpaEngine, server: OpaServerEngine, input_doc: dict[str, Any]
) -> DecisionResult:
    local = await inprocess.evaluate(input_doc)
    remote = await server.evaluate(input_doc)
    assert local == remote
    _check_invariants(local, input_doc)
    return local


async def test_engines_agree_on_every_case(
    inprocess_engine: InProcessOpaEngine, server_engine: OpaServerEngine, policy_root: Path
) -> None:
    assert inprocess_engine.revision == server_engine.revision
    for case_id, case in load_cases(policy_root):
        decision = await _agree(inprocess_engine, server_engine, case.input)
        assert (decision.allow, decision.reasons) == (case.expect.allow, case.expect.reasons), (
            case_id
        )


@settings(max_examples=300, deadline=None)
@given(input_doc=inputs)
async def test_engines_agree_on_generated_inputs(
    inprocess_engine: InProcessOpaEngine, server_engine: OpaServerEngine, input_doc: dict[str, Any]
) -> None:
    await _agree(inprocess_engine, server_engine, input_doc)


async def test_open_engine_picks_in_process_or_server(
    policy_root: Path, opa_server: LocalOpaServer
) -> None:
    local = await open_engine(policy_root, pool_size=1)
    remote = await open_engine(policy_root, opa_url=opa_server.url, cache_size=0)
    try:
        assert isinstance(local, CachedPolicyEngine)
        assert isinstance(local.inner, InProcessOpaEngine)
        assert isinstance(remote, OpaServerEngine)
        assert await local.evaluate(SAMPLE) == await remote.evaluate(SAMPLE)
    finally:
        await local.aclose()
        await remote.aclose()


# --- fail closed ---------------------------------------------------------------------------------

SAMPLE = {
    "now_ns": NOW,
    "action": "service.essential",
    "subject": {
        "known": True,
        "jurisdiction": None,
        "age": None,
        "parental_consent": False,
        "parental_consent_third_parties": False,
        "gpc": False,
        "limit_sensitive": False,
        "objections": [],
    },
    "purposes": {
        "essential": {
            "legal_basis": "contract",
            "max_age_ns": None,
            "strictly_necessary": True,
            "material_version": 1,
        }
    },
    "consents": {},
}


def _bundle_with(bundle: PolicyBundle, source: str) -> PolicyBundle:
    return PolicyBundle(
        root=bundle.root,
        modules={"consent/decision.rego": source},
        test_modules={},
        data=bundle.data,
        revision="sha256:test",
    )


async def test_stopped_server_is_unavailable(bundle: PolicyBundle) -> None:
    server = LocalOpaServer().start()
    async with OpaServerEngine(server.url, bundle, timeout=1.0) as engine:
        assert (await engine.evaluate(SAMPLE)).allow
        server.stop()
        with pytest.raises(PolicyUnavailable):
            await engine.evaluate(SAMPLE)


async def test_slow_server_times_out(bundle: PolicyBundle) -> None:
    with LocalOpaServer() as server:
        async with OpaServerEngine(server.url, bundle, timeout=0.2) as engine:
            server.delay = 1.0
            with pytest.raises(PolicyUnavailable):
                await engine.evaluate(SAMPLE)


async def test_undefined_result_on_the_server_is_unavailable(bundle: PolicyBundle) -> None:
    with LocalOpaServer() as server:
        async with OpaServerEngine(server.url, bundle) as engine:
            request = urllib.request.Request(  # noqa: S310 - local test server
                f"{server.url}/v1/policies/consent/decision.rego", method="DELETE"
            )
            with urllib.request.urlopen(request) as response:  # noqa: S310
                assert response.status == 200
            with pytest.raises(PolicyUnavailable, match="undefined"):
                await engine.evaluate(SAMPLE)


async def test_unreachable_server_refuses_to_start(bundle: PolicyBundle) -> None:
    server = LocalOpaServer().start()
    url = server.url
    server.stop()
    with pytest.raises(PolicyLoadError):
        async with OpaServerEngine(url, bundle, timeout=0.5):
            pass


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("package consent.decision\n\nresult := 1 if false\n", "undefined"),
        ('package consent.decision\n\nresult := {"allow": "yes"}\n', "malformed"),
        (
            (
                'package consent.decision\n\nresult := {"allow": true, "reasons": ["denied.gpc"],'
                ' "purposes": {}}\n'
            ),
            "allow with a denial",
        ),
    ],
    ids=["undefined", "wrong type", "allow with denial"],
)
async def test_inprocess_bad_results_are_unavailable(
    bundle: PolicyBundle, source: str, match: str
) -> None:
    engine = InProcessOpaEngine(_bundle_with(bundle, source), pool_size=1, check=False)
    try:
        with pytest.raises(PolicyUnavailable, match=match):
            await engine.evaluate(SAMPLE)
    finally:
        await engine.aclose()


async def test_inprocess_timeout_is_unavailable(bundle: PolicyBundle) -> None:
    slow = (
        "package consent.decision\n\n"
        'result := {"allow": false, "reasons": ["denied.slow"], "purposes": {}} if {\n'
        "\tcount([x | some x in numbers.range(1, 200000); x % 7 == 0]) > 0\n}\n"
    )
    engine = InProcessOpaEngine(_bundle_with(bundle, slow), pool_size=1, timeout=0.05, check=False)
    try:
        with pytest.raises(PolicyUnavailable, match="timed out"):
            await engine.evaluate(SAMPLE)
    finally:
        await engine.aclose()


def test_a_policy_that_allows_an_empty_input_is_refused(bundle: PolicyBundle) -> None:
    fails_open = (
        'package consent.decision\n\nresult := {"allow": true, "reasons": [], "purposes": {}}\n'
    )
    with pytest.raises(PolicyLoadError, match="fail closed"):
        check_bundle(_bundle_with(bundle, fails_open))
