"""The decision cache's key: normalised inputs decide exactly as the inputs they come from (real
OPA, random inputs with every boundary), and a policy for which that fails is refused."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.decisions.engine import (
    CompiledPolicy,
    ConsentState,
    DecisionInput,
    PolicyBundle,
    PolicyLoadError,
    PurposeDefinition,
    SubjectState,
    canonical_input,
    check_bundle,
    default_policy_root,
)
from consent.decisions.schemas import DecisionContext
from consent.decisions.service import (
    NS_PER_DAY,
    Catalogue,
    SubjectRow,
    build_input,
    normalize_identifier,
    ns_to_datetime,
    state_key,
    uuid7,
)
from consent.decisions.shape import (
    T0,
    check_normalisation,
    gpc_days,
    needed_purposes,
    normalise,
)
from consent.subjects.identifiers import InvalidIdentifier, normalize

BUNDLE = PolicyBundle.load(default_policy_root())
GPC = gpc_days(BUNDLE)
ACTIONS = [*BUNDLE.data["consent.actions"], "teleport.customer"]
KEYS = sorted({p for a in BUNDLE.data["consent.actions"].values() for p in a["purposes"]})
NOW = 1_750_000_000_000_000_000


@pytest.fixture(scope="module")
def policy() -> Iterator[CompiledPolicy]:
    compiled = CompiledPolicy(BUNDLE)
    yield compiled
    compiled.close()


purposes = st.builds(
    PurposeDefinition,
    legal_basis=st.sampled_from(["consent", "legitimate_interest", "contract", "legal_obligation"]),
    max_age_ns=st.one_of(st.none(), st.integers(1, 3650).map(lambda d: d * NS_PER_DAY)),
    strictly_necessary=st.booleans(),
    material_version=st.integers(0, 3),
)


@st.composite
def raw_inputs(draw: st.DrawFn) -> DecisionInput:
    now = draw(st.integers(NOW - 10**17, NOW + 10**17))
    catalogue = draw(st.dictionaries(st.sampled_from([*KEYS, "other"]), purposes, max_size=6))
    consents = {}
    for key in draw(st.lists(st.sampled_from([*KEYS, "other"]), max_size=6, unique=True)):
        purpose = catalogue.get(key)
        age = purpose.max_age_ns if purpose and purpose.max_age_ns else 395 * NS_PER_DAY
        offset = draw(
            st.one_of(
                st.sampled_from([age - 1, age, age + 1, 0, -1]),  # on and around the boundary
                st.integers(-5 * NS_PER_DAY, 4000 * NS_PER_DAY),
            )
        )
        consents[key] = ConsentState(
            status=draw(st.sampled_from(["granted", "denied", "withdrawn"])),
            recorded_at_ns=max(0, now - offset),
            material_version=draw(st.integers(0, 4)),
        )
    subject = SubjectState(
        known=draw(st.booleans()),
        jurisdiction=draw(
            st.sampled_from([None, "DE", "FR", "GB", "US", "US-CA", "US-UT", "US-NJ", "US-OR"])
        ),
        age=draw(st.sampled_from([None, 0, 12, 13, 14, 15, 16, 17, 40])),
        parental_consent=draw(st.booleans()),
        parental_consent_third_parties=draw(st.booleans()),
        gpc=draw(st.booleans()),
        limit_sensitive=draw(st.booleans()),
        objections=tuple(draw(st.lists(st.sampled_from([*KEYS, "other"]), max_size=3))),
    )
    return DecisionInput(
        now_ns=now,
        action=draw(st.sampled_from(ACTIONS)),
        subject=subject,
        purposes=catalogue,
        consents=consents,
    )


def _decide(policy: CompiledPolicy, value: DecisionInput) -> Any:
    result = policy.decide(msgspec.to_builtins(value))
    return result.allow, result.reasons, result.purposes


@pytest.mark.policy
@settings(max_examples=600, deadline=None)
@given(raw=raw_inputs())
def test_normalised_inputs_decide_as_the_raw_ones(
    policy: CompiledPolicy, raw: DecisionInput
) -> None:
    normal = normalise(raw, needed_purposes(BUNDLE, raw.action), gpc=GPC)
    assert normal.now_ns == T0 or normal is raw  # raw: GPC's legal effect depends on the time
    assert _decide(policy, normal) == _decide(policy, raw)
    # Idempotent: the key of a key is itself.
    assert canonical_input(normalise(normal, needed_purposes(BUNDLE, raw.action), gpc=GPC)) == (
        canonical_input(normal)
    )


@pytest.mark.unit
def test_subjects_with_the_same_state_share_a_key() -> None:
    catalogue = {
        "email_marketing": PurposeDefinition(
            legal_basis="consent",
            max_age_ns=395 * NS_PER_DAY,
            strictly_necessary=False,
            material_version=3,
        ),
        "analytics": PurposeDefinition(
            legal_basis="consent", max_age_ns=None, strictly_necessary=False, material_version=1
        ),
    }

    def subject(days_ago: int, material: int, other: str) -> DecisionInput:
        return DecisionInput(
            now_ns=NOW + days_ago,  # another request, another clock reading
            action="email.marketing",
            subject=SubjectState(known=True, jurisdiction="DE", objections=("analytics",)),
            purposes=catalogue,
            consents={
                "email_marketing": ConsentState(
                    status="granted",
                    recorded_at_ns=NOW - days_ago * NS_PER_DAY,
                    material_version=material,
                ),
                "analytics": ConsentState(status=other, recorded_at_ns=1, material_version=0),  # type: ignore[arg-type]
            },
        )

    needed = needed_purposes(BUNDLE, "email.marketing")

    def key(value: DecisionInput) -> bytes:
        return canonical_input(normalise(value, needed, gpc=GPC))

    keys = {
        key(subject(d, m, o))
        for d in (1, 200, 394)
        for m in (3, 4)
        for o in ("granted", "withdrawn")
    }
    assert len(keys) == 1
    assert key(subject(396, 3, "granted")) not in keys  # expired
    assert key(subject(10, 2, "granted")) not in keys  # stale


@pytest.mark.unit
def test_out_of_range_inputs_are_left_as_they_are() -> None:
    value = DecisionInput(
        now_ns=NOW,
        action="email.marketing",
        subject=SubjectState(known=True),
        purposes={
            "email_marketing": PurposeDefinition(
                legal_basis="consent", max_age_ns=T0, strictly_necessary=False, material_version=1
            )
        },
        consents={},
    )
    assert normalise(value, ("email_marketing",), gpc=GPC) is value


def _gpc_sale(jurisdiction: str | None, now_ns: int, *, gpc: bool = True) -> DecisionInput:
    return DecisionInput(
        now_ns=now_ns,
        action="data.sell.partner",
        subject=SubjectState(known=True, jurisdiction=jurisdiction, gpc=gpc),
        purposes={
            "data_sale": PurposeDefinition(
                legal_basis="consent", max_age_ns=None, strictly_necessary=False, material_version=1
            )
        },
        consents={
            "data_sale": ConsentState(status="granted", recorded_at_ns=1, material_version=1)
        },
    )


def _day_ns(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()) * 1_000_000_000


@pytest.mark.unit
def test_gpc_days_are_read_from_the_bundle() -> None:
    assert GPC is not None
    assert GPC["US-CO"] == _day_ns("2024-07-01")
    assert GPC["US-OR"] == _day_ns("2026-01-01")
    assert "US-VA" not in GPC


@pytest.mark.unit
def test_a_gpc_signal_before_its_day_is_left_as_it_is() -> None:
    """T0 is after every GPC day: normalising an input from before its jurisdiction's day would
    move it past that day and change the decision."""
    needed = ("data_sale",)
    before = _gpc_sale("US-OR", _day_ns("2026-01-01") - 1)
    assert normalise(before, needed, gpc=GPC) is before
    on_the_day = _gpc_sale("US-OR", _day_ns("2026-01-01"))
    assert normalise(on_the_day, needed, gpc=GPC).now_ns == T0
    for other in (
        _gpc_sale("US-OR", 1, gpc=False),  # no signal
        _gpc_sale("US-VA", 1),  # GPC without legal effect
        _gpc_sale(None, 1),
    ):
        assert normalise(other, needed, gpc=GPC).now_ns == T0
    # Unreadable data or day: cannot tell, so left as it is.
    assert normalise(on_the_day, needed, gpc=None) is on_the_day
    assert normalise(on_the_day, needed, gpc={"US-OR": None}) is on_the_day


@pytest.mark.policy
def test_gpc_days_keep_decisions_exact(policy: CompiledPolicy) -> None:
    needed = ("data_sale",)
    for jurisdiction, day in [
        ("US-CO", "2024-07-01"),
        ("US-NJ", "2025-07-15"),
        ("US-MD", "2026-04-01"),
    ]:
        for now_ns in (_day_ns(day) - 1, _day_ns(day)):
            raw = _gpc_sale(jurisdiction, now_ns)
            assert _decide(policy, normalise(raw, needed, gpc=GPC)) == _decide(policy, raw)


@pytest.mark.policy
def test_the_bundled_policy_passes_the_guard() -> None:
    assert check_normalisation(BUNDLE) >= 3 * 30  # every case, three variants each


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(default_policy_root(), target)
    return target


@pytest.mark.policy
def test_a_policy_that_reads_the_clock_differently_is_refused(policy_copy: Path) -> None:
    rego = policy_copy / "consent" / "decision.rego"
    rego.write_text(
        rego.read_text()
        + "\n# A grace period measured from now: not covered by the cache key.\n"
        + 'denials contains "denied.too_late" if input.now_ns > 3000000000000000000\n'
    )
    bundle = PolicyBundle.load(policy_copy)
    check_bundle(bundle)  # its own tests still pass ...
    with pytest.raises(PolicyLoadError, match="normalised input decides"):
        check_normalisation(bundle)  # ... but the cache would change decisions


@pytest.mark.policy
def test_a_policy_that_reads_other_purposes_is_refused(policy_copy: Path) -> None:
    data = policy_copy / "data" / "actions.json"
    doc = json.loads(data.read_text())
    doc["value"]["email.marketing"]["purposes"] = ["email_marketing"]
    data.write_text(json.dumps(doc))
    rego = policy_copy / "consent" / "decision.rego"
    rego.write_text(
        rego.read_text() + '\ndenials contains "denied.objected" if "zz_unrelated" in objections\n'
    )
    with pytest.raises(PolicyLoadError):
        check_normalisation(PolicyBundle.load(policy_copy))


# -- the exact input built from the ledger -----------------------------------------------------


CONTEXT = DecisionContext(requester="t", jurisdiction="DE", age=30)
CATALOGUE = Catalogue(
    {
        "email_marketing": PurposeDefinition(
            legal_basis="consent",
            max_age_ns=NS_PER_DAY,
            strictly_necessary=False,
            material_version=2,
        ),
        "analytics": PurposeDefinition(
            legal_basis="legitimate_interest",
            max_age_ns=None,
            strictly_necessary=False,
            material_version=0,
        ),
    }
)
SUBJECT = UUID(int=1)


@pytest.mark.unit
def test_build_input_measures_a_consent_against_its_own_notice() -> None:
    row = SubjectRow(
        subject_id=SUBJECT,
        purposes=("email_marketing",),
        choices=("granted",),
        recorded_at_us=(1_000,),
        consent_material=(4,),
        notice_material=(5,),  # the notice it was given under is now at material version 5
    )
    value = build_input("email.marketing", NOW, CONTEXT, CATALOGUE, row)
    assert value.purposes["email_marketing"].material_version == 5
    assert value.consents["email_marketing"] == ConsentState(
        status="granted", recorded_at_ns=1_000_000, material_version=4
    )
    assert value.subject.known is True
    assert (value.subject.jurisdiction, value.subject.age) == ("DE", 30)


@pytest.mark.unit
def test_build_input_without_a_notice_is_never_stale_and_objections_come_from_choices() -> None:
    row = SubjectRow(
        subject_id=SUBJECT,
        purposes=("email_marketing", "analytics"),
        choices=("granted", "withdrawn"),
        recorded_at_us=(1, 2),
        consent_material=(None, None),
        notice_material=(None, None),  # imported, or a GPC signal: no notice shown
    )
    value = build_input("email.marketing", NOW, CONTEXT, CATALOGUE, row)
    assert value.consents["email_marketing"].material_version == 2  # == the purpose's
    assert value.subject.objections == ("analytics",)
    unknown = build_input("email.marketing", NOW, CONTEXT, CATALOGUE, SubjectRow(subject_id=None))
    assert unknown.subject.known is False
    assert unknown.consents == {}


@pytest.mark.unit
def test_uuid7_is_time_ordered_and_well_formed() -> None:
    ids = [uuid7(NOW + i * 1_000_000) for i in range(50)]
    assert ids == sorted(ids)
    assert all(u.version == 7 for u in ids)
    assert all(u.variant == "specified in RFC 4122" for u in ids)
    assert len(set(ids)) == 50


@pytest.mark.unit
def test_ns_to_datetime_is_exact_to_the_microsecond() -> None:
    assert ns_to_datetime(1_000_000_000_999_999_999) == datetime(
        2001, 9, 9, 1, 46, 40, 999_999, tzinfo=UTC
    )
    assert ns_to_datetime(0) == datetime(1970, 1, 1, tzinfo=UTC)


def _outcome_of(fn: Any, value: str) -> str:
    try:
        return str(fn("email", value))
    except InvalidIdentifier:
        return "<invalid>"


emails = st.one_of(
    st.text(alphabet="abzAZ09._-+%@ é\t", max_size=40),
    st.builds(
        lambda local, labels: local + "@" + ".".join(labels),
        st.text(alphabet="abz09._-+%A", min_size=1, max_size=70),
        st.lists(st.text(alphabet="az09-", min_size=0, max_size=66), min_size=1, max_size=4),
    ),
)


@pytest.mark.unit
@settings(max_examples=3000, deadline=None)
@given(value=emails)
def test_the_email_shortcut_normalises_as_the_ledger_does(value: str) -> None:
    assert _outcome_of(normalize_identifier, value) == _outcome_of(normalize, value)


@st.composite
def subject_rows(draw: st.DrawFn, keys: list[str]) -> SubjectRow:
    if not draw(st.booleans()):
        return SubjectRow(subject_id=None)
    chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys)))
    return SubjectRow(
        subject_id=UUID(int=draw(st.integers(1, 2**64))),
        purposes=chosen,
        choices=[draw(st.sampled_from(["granted", "denied", "withdrawn"])) for _ in chosen],
        recorded_at_us=[
            draw(st.integers(NOW // 1000 - 800 * NS_PER_DAY // 1000, NOW // 1000 + 10**9))
            for _ in chosen
        ],
        consent_material=[draw(st.one_of(st.none(), st.integers(0, 3))) for _ in chosen],
        notice_material=[draw(st.one_of(st.none(), st.integers(0, 3))) for _ in chosen],
    )


@pytest.mark.unit
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_equal_state_keys_mean_equal_normalised_inputs(data: st.DataObject) -> None:
    """The audience filter's shortcut: members with the same (context, state_key) share the
    normalised input of the first of them, so the key must never merge different ones."""
    action = data.draw(st.sampled_from(ACTIONS))
    needed = needed_purposes(BUNDLE, action)
    keys = [*needed, "other"] if needed else ["other"]
    catalogue = Catalogue(data.draw(st.dictionaries(st.sampled_from(keys), purposes)))
    rows = data.draw(st.lists(subject_rows(keys), min_size=2, max_size=30))
    seen: dict[tuple[object, ...], bytes] = {}
    for row in rows:
        value = build_input(action, NOW, CONTEXT, catalogue, row)
        key = canonical_input(normalise(value, needed, gpc=GPC))
        assert seen.setdefault(state_key(catalogue, NOW, row), key) == key
