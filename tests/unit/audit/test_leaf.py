# Copyright 2026 The consent authors
# SPDX-License-Identifier: Apache-2.0
"""Canonical leaf encoding: golden bytes per kind, RFC 8785 equality, strict validation."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.audit.leaf import (
    KINDS,
    MAX_SAFE_INT,
    AdminChanged,
    AudienceUsed,
    ConsentRecorded,
    DecisionMade,
    Leaf,
    LeafError,
    PreferenceChoice,
    PreferenceRecorded,
    PurposeChoice,
    SubjectErased,
    SubjectExported,
    SubjectLinked,
    decode_leaf,
    encode_leaf,
)
from consent.audit.merkle import leaf_hash

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).resolve().parents[2] / "vectors" / "audit" / "leaves.json"
REGENERATE = os.environ.get("CONSENT_REGEN_VECTORS") == "1"

WHEN = dt.datetime(2026, 3, 1, 12, 30, 5, 250000, tzinfo=dt.UTC)
LOG = "consent.example.com/audit/tenant-1/2026"
TOKEN = base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode()
OTHER_TOKEN = base64.urlsafe_b64encode(bytes(range(32, 64))).rstrip(b"=").decode()
DIGEST = hashlib.sha256(b"evidence").hexdigest()
ENVELOPE: dict[str, Any] = {
    "event_uuid": uuid.UUID("0195f3c2-7a1e-7cc0-9d7e-3f2a1b0c4d5e"),
    "occurred_at": WHEN,
    "log": LOG,
}

EXAMPLES: list[Leaf] = [
    ConsentRecorded(
        **ENVELOPE,
        subject_token=TOKEN,
        choices=(
            PurposeChoice(purpose="analytics", choice="withdrawn"),
            PurposeChoice(purpose="marketing.email", choice="granted"),
        ),
        notice_version_id="privacy-notice/v7/en",
        notice_hash=hashlib.sha256(b"notice").hexdigest(),
        evidence_digest=DIGEST,
    ),
    PreferenceRecorded(
        **ENVELOPE,
        subject_token=TOKEN,
        preferences=(PreferenceChoice(kind="frequency", key="email", value="weekly"),),
        evidence_digest=DIGEST,
    ),
    DecisionMade(
        **ENVELOPE,
        decision_id=uuid.UUID("0195f3c2-7a1e-7cc0-9d7e-000000000001"),
        subject_token=TOKEN,
        requester="crm-sync",
        action="send.email",
        allow=False,
        reasons=("consent.missing", "purpose.marketing.email"),
        policy_revision="bundle-2026-03-01",
        state_digest=hashlib.sha256(b"state").hexdigest(),
    ),
    SubjectLinked(**ENVELOPE, subject_token=TOKEN, linked_subject_token=OTHER_TOKEN),
    SubjectErased(**ENVELOPE, subject_token=TOKEN),
    AdminChanged(
        **ENVELOPE,
        actor_ref="admin-key-3",
        entity="purpose",
        entity_id="marketing.email",
        operation="update",
        change_digest=hashlib.sha256(b"change").hexdigest(),
    ),
    AudienceUsed(
        **ENVELOPE,
        run_id=uuid.UUID("0195f3c2-7a1e-7cc0-9d7e-000000000002"),
        requester="esp-nightly",
        action="email.marketing",
        allow=True,
        reasons=("allowed.consent",),
        policy_revision="bundle-2026-03-01",
        state_digest=hashlib.sha256(b"shape").hexdigest(),
        members=1200,
        members_digest=hashlib.sha256(b"members").hexdigest(),
    ),
    SubjectExported(**ENVELOPE, subject_token=TOKEN, actor_ref="api-key:k3Yid0000001"),
]


def _kind(leaf: Leaf) -> str:
    return str(type(leaf).__struct_config__.tag)


def _golden() -> list[dict[str, Any]]:
    return [
        {
            "kind": _kind(leaf),
            "v": leaf.v,
            "leaf": encode_leaf(leaf).decode("utf-8"),
            "leaf_hash": leaf_hash(encode_leaf(leaf)).hex(),
        }
        for leaf in EXAMPLES
    ]


if REGENERATE:
    GOLDEN.write_text(json.dumps(_golden(), indent=1, ensure_ascii=False) + "\n", "utf-8")
FROZEN: list[dict[str, Any]] = json.loads(GOLDEN.read_text("utf-8"))


def test_every_kind_has_a_golden_vector() -> None:
    assert sorted(entry["kind"] for entry in FROZEN) == sorted(KINDS)


@pytest.mark.parametrize(
    ("leaf", "entry"),
    list(zip(EXAMPLES, FROZEN, strict=True)),
    ids=[_kind(leaf) for leaf in EXAMPLES],
)
def test_golden_bytes(leaf: Leaf, entry: dict[str, Any]) -> None:
    data = entry["leaf"].encode("utf-8")
    assert encode_leaf(leaf) == data
    assert leaf_hash(data).hex() == entry["leaf_hash"]
    assert decode_leaf(data) == leaf


def test_bytes_are_sorted_compact_json_with_kind_tag() -> None:
    data = encode_leaf(EXAMPLES[4])
    assert data == (
        b'{"event_uuid":"0195f3c2-7a1e-7cc0-9d7e-3f2a1b0c4d5e","kind":"subject.erased",'
        b'"log":"consent.example.com/audit/tenant-1/2026",'
        b'"occurred_at":"2026-03-01T12:30:05.250000Z",'
        b'"subject_token":"' + TOKEN.encode() + b'","v":1}'
    )


# --- RFC 8785 equality ---------------------------------------------------------------------------

tokens = st.binary(min_size=32, max_size=32).map(
    lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
)
digests = st.binary(min_size=32, max_size=32).map(lambda b: b.hex())
keys = st.text(min_size=1, max_size=30)
texts = st.text(max_size=30)
envelope = {
    "v": st.integers(min_value=1, max_value=MAX_SAFE_INT),
    "event_uuid": st.uuids(),
    "occurred_at": st.datetimes(
        min_value=dt.datetime(1970, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=dt.datetime(9999, 12, 31),  # noqa: DTZ001
        timezones=st.just(dt.UTC),
    ),
    "log": keys,
}
leaves = st.one_of(
    st.builds(
        ConsentRecorded,
        **envelope,
        subject_token=tokens,
        choices=st.lists(
            st.builds(
                PurposeChoice,
                purpose=keys,
                choice=st.sampled_from(["granted", "denied", "withdrawn"]),
            )
        ).map(tuple),
        notice_version_id=keys,
        notice_hash=digests,
        evidence_digest=digests,
    ),
    st.builds(
        PreferenceRecorded,
        **envelope,
        subject_token=tokens,
        preferences=st.lists(st.builds(PreferenceChoice, key=keys, value=texts)).map(tuple),
        evidence_digest=digests,
    ),
    st.builds(
        DecisionMade,
        **envelope,
        decision_id=st.uuids(),
        subject_token=tokens,
        requester=keys,
        action=keys,
        allow=st.booleans(),
        reasons=st.lists(texts, max_size=5).map(tuple),
        policy_revision=keys,
        state_digest=digests,
    ),
    st.builds(SubjectLinked, **envelope, subject_token=tokens, linked_subject_token=tokens),
    st.builds(SubjectErased, **envelope, subject_token=tokens),
    st.builds(SubjectExported, **envelope, subject_token=tokens, actor_ref=keys),
    st.builds(
        AdminChanged,
        **envelope,
        actor_ref=keys,
        entity=keys,
        entity_id=keys,
        operation=st.sampled_from(["create", "update", "delete"]),
        change_digest=digests,
    ),
)


@settings(max_examples=300, deadline=None)
@given(leaves)
def test_msgspec_sorted_equals_rfc8785(leaf: Leaf) -> None:
    data = encode_leaf(leaf)
    assert data == rfc8785.dumps(msgspec.to_builtins(leaf))
    assert decode_leaf(data) == leaf


# --- Rejections ----------------------------------------------------------------------------------


def _erased(**changes: Any) -> SubjectErased:
    erased = EXAMPLES[4]
    assert isinstance(erased, SubjectErased)
    return msgspec.structs.replace(erased, **changes)


@pytest.mark.parametrize(
    "leaf",
    [
        _erased(occurred_at=dt.datetime(2026, 1, 1)),  # noqa: DTZ001 - the point of the test
        _erased(occurred_at=WHEN.astimezone(dt.timezone(dt.timedelta(hours=2)))),
        _erased(v=2**53),
        _erased(v=-(2**60)),
        _erased(v=1.0),
        _erased(v=0),
        _erased(subject_token="not-a-token"),
        _erased(event_uuid=str(ENVELOPE["event_uuid"])),
        _erased(log={"nested": "dict"}),
        _erased(log=""),
    ],
    ids=[
        "naive-datetime",
        "non-utc-offset",
        "int-2**53",
        "int-below-range",
        "float",
        "version-0",
        "bad-token",
        "uuid-as-str",
        "dict",
        "empty-key",
    ],
)
def test_encode_rejects(leaf: SubjectErased) -> None:
    with pytest.raises(LeafError):
        encode_leaf(leaf)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.replace(b'"v":1', b'"v":1.0'),
        lambda d: d.replace(b'"v":1', b'"v":1,"extra":true'),
        lambda d: d.replace(b"Z", b"+00:00"),
        lambda d: d.replace(b",", b", "),
        lambda d: d.replace(b'"kind":"subject.erased"', b'"kind":"subject.forgotten"'),
        lambda d: b'{"v":1,' + d[1:].replace(b',"v":1', b""),  # keys out of order
        lambda d: d + b"\n",
    ],
    ids=[
        "float",
        "unknown-field",
        "offset-not-Z",
        "whitespace",
        "unknown-kind",
        "unsorted",
        "trailing-newline",
    ],
)
def test_decode_rejects_non_canonical(mutate: Any) -> None:
    data = encode_leaf(EXAMPLES[4])
    mutated = mutate(data)
    assert mutated != data
    with pytest.raises(LeafError):
        decode_leaf(mutated)
