"""Every rule of the policy, end to end: consents recorded through the API, decisions asked over
HTTP, on real PostgreSQL, with the in-process OPA engine and with an OPA server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from consent.decisions.engine import PolicyBundle, default_policy_root
from consent.decisions.reasons import reason_codes
from tests.conftest import Tenant
from tests.integration.decisions.conftest import Ledger

pytestmark = [pytest.mark.integration, pytest.mark.policy]

# Every reason code the shipped policy can give (string literals of its serving modules).
POLICY_CODES = reason_codes(PolicyBundle.load(default_policy_root()))
# A second tenant whose catalogue uses the other legal bases (and lacks sms_marketing).
ALT_PURPOSES: dict[str, tuple[str, int | None]] = {
    "data_sharing": ("legitimate_interest", None),
    "email_marketing": ("legal_obligation", None),
    "personalization": ("consent", 395),
}


@dataclass(frozen=True)
class Step:
    choices: dict[str, str] = field(default_factory=dict)
    days_ago: float | None = None
    publish: str | None = None  # publish a new notice version ("material"/"editorial") instead


@dataclass(frozen=True)
class Scenario:
    name: str
    action: str
    steps: tuple[Step, ...]
    reasons: tuple[str, ...]
    context: dict[str, Any] = field(default_factory=dict)
    purposes: dict[str, str] | None = None
    alt: bool = False
    known: bool = True

    @property
    def allow(self) -> bool:
        """Allowed exactly when every reason is a grant (the policy's contract)."""
        return all(code.startswith("allowed.") for code in self.reasons)


def granted(*purposes: str, days_ago: float | None = None) -> Step:
    return Step(dict.fromkeys(purposes, "granted"), days_ago)


DE = {"jurisdiction": "DE", "age": 40}
CA = {"jurisdiction": "US-CA", "age": 40}

SCENARIOS = [
    Scenario(
        "consent granted",
        "email.marketing",
        (granted("email_marketing"),),
        ("allowed.consent",),
        DE,
        {"email_marketing": "allowed.consent"},
    ),
    Scenario(
        "no consent",
        "email.marketing",
        (granted("sms_marketing"),),
        ("denied.no_consent",),
        DE,
        {"email_marketing": "denied.no_consent"},
    ),
    Scenario(
        "consent refused",
        "sms.marketing",
        (Step({"sms_marketing": "denied"}),),
        ("denied.no_consent",),
        DE,
    ),
    Scenario(
        "consent withdrawn",
        "email.marketing",
        (granted("email_marketing"), Step({"email_marketing": "withdrawn"})),
        ("denied.withdrawn",),
        DE,
    ),
    Scenario(
        "withdrawal then a newer grant",
        "email.marketing",
        (Step({"email_marketing": "withdrawn"}, 2), granted("email_marketing", days_ago=1)),
        ("allowed.consent",),
        DE,
    ),
    Scenario(
        "within maximum age",
        "data.sell.partner",
        (granted("data_sale", days_ago=29),),
        ("allowed.consent",),
        DE,
    ),
    Scenario(
        "older than maximum age",
        "data.sell.partner",
        (granted("data_sale", days_ago=31),),
        ("denied.expired",),
        DE,
        {"data_sale": "denied.expired"},
    ),
    Scenario(
        "no maximum age",
        "data.share.partner",
        (granted("data_sharing", days_ago=3000),),
        ("allowed.consent",),
        DE,
    ),
    Scenario(
        "stale after a material notice change",
        "email.marketing",
        (granted("email_marketing"), Step(publish="material")),
        ("denied.stale",),
        DE,
        {"email_marketing": "denied.stale"},
    ),
    Scenario(
        "current after an editorial change",
        "email.marketing",
        (granted("email_marketing"), Step(publish="editorial")),
        ("allowed.consent",),
        DE,
    ),
    Scenario(
        "granted again under the new notice",
        "email.marketing",
        (granted("email_marketing"), Step(publish="material"), granted("email_marketing")),
        ("allowed.consent",),
        DE,
    ),
    Scenario(
        "every purpose of the action is needed",
        "ads.retarget",
        (granted("advertising"), Step({"data_sharing": "withdrawn"})),
        ("denied.withdrawn",),
        DE,
        {"advertising": "allowed.consent", "data_sharing": "denied.withdrawn"},
    ),
    Scenario("legitimate interest", "web.analytics", (), ("allowed.legitimate_interest",), DE),
    Scenario(
        "objection to legitimate interest",
        "web.analytics",
        (Step({"analytics": "denied"}),),
        ("denied.objected",),
        DE,
    ),
    Scenario("strictly necessary", "service.essential", (), ("allowed.strictly_necessary",), DE),
    Scenario(
        "contract and consent",
        "profile.join_offline",
        (granted("personalization"),),
        ("allowed.consent", "allowed.contract"),
        DE,
    ),
    Scenario(
        "limit use of sensitive data",
        "profile.join_offline",
        (granted("personalization"),),
        ("denied.sensitive_limited",),
        {**DE, "limit_sensitive": True},
    ),
    Scenario(
        "legal obligation", "email.marketing", (), ("allowed.legal_obligation",), DE, alt=True
    ),
    Scenario(
        "GPC where it has legal effect",
        "ads.targeted",
        (granted("advertising"),),
        ("denied.gpc",),
        {**CA, "gpc": True},
    ),
    Scenario(
        "GPC opts out of sharing",
        "data.share.partner",
        (granted("data_sharing"),),
        ("denied.gpc",),
        {**CA, "gpc": True},
    ),
    Scenario(
        "GPC without legal effect",
        "ads.targeted",
        (granted("advertising"),),
        ("allowed.consent",),
        {**DE, "gpc": True},
    ),
    Scenario(
        "child without parental consent",
        "personalize.recommendations",
        (granted("personalization"),),
        ("denied.child",),
        {"jurisdiction": "DE", "age": 15},
    ),
    Scenario(
        "child with parental consent",
        "personalize.recommendations",
        (granted("personalization"),),
        ("allowed.consent",),
        {"jurisdiction": "DE", "age": 15, "parental_consent": True},
    ),
    Scenario(
        "digital consent age of the country",
        "personalize.recommendations",
        (granted("personalization"),),
        ("allowed.consent",),
        {"jurisdiction": "FR", "age": 15},
    ),
    Scenario(
        "minor must opt in to sharing",
        "data.share.partner",
        (),
        ("denied.child",),
        {"jurisdiction": "US-CA", "age": 15},
        alt=True,
    ),
    Scenario(
        "adult shares on legitimate interest",
        "data.share.partner",
        (),
        ("allowed.legitimate_interest",),
        CA,
        alt=True,
    ),
    Scenario(
        "unknown action",
        "teleport.customer",
        (granted("email_marketing"),),
        ("denied.unknown_action",),
        DE,
    ),
    Scenario(
        "purpose missing from the catalogue",
        "sms.marketing",
        (),
        ("denied.unknown_purpose",),
        DE,
        alt=True,
    ),
    Scenario(
        "unknown subject",
        "email.marketing",
        (),
        ("denied.no_consent", "denied.unknown_subject"),
        DE,
        known=False,
    ),
]


@pytest.mark.unit
def test_scenarios_cover_every_reason_code() -> None:
    seen = {code for s in SCENARIOS for code in s.reasons}
    assert seen == POLICY_CODES
    assert len({s.name for s in SCENARIOS}) == len(SCENARIOS)


@pytest.fixture
async def alt_ledger(dclient: Any, other_tenant: Tenant) -> Ledger:
    ledger = Ledger(dclient, other_tenant)
    await ledger.setup(ALT_PURPOSES)
    return ledger


async def _play(ledger: Ledger, email: str, steps: tuple[Step, ...]) -> None:
    for step in steps:
        if step.publish:
            await ledger.publish(step.publish)
        else:
            await ledger.consent(email, step.choices, occurred_days_ago=step.days_ago)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_rule(
    scenario: Scenario, ledger: Ledger, alt_ledger: Ledger, engine_kind: str
) -> None:
    target = alt_ledger if scenario.alt else ledger
    email = "subject@example.com"
    if scenario.known:
        # Every subject exists in the ledger: a choice for an unrelated purpose at least.
        await target.consent(email, {"personalization": "denied"}, occurred_days_ago=5)
    await _play(target, email, scenario.steps)
    got = await target.decide(email, scenario.action, **scenario.context)
    assert (got["allow"], tuple(got["reasons"])) == (scenario.allow, scenario.reasons), got
    if scenario.purposes is not None:
        assert got["purposes"] == scenario.purposes
    assert got["policy_revision"].startswith("sha256:")
    assert (got["subject_id"] is not None) is scenario.known
    logged = await target.client.get(f"/v1/decisions/{got['decision_id']}", headers=target.h)
    assert logged.status_code == 200
    body = logged.json()
    assert (body["allow"], tuple(body["reasons"])) == (scenario.allow, scenario.reasons)
    assert body["input"]["subject"]["known"] is scenario.known
    assert body["input"]["action"] == scenario.action
