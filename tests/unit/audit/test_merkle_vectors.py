# Copyright 2026 The consent authors
# SPDX-License-Identifier: Apache-2.0
"""Mutation vectors in the categories of transparency-dev/merkle ``testdata`` (audit-log §13.1).

The vectors are generated from our own implementation and frozen under ``tests/vectors/audit/``.
Regenerate them with ``CONSENT_REGEN_VECTORS=1 pytest tests/unit/audit/test_merkle_vectors.py``
and review the diff: a changed vector means changed proof bytes.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from consent.audit import merkle
from consent.audit.merkle import EMPTY_ROOT, MemoryTree, ProofError, leaf_hash

pytestmark = pytest.mark.unit

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "audit"
REGENERATE = os.environ.get("CONSENT_REGEN_VECTORS") == "1"
GARBAGE = leaf_hash(b"garbage")
RFC_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
BIG_LEAVES = [i.to_bytes(4, "big") for i in range(300)]
RFC_SIZES = (1, 2, 3, 5, 7, 8)
BIG_CASES = [(0, 300), (256, 300), (131, 257)]
BIG_CONSISTENCY = [(1, 300), (129, 300), (37, 41)]


def _flip(value: bytes, bit: int) -> bytes:
    data = bytearray(value)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


def _bit(k: int) -> int:
    return (k * 37 + 11) % 256


def _proof_mutations(proof: list[bytes], extra: bytes) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for k, element in enumerate(proof):
        out[f"modified-proof[{k}]-bit-@{_bit(k)}"] = [
            *proof[:k],
            _flip(element, _bit(k)),
            *proof[k + 1 :],
        ]
    out["preceding-garbage"] = [GARBAGE, *proof]
    out["trailing-root"] = [*proof, extra]
    if proof:
        out["removed-component"] = proof[:-1]
    out["inserted-component"] = [*proof[: len(proof) // 2], EMPTY_ROOT, *proof[len(proof) // 2 :]]
    return out


def _inclusion_entries(
    name: str, hashes: list[bytes], index: int, size: int
) -> list[dict[str, Any]]:
    tree = MemoryTree(hashes[:size])
    base: dict[str, Any] = {
        "leaf_index": index,
        "tree_size": size,
        "leaf_hash": hashes[index],
        "root": tree.root(),
        "proof": tree.inclusion_proof(index),
    }
    variants: dict[str, dict[str, Any]] = {"valid": {}}
    for mutation, proof in _proof_mutations(base["proof"], base["root"]).items():
        variants[mutation] = {"proof": proof}
    variants["leafIdx-plus-@1"] = {"leaf_index": index + 1}
    variants["leafIdx-sub-@1"] = {"leaf_index": index - 1}
    variants["treeSize-mul-@2"] = {"tree_size": size * 2}
    variants["treeSize-div-@2"] = {"tree_size": size // 2}
    variants["wrong-leaf"] = {"leaf_hash": leaf_hash(b"WrongLeaf")}
    variants["wrong-root"] = {"root": EMPTY_ROOT}
    variants["empty-root-and-leaf"] = {"root": b"", "leaf_hash": b""}
    return [
        _encode({**base, **change, "name": f"{name}/{mutation}", "valid": mutation == "valid"})
        for mutation, change in variants.items()
    ]


def _consistency_entries(
    name: str, hashes: list[bytes], size1: int, size2: int
) -> list[dict[str, Any]]:
    tree = MemoryTree(hashes[:size2])
    base: dict[str, Any] = {
        "size1": size1,
        "size2": size2,
        "root1": tree.root(size1),
        "root2": tree.root(),
        "proof": tree.consistency_proof(size1),
    }
    variants: dict[str, dict[str, Any]] = {"valid": {}}
    for mutation, proof in _proof_mutations(base["proof"], base["root2"]).items():
        variants[mutation] = {"proof": proof}
    variants["size1-plus-@1"] = {"size1": size1 + 1}
    variants["size1-sub-@1"] = {"size1": size1 - 1}
    variants["treeSize-mul-@2"] = {"size2": size2 * 2}
    variants["treeSize-div-@2"] = {"size2": size2 // 2}
    variants["wrong-root1"] = {"root1": leaf_hash(b"WrongRoot")}
    variants["wrong-root2"] = {"root2": leaf_hash(b"WrongRoot")}
    if size1 != size2:
        variants["swapped-roots"] = {"root1": base["root2"], "root2": base["root1"]}
    variants["empty-roots"] = {"root1": b"", "root2": b""}
    entries = [
        _encode({**base, **change, "name": f"{name}/{mutation}", "valid": mutation == "valid"})
        for mutation, change in variants.items()
    ]
    if name == "rfc6962/1-1":
        zero = {"size1": 0, "size2": 0, "root1": EMPTY_ROOT, "root2": EMPTY_ROOT, "proof": []}
        entries.append(
            _encode({**zero, "name": "sizes-are-equal-zero-and-proof-is-empty", "valid": False})
        )
    return entries


def _encode(entry: dict[str, Any]) -> dict[str, Any]:
    def conv(value: Any) -> Any:
        if isinstance(value, bytes):
            return base64.b64encode(value).decode("ascii")
        if isinstance(value, list):
            return [conv(v) for v in value]
        return value

    return {key: conv(value) for key, value in sorted(entry.items())}


def generate() -> dict[str, Any]:
    rfc = merkle.leaf_hashes(RFC_LEAVES)
    big = merkle.leaf_hashes(BIG_LEAVES)
    inclusion: list[dict[str, Any]] = []
    consistency: list[dict[str, Any]] = []
    for size in RFC_SIZES:
        for index in range(size):
            inclusion += _inclusion_entries(f"rfc6962/{index}-{size}", rfc, index, size)
        for size1 in range(1, size + 1):
            consistency += _consistency_entries(f"rfc6962/{size1}-{size}", rfc, size1, size)
    for index, size in BIG_CASES:
        inclusion += _inclusion_entries(f"big/{index}-{size}", big, index, size)
    for size1, size2 in BIG_CONSISTENCY:
        consistency += _consistency_entries(f"big/{size1}-{size2}", big, size1, size2)
    return {
        "about": "Generated by tests/unit/audit/test_merkle_vectors.py; hashes are base64.",
        "inclusion": inclusion,
        "consistency": consistency,
    }


def _dump(data: dict[str, Any]) -> str:
    """One vector per line, so that a review diff shows which vectors changed."""
    parts = [f'{{"about": {json.dumps(data["about"])}']
    for key in ("inclusion", "consistency"):
        lines = ",\n  ".join(json.dumps(entry) for entry in data[key])
        parts.append(f'"{key}": [\n  {lines}\n]')
    return ",\n".join(parts) + "}\n"


def _load() -> dict[str, Any]:
    path = VECTORS / "merkle_mutations.json"
    if REGENERATE:
        path.write_text(_dump(generate()), encoding="utf-8")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


DATA = _load()


def test_frozen_vectors_match_the_generator() -> None:
    assert generate() == DATA


def test_every_category_is_present() -> None:
    names = {entry["name"].split("/")[-1] for entry in DATA["inclusion"]}
    names = {n.split("[")[0] if n.startswith("modified-proof") else n for n in names}
    assert {
        "valid",
        "modified-proof",
        "leafIdx-plus-@1",
        "leafIdx-sub-@1",
        "treeSize-mul-@2",
        "treeSize-div-@2",
        "preceding-garbage",
        "trailing-root",
        "removed-component",
        "inserted-component",
        "wrong-leaf",
        "empty-root-and-leaf",
    } <= names
    consistency = {entry["name"].split("/")[-1] for entry in DATA["consistency"]}
    assert "sizes-are-equal-zero-and-proof-is-empty" in consistency
    assert {"preceding-garbage", "trailing-root", "empty-roots", "swapped-roots"} <= consistency


def _h(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _verify_inclusion(entry: dict[str, Any]) -> None:
    merkle.verify_inclusion(
        _h(entry["leaf_hash"]),
        entry["leaf_index"],
        entry["tree_size"],
        [_h(p) for p in entry["proof"]],
        _h(entry["root"]),
    )


def _verify_consistency(entry: dict[str, Any]) -> None:
    merkle.verify_consistency(
        entry["size1"],
        entry["size2"],
        [_h(p) for p in entry["proof"]],
        _h(entry["root1"]),
        _h(entry["root2"]),
    )


@pytest.mark.parametrize("entry", DATA["inclusion"], ids=lambda e: e["name"])
def test_inclusion_vector(entry: dict[str, Any]) -> None:
    if entry["valid"]:
        _verify_inclusion(entry)
    else:
        with pytest.raises(ProofError):
            _verify_inclusion(entry)


@pytest.mark.parametrize("entry", DATA["consistency"], ids=lambda e: e["name"])
def test_consistency_vector(entry: dict[str, Any]) -> None:
    if entry["valid"]:
        _verify_consistency(entry)
    else:
        with pytest.raises(ProofError):
            _verify_consistency(entry)
