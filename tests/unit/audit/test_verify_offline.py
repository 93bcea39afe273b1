# Copyright 2026 The consent authors
# SPDX-License-Identifier: Apache-2.0
"""Offline verification: tlog-proof inclusion, consistency between notes, replay.

Also freezes ``tests/vectors/audit/tlog_proof_fixture.json``, which the JavaScript verifier test
reads. Ed25519 signatures are deterministic, so the generator reproduces the file exactly;
regenerate with ``CONSENT_REGEN_VECTORS=1``.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from consent.audit.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from consent.audit.merkle import MemoryTree, leaf_hash, leaf_hashes
from consent.audit.proof_format import TlogProof, format_consistency_proof, format_tlog_proof
from consent.audit.verify_offline import (
    MalformedInputError,
    replay,
    verify_consistency_notes,
    verify_inclusion_proof,
)

pytestmark = pytest.mark.unit

FIXTURE = Path(__file__).resolve().parents[2] / "vectors" / "audit" / "tlog_proof_fixture.json"
REGENERATE = os.environ.get("CONSENT_REGEN_VECTORS") == "1"
ORIGIN = "consent.example.com/audit/demo/2026"
LOG = NoteSigner.from_seed(ORIGIN, bytes([7]) * 32)
STRANGER = NoteSigner.from_seed(ORIGIN, bytes([8]) * 32)
LEAVES = [
    json.dumps({"event_uuid": f"00000000-0000-4000-8000-{i:012d}", "n": i}).encode()
    for i in range(5000)
]
TREE = MemoryTree(leaf_hashes(LEAVES))


def note(size: int, signer: NoteSigner = LOG, origin: str = ORIGIN) -> str:
    return sign_checkpoint(Checkpoint(origin, size, TREE.root(size)), [signer])


def tlog_proof(index: int, size: int, /, **changes: Any) -> str:
    fields: dict[str, Any] = {
        "index": index,
        "proof": tuple(TREE.inclusion_proof(index, size)),
        "checkpoint": note(size),
    }
    fields.update(changes)
    return format_tlog_proof(TlogProof(**fields))


# --- Inclusion -----------------------------------------------------------------------------------


def test_inclusion_proof_verifies() -> None:
    result = verify_inclusion_proof(tlog_proof(13, 21), LEAVES[13], LOG.vkey)
    assert result.ok, result.reason
    assert result.checkpoint == Checkpoint(ORIGIN, 21, TREE.root(21))
    assert result.index == 13
    assert result.leaf_hash == leaf_hash(LEAVES[13])


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ({"leaf": LEAVES[12]}, "inclusion"),
        ({"leaf": LEAVES[13] + b" "}, "inclusion"),
        ({"index": 12}, "inclusion"),
        ({"index": 21}, "inclusion"),
        ({"proof": tuple(TREE.inclusion_proof(13, 21)[:-1])}, "inclusion"),
        ({"checkpoint": note(21, STRANGER)}, "checkpoint"),
        ({"checkpoint": note(22)}, "inclusion"),
        ({"checkpoint": note(21, origin="consent.example.com/other")}, "checkpoint"),
    ],
)
def test_inclusion_failures_are_reported(args: dict[str, Any], reason: str) -> None:
    args = dict(args)
    leaf = args.pop("leaf", LEAVES[13])
    result = verify_inclusion_proof(tlog_proof(13, 21, **args), leaf, LOG.vkey)
    assert not result.ok
    assert result.reason is not None
    assert result.reason.startswith(reason)


def test_origin_must_match() -> None:
    other = NoteSigner.from_seed("consent.example.com/other", bytes([7]) * 32)
    text = format_tlog_proof(
        TlogProof(
            index=1,
            proof=tuple(TREE.inclusion_proof(1, 4)),
            checkpoint=sign_checkpoint(Checkpoint(ORIGIN, 4, TREE.root(4)), [other]),
        )
    )
    result = verify_inclusion_proof(text, LEAVES[1], other.vkey)
    assert not result.ok
    assert "origin" in (result.reason or "")
    assert verify_inclusion_proof(text, LEAVES[1], other.vkey, origin=ORIGIN).ok


SERVICE = NoteSigner.from_seed("consent.example.com/audit", bytes([9]) * 32)
TENANT_LOG = "consent.example.com/audit/7d3c0f52-0a53-4c37-9d4b-1b0f3f4b1c11"


def tenant_note(size: int, leaves: list[bytes], origin: str = TENANT_LOG) -> str:
    return sign_checkpoint(
        Checkpoint(origin, size, MemoryTree(leaf_hashes(leaves)).root(size)), [SERVICE]
    )


def test_a_tenant_log_verifies_without_naming_its_origin() -> None:
    """The service signs every tenant's log (`<key name>/<tenant id>`) with its one key, and
    every leaf names its log: an auditor who passes no origin checks the log the leaf names."""
    leaves = [json.dumps({"log": TENANT_LOG, "n": i}).encode() for i in range(6)]
    tree = MemoryTree(leaf_hashes(leaves))
    text = format_tlog_proof(
        TlogProof(
            index=4, proof=tuple(tree.inclusion_proof(4, 6)), checkpoint=tenant_note(6, leaves)
        )
    )
    result = verify_inclusion_proof(text, leaves[4], SERVICE.vkey)
    assert result.ok, result.reason
    # A leaf that names another log is not accepted under this one's checkpoint.
    elsewhere = leaves[4].replace(TENANT_LOG.encode(), b"consent.example.com/audit/other")
    refused = verify_inclusion_proof(text, elsewhere, SERVICE.vkey)
    assert not refused.ok
    assert "origin" in (refused.reason or "")
    # A leaf that names no log: a log under the key's name is accepted, another is not.
    plain = [b"plain-%d" % i for i in range(6)]
    plain_tree = MemoryTree(leaf_hashes(plain))
    for origin, ok in ((TENANT_LOG, True), ("consent.example.com/auditor", False)):
        proof = format_tlog_proof(
            TlogProof(
                index=1,
                proof=tuple(plain_tree.inclusion_proof(1, 6)),
                checkpoint=tenant_note(6, plain, origin),
            )
        )
        assert verify_inclusion_proof(proof, plain[1], SERVICE.vkey).ok is ok
    # Consistency: both checkpoints of one log under the key's name.
    consistency = format_consistency_proof(tree.consistency_proof(3, 6))
    assert verify_consistency_notes(
        tenant_note(3, leaves), tenant_note(6, leaves), consistency, SERVICE.vkey
    ).ok
    mixed = verify_consistency_notes(
        tenant_note(3, leaves, TENANT_LOG + "x"), tenant_note(6, leaves), consistency, SERVICE.vkey
    )
    assert not mixed.ok
    assert "two logs" in (mixed.reason or "")


def test_malformed_inputs_raise() -> None:
    with pytest.raises(MalformedInputError, match="tlog-proof"):
        verify_inclusion_proof("garbage", LEAVES[0], LOG.vkey)
    with pytest.raises(MalformedInputError, match="verifier key"):
        verify_inclusion_proof(tlog_proof(0, 1), LEAVES[0], "not a vkey")
    broken = tlog_proof(0, 1).replace("\n\u2014", "\n-")
    with pytest.raises(MalformedInputError, match="note"):
        verify_inclusion_proof(broken, LEAVES[0], LOG.vkey)


# --- Consistency ---------------------------------------------------------------------------------


def test_consistency_between_notes() -> None:
    proof = format_consistency_proof(TREE.consistency_proof(21, 100))
    result = verify_consistency_notes(note(21), note(100), proof, LOG.vkey)
    assert result.ok, result.reason
    assert result.old is not None
    assert result.new is not None
    assert (result.old.size, result.new.size) == (21, 100)


def test_consistency_failures() -> None:
    proof = TREE.consistency_proof(21, 100)
    forked = sign_checkpoint(Checkpoint(ORIGIN, 100, leaf_hash(b"fork")), [LOG])
    assert not verify_consistency_notes(note(21), forked, proof, LOG.vkey).ok
    assert not verify_consistency_notes(note(100), note(21), proof, LOG.vkey).ok
    assert not verify_consistency_notes(note(21), note(100), proof[1:], LOG.vkey).ok
    untrusted = verify_consistency_notes(note(21), note(100, STRANGER), proof, LOG.vkey)
    assert not untrusted.ok
    assert untrusted.old is not None
    assert untrusted.new is None
    with pytest.raises(MalformedInputError):
        verify_consistency_notes(note(21), note(100), "[1]", LOG.vkey)


# --- Replay --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 5000])
def test_replay_matches_checkpoint(size: int) -> None:
    result = replay(iter(LEAVES), note(size), LOG.vkey, check_event_uuids=True)
    assert result.ok, result.reason
    assert result.leaves_replayed == size
    assert result.computed_root == TREE.root(size)


def test_replay_detects_a_tampered_leaf_at_its_index() -> None:
    tampered = list(LEAVES)
    tampered[4321] = tampered[4321].replace(b'"n": 4321', b'"n": 4322')
    result = replay(tampered, note(5000), LOG.vkey)
    assert not result.ok
    assert result.reason == "root mismatch"
    located = replay(tampered, note(5000), LOG.vkey, expected_leaf_hashes=leaf_hashes(LEAVES))
    assert not located.ok
    assert located.first_mismatch_index == 4321


def test_replay_reports_missing_leaves_and_duplicate_uuids() -> None:
    missing = replay(LEAVES[:4500], note(5000), LOG.vkey)
    assert not missing.ok
    assert missing.first_mismatch_index == 4500
    duplicated = [*LEAVES[:10], LEAVES[3], *LEAVES[11:]]
    result = replay(duplicated, note(5000), LOG.vkey, check_event_uuids=True)
    assert result.first_mismatch_index == 10
    assert "event_uuid" in (result.reason or "")


def test_replay_rejects_untrusted_checkpoint() -> None:
    result = replay(LEAVES, note(5000, STRANGER), LOG.vkey)
    assert not result.ok
    assert result.checkpoint is None


# --- Shared fixture for the JavaScript verifier -----------------------------------------------


def generate_fixture() -> dict[str, Any]:
    cases = [(13, 21), (0, 1), (4096, 5000)]
    return {
        "about": "Generated by tests/unit/audit/test_verify_offline.py",
        "vkey": LOG.vkey,
        "other_vkey": STRANGER.vkey,
        "origin": ORIGIN,
        "cases": [
            {
                "index": index,
                "size": size,
                "leaf": base64.b64encode(LEAVES[index]).decode(),
                "proof": tlog_proof(index, size),
            }
            for index, size in cases
        ],
    }


if REGENERATE:
    FIXTURE.write_text(json.dumps(generate_fixture(), indent=1) + "\n", encoding="utf-8")


def test_fixture_is_current_and_verifies_in_python() -> None:
    fixture = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert fixture == generate_fixture()
    for case in fixture["cases"]:
        leaf = base64.b64decode(case["leaf"])
        assert verify_inclusion_proof(case["proof"], leaf, fixture["vkey"]).ok
        assert not verify_inclusion_proof(case["proof"], leaf + b"x", fixture["vkey"]).ok
