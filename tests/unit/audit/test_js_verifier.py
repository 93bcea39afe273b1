# Copyright 2026 The consent authors
# SPDX-License-Identifier: Apache-2.0
"""The browser verifier ``consent/static/audit-verify.js`` run by Node 20 on the shared fixture.

Python builds each case (valid, or one mutation), Node runs ``ConsentAudit.verifyProof`` /
``verifyNote`` over all of them in one process, and the outcomes are compared here.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "consent" / "static" / "audit-verify.js"
FIXTURE = json.loads(
    (ROOT / "tests" / "vectors" / "audit" / "tlog_proof_fixture.json").read_text("utf-8")
)
DASH = "\u2014"
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_TEXT = "This is an example message.\n"
SPEC_NOTE = (
    f"{SPEC_TEXT}\n{DASH} example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_TEXT = "go.sum database tree\n13485\n/ZWur4obeiqK+ASdnPK+/Rmz6LPQMUeSmHh0+UkL54Y=\n"
SUMDB_NOTE = (
    f"{SUMDB_TEXT}\n{DASH} sum.golang.org "
    "Az3grnQReYTvpCrRxT+w50vixbqBlB/aPS8bL8f8KW4HHP+UjLSXOJgCh4f54n8hO6lrESglzyRXMXnhaWzaeY3zqw8=\n"
)

RUNNER = r"""
const audit = require(process.argv[1]);
const input = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const bytes = (b64) => Uint8Array.from(Buffer.from(b64, "base64"));
async function attempt(fn) {
  try {
    const value = await fn();
    return { ok: true, value: typeof value === "string" ? value : null };
  } catch (e) {
    if (!(e instanceof audit.AuditVerifyError)) return { ok: false, crash: String(e) };
    return { ok: false, error: e.message };
  }
}
(async () => {
  const proofs = [];
  for (const c of input.proofs) {
    proofs.push(await attempt(() => audit.verifyProof(c.proof, bytes(c.leaf), c.vkey)));
  }
  const notes = [];
  for (const c of input.notes) notes.push(await attempt(() => audit.verifyNote(c.note, c.vkey)));
  process.stdout.write(JSON.stringify({ proofs, notes }));
})();
"""


def _flip_b64_hash(line: str) -> str:
    raw = bytearray(base64.b64decode(line))
    raw[0] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _proof_variants(case: dict[str, Any]) -> list[tuple[str, str, bytes, str, bool]]:
    proof, vkey, leaf = case["proof"], FIXTURE["vkey"], base64.b64decode(case["leaf"])
    head, checkpoint = proof.split("\n\n", 1)
    lines = head.split("\n")
    extra_hash = lines[-1] if len(lines) > 2 else "A" * 43 + "="
    changed_leaf = bytearray(leaf)
    changed_leaf[len(leaf) // 2] ^= 0x01
    variants = [
        ("valid", proof, leaf, vkey, True),
        ("leaf-one-byte", proof, bytes(changed_leaf), vkey, False),
        ("leaf-extra-byte", proof, leaf + b" ", vkey, False),
        ("other-vkey", proof, leaf, FIXTURE["other_vkey"], False),
        ("index-plus-1", proof.replace(f"index {case['index']}\n", f"index {case['index'] + 1}\n"),
         leaf, vkey, False),
        ("trailing-hash", f"{head}\n{extra_hash}\n\n{checkpoint}", leaf, vkey, False),
        ("checkpoint-cr", proof.replace(f"\n{case['size']}\n", f"\n{case['size']}\r\n"),
         leaf, vkey, False),
        ("checkpoint-size", proof.replace(f"\n{case['size']}\n", f"\n{case['size'] + 1}\n"),
         leaf, vkey, False),
        ("extra-blank-line", proof.replace(f"\n\n{DASH}", f"\n\n\n{DASH}"), leaf, vkey, False),
    ]  # fmt: skip
    if len(lines) > 2:
        flipped = [*lines[:2], _flip_b64_hash(lines[2]), *lines[3:]]
        variants.append(
            ("proof-hash-bit", "\n".join(flipped) + "\n\n" + checkpoint, leaf, vkey, False)
        )
        variants.append(
            ("removed-hash", "\n".join(lines[:-1]) + "\n\n" + checkpoint, leaf, vkey, False)
        )
    return [(f"{case['index']}-{case['size']}/{name}", *rest) for name, *rest in variants]


PROOFS = [v for case in FIXTURE["cases"] for v in _proof_variants(case)]
NOTES = [
    ("c2sp-spec-example", SPEC_NOTE, SPEC_VKEY, SPEC_TEXT),
    ("sumdb-checkpoint", SUMDB_NOTE, SUMDB_VKEY, SUMDB_TEXT),
    ("spec-tampered-text", SPEC_NOTE.replace("example", "exampel", 1), SPEC_VKEY, None),
    ("spec-wrong-key-id", SPEC_NOTE, SPEC_VKEY.replace("530d903a", "530d903b"), None),
    ("spec-crlf", SPEC_NOTE.replace("\n", "\r\n"), SPEC_VKEY, None),
    ("spec-unknown-key-only", SPEC_NOTE, SUMDB_VKEY, None),
    ("spec-plus-unknown-signature", SPEC_NOTE + f"{DASH} other.example AAAAAAB0ZXN0\n", SPEC_VKEY,
     SPEC_TEXT),
]  # fmt: skip


@pytest.fixture(scope="module")
def node_results() -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node (v20) must be on PATH for the JavaScript verifier tests")
    payload = {
        "proofs": [
            {"proof": proof, "leaf": base64.b64encode(leaf).decode(), "vkey": vkey}
            for _, proof, leaf, vkey, _ in PROOFS
        ],
        "notes": [{"note": note, "vkey": vkey} for _, note, vkey, _ in NOTES],
    }
    completed = subprocess.run(
        [node, "-e", RUNNER, str(SCRIPT)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    results: dict[str, Any] = json.loads(completed.stdout)
    return results


def test_node_is_v20_or_newer() -> None:
    version = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    assert int(version.lstrip("v").split(".")[0]) >= 20


@pytest.mark.parametrize("position", range(len(PROOFS)), ids=[p[0] for p in PROOFS])
def test_js_proof_verification(node_results: dict[str, Any], position: int) -> None:
    name, *_, expected = PROOFS[position]
    outcome = node_results["proofs"][position]
    assert "crash" not in outcome, outcome
    assert outcome["ok"] is expected, (name, outcome)


@pytest.mark.parametrize("position", range(len(NOTES)), ids=[n[0] for n in NOTES])
def test_js_note_verification(node_results: dict[str, Any], position: int) -> None:
    _, _, _, text = NOTES[position]
    outcome = node_results["notes"][position]
    assert "crash" not in outcome, outcome
    assert outcome["ok"] is (text is not None)
    if text is not None:
        assert outcome["value"] == text
