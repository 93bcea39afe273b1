# Copyright 2026 The consent authors
# SPDX-License-Identifier: Apache-2.0
"""RFC 6962 hashing, frontier, proof generation and strict verification."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.audit import merkle
from consent.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryTree,
    ProofError,
    RootMismatchError,
    leaf_hash,
    node_hash,
)

pytestmark = pytest.mark.unit

# RFC 6962 / certificate-transparency test leaves and MTH(D[0:n]) for n = 0..8.
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
RFC_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
RFC_HASHES = merkle.leaf_hashes(RFC_LEAVES)
RFC_TREE = MemoryTree(RFC_HASHES)

# Known audit paths and consistency proofs (Trillian log_verifier_test.go and others).
KNOWN_INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (0, 1, []),
]  # fmt: skip
KNOWN_CONSISTENCY = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (3, 8, ["0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (8, 8, []),
]  # fmt: skip


# --- A literal transcription of RFC 6962 §2.1, used as the reference model -------------------


def _k(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def ref_mth(hashes: Sequence[bytes]) -> bytes:
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = _k(len(hashes))
    return node_hash(ref_mth(hashes[:k]), ref_mth(hashes[k:]))


def ref_path(m: int, hashes: Sequence[bytes]) -> list[bytes]:
    n = len(hashes)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, hashes[:k]), ref_mth(hashes[k:])]
    return [*ref_path(m - k, hashes[k:]), ref_mth(hashes[:k])]


def ref_subproof(m: int, hashes: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if complete else [ref_mth(hashes)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, hashes[:k], complete), ref_mth(hashes[k:])]
    return [*ref_subproof(m - k, hashes[k:], False), ref_mth(hashes[:k])]  # noqa: FBT003


def synthetic_hashes(n: int, salt: bytes = b"") -> list[bytes]:
    return [leaf_hash(salt + i.to_bytes(4, "big")) for i in range(n)]


def flip(value: bytes, bit: int) -> bytes:
    data = bytearray(value)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


# --- Known answers -----------------------------------------------------------------------------


def test_empty_root_is_sha256_of_nothing() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert merkle.root_from_leaf_hashes([]) == EMPTY_ROOT
    assert Frontier().root() == EMPTY_ROOT
    assert MemoryTree().root() == EMPTY_ROOT


def test_domain_separated_hashes() -> None:
    assert leaf_hash(b"\x00").hex() == (
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
    )
    assert leaf_hash(b"abc") != hashlib.sha256(b"abc").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )


def test_rfc6962_eight_leaf_root() -> None:
    expected = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert merkle.root_from_leaf_hashes(RFC_HASHES).hex() == expected


@pytest.mark.parametrize("size", range(9))
def test_rfc6962_roots_of_every_prefix(size: int) -> None:
    frontier = Frontier()
    frontier.extend(RFC_HASHES[:size])
    assert merkle.root_from_leaf_hashes(RFC_HASHES[:size]).hex() == RFC_ROOTS[size]
    assert frontier.root().hex() == RFC_ROOTS[size]
    assert RFC_TREE.root(size).hex() == RFC_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "proof"), KNOWN_INCLUSION)
def test_known_inclusion_proofs(index: int, size: int, proof: list[str]) -> None:
    generated = RFC_TREE.inclusion_proof(index, size)
    assert [h.hex() for h in generated] == proof
    merkle.verify_inclusion(RFC_HASHES[index], index, size, generated, RFC_TREE.root(size))


@pytest.mark.parametrize(("size1", "size2", "proof"), KNOWN_CONSISTENCY)
def test_known_consistency_proofs(size1: int, size2: int, proof: list[str]) -> None:
    generated = RFC_TREE.consistency_proof(size1, size2)
    assert [h.hex() for h in generated] == proof
    merkle.verify_consistency(size1, size2, generated, RFC_TREE.root(size1), RFC_TREE.root(size2))


# --- Generation against the RFC model ----------------------------------------------------------


def test_proofs_match_the_rfc_model_exhaustively() -> None:
    hashes = synthetic_hashes(33)
    tree = MemoryTree(hashes)
    for n in range(1, 34):
        assert tree.root(n) == ref_mth(hashes[:n])
        for i in range(n):
            assert tree.inclusion_proof(i, n) == ref_path(i, hashes[:n])
        for m in range(1, n + 1):
            assert tree.consistency_proof(m, n) == ref_subproof(m, hashes[:n], True)  # noqa: FBT003


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=300))
def test_frontier_root_equals_recursive_mth(leaves: list[bytes]) -> None:
    hashes = merkle.leaf_hashes(leaves)
    frontier = Frontier()
    frontier.extend(hashes)
    assert frontier.size == len(hashes)
    assert frontier.root() == ref_mth(hashes)
    assert merkle.root_from_leaf_hashes(hashes) == ref_mth(hashes)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=300))
def test_frontier_emits_every_perfect_node_once(size: int) -> None:
    hashes = synthetic_hashes(size)
    tree = MemoryTree(hashes)
    emitted = Frontier().extend(hashes)
    assert len(emitted) == size - size.bit_count()  # n leaves: n - popcount(n) inner nodes
    assert len({(node.level, node.idx) for node in emitted}) == len(emitted)
    for node in emitted:
        assert node.level >= 1
        assert tree.node(node.level, node.idx) == node.hash


def test_frontier_resumes_from_stored_state() -> None:
    hashes = synthetic_hashes(77)
    first = Frontier()
    first.extend(hashes[:45])
    resumed = Frontier(first.size, first.hashes)
    resumed.extend(hashes[45:])
    assert resumed.root() == ref_mth(hashes)
    assert first.copy().root() == ref_mth(hashes[:45])


def test_frontier_rejects_inconsistent_state() -> None:
    with pytest.raises(ProofError):
        Frontier(3, [b"\x00" * 32])
    with pytest.raises(ProofError):
        Frontier(1, [b"\x00" * 31])
    with pytest.raises(ProofError):
        Frontier().append(b"short")
    with pytest.raises(ProofError, match="cannot be appended"):
        Frontier(1, [b"\x00" * 32]).append_subtree(1, b"\x00" * 32)


def test_append_subtree_equals_leaf_by_leaf() -> None:
    hashes = synthetic_hashes(40)
    chunked = Frontier()
    nodes = chunked.append_subtree(3, merkle.root_from_leaf_hashes(hashes[:8]))
    assert nodes == []
    nodes = chunked.append_subtree(3, merkle.root_from_leaf_hashes(hashes[8:16]))
    assert [(n.level, n.idx) for n in nodes] == [(4, 0)]
    chunked.extend(hashes[16:])
    assert chunked.root() == ref_mth(hashes)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_subtree_hash_of_right_edge_ranges(data: st.DataObject) -> None:
    size = data.draw(st.integers(min_value=1, max_value=300))
    hashes = synthetic_hashes(size)
    tree = MemoryTree(hashes)
    level = data.draw(st.integers(min_value=0, max_value=size.bit_length()))
    begin = (data.draw(st.integers(min_value=0, max_value=size - 1)) >> level) << level
    end = min(begin + (1 << level), size)
    assert merkle.subtree_hash(tree.node, begin, end) == ref_mth(hashes[begin:end])


def test_subtree_hash_rejects_unaligned_ranges() -> None:
    with pytest.raises(ProofError):
        merkle.subtree_hash(RFC_TREE.node, 1, 4)
    with pytest.raises(ProofError):
        merkle.subtree_hash(RFC_TREE.node, 2, 2)


def test_node_source_must_return_32_bytes() -> None:
    with pytest.raises(ProofError, match="bad hash"):
        merkle.inclusion_proof(lambda level, idx: b"x", 0, 4)


def test_memory_tree_refuses_incomplete_nodes() -> None:
    with pytest.raises(LookupError):
        RFC_TREE.node(3, 1)
    with pytest.raises(LookupError):
        RFC_TREE.node(4, 0)
    with pytest.raises(ProofError):
        RFC_TREE.inclusion_proof(0, 9)


# --- Properties: proofs verify, every bit flip fails -------------------------------------------


def assert_every_bit_flip_fails(proof: list[bytes], check: object) -> None:
    assert callable(check)
    for k, element in enumerate(proof):
        for bit in range(256):
            mutated = [*proof[:k], flip(element, bit), *proof[k + 1 :]]
            with pytest.raises(ProofError):
                check(mutated)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_inclusion_proofs_verify_and_bit_flips_fail(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=300))
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    hashes = synthetic_hashes(n, salt=b"inc")
    tree = MemoryTree(hashes)
    root = tree.root()
    proof = tree.inclusion_proof(i)
    merkle.verify_inclusion(hashes[i], i, n, proof, root)
    assert merkle.root_from_inclusion_proof(hashes[i], i, n, proof) == root
    assert_every_bit_flip_fails(proof, lambda p: merkle.verify_inclusion(hashes[i], i, n, p, root))
    with pytest.raises(ProofError):
        merkle.verify_inclusion(flip(hashes[i], 0), i, n, proof, root)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_consistency_proofs_verify_and_bit_flips_fail(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=300))
    m = data.draw(st.integers(min_value=1, max_value=n))
    hashes = synthetic_hashes(n, salt=b"con")
    tree = MemoryTree(hashes)
    root1, root2 = tree.root(m), tree.root(n)
    proof = tree.consistency_proof(m, n)
    merkle.verify_consistency(m, n, proof, root1, root2)
    assert merkle.root_from_consistency_proof(m, n, proof, root1) == root2
    assert_every_bit_flip_fails(proof, lambda p: merkle.verify_consistency(m, n, p, root1, root2))
    if m < n:
        with pytest.raises(ProofError):
            merkle.verify_consistency(m, n, proof, flip(root1, 255), root2)


# --- Strictness --------------------------------------------------------------------------------

H = b"\x11" * 32


@pytest.mark.parametrize(
    ("index", "size"),
    [(0, 0), (1, 1), (2, 1), (8, 8), (-1, 8), (True, 8), (0, 2**64)],
)
def test_inclusion_rejects_bad_index_or_size(index: int, size: int) -> None:
    with pytest.raises(ProofError):
        merkle.verify_inclusion(H, index, size, [], H)


def test_inclusion_rejects_non_32_byte_hashes() -> None:
    proof = RFC_TREE.inclusion_proof(2, 8)
    root = RFC_TREE.root(8)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(b"", 2, 8, proof, root)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(RFC_HASHES[2], 2, 8, proof, b"")
    with pytest.raises(ProofError):
        merkle.verify_inclusion(RFC_HASHES[2], 2, 8, [*proof[:2], proof[2] + b"\x00"], root)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(RFC_HASHES[2], 2, 8, proof, root[:31])


def test_inclusion_rejects_wrong_lengths_and_root() -> None:
    proof = RFC_TREE.inclusion_proof(2, 8)
    root = RFC_TREE.root(8)
    merkle.verify_inclusion(RFC_HASHES[2], 2, 8, proof, root)
    with pytest.raises(ProofError, match="length"):
        merkle.verify_inclusion(RFC_HASHES[2], 2, 8, proof[:-1], root)
    with pytest.raises(ProofError, match="length"):
        merkle.verify_inclusion(RFC_HASHES[2], 2, 8, [*proof, root], root)
    with pytest.raises(RootMismatchError):
        merkle.verify_inclusion(RFC_HASHES[2], 2, 8, proof, EMPTY_ROOT)
    with pytest.raises(ProofError, match="length"):
        merkle.verify_inclusion(RFC_HASHES[0], 0, 1, [H], RFC_HASHES[0])


def test_single_leaf_tree_root_is_the_leaf_hash() -> None:
    merkle.verify_inclusion(RFC_HASHES[3], 0, 1, [], RFC_HASHES[3])


@pytest.mark.parametrize(
    ("size1", "size2", "proof", "root1", "root2"),
    [
        (0, 0, [], EMPTY_ROOT, EMPTY_ROOT),  # sizes-are-equal-zero-and-proof-is-empty
        (0, 5, [], EMPTY_ROOT, EMPTY_ROOT),
        (0, 1, [H], EMPTY_ROOT, H),
        (2, 1, [], H, H),
        (3, 3, [H], H, H),  # equal sizes need an empty proof
        (3, 3, [], H, b"\x12" * 32),  # ... and equal roots
        (1, 1, [], b"root", b"root"),  # roots must be 32 bytes even when equal
        (1, 2, [], H, H),  # size1 < size2 needs a proof
        (2**64, 2**64, [], H, H),
    ],
)
def test_consistency_rejects_bad_inputs(
    size1: int, size2: int, proof: list[bytes], root1: bytes, root2: bytes
) -> None:
    with pytest.raises(ProofError):
        merkle.verify_consistency(size1, size2, proof, root1, root2)


def test_consistency_of_equal_sizes_with_equal_roots() -> None:
    merkle.verify_consistency(5, 5, [], RFC_TREE.root(5), RFC_TREE.root(5))


def test_consistency_rejects_wrong_lengths() -> None:
    proof = RFC_TREE.consistency_proof(3, 8)
    root1, root2 = RFC_TREE.root(3), RFC_TREE.root(8)
    with pytest.raises(ProofError, match="length"):
        merkle.verify_consistency(3, 8, proof[:-1], root1, root2)
    with pytest.raises(ProofError, match="length"):
        merkle.verify_consistency(3, 8, [*proof, root2], root1, root2)
    with pytest.raises(ProofError, match="length"):
        merkle.verify_consistency(3, 8, [proof[0], *proof], root1, root2)
    with pytest.raises(RootMismatchError, match="second"):
        merkle.verify_consistency(3, 8, proof, root1, root1)
    with pytest.raises(RootMismatchError, match="first"):
        merkle.verify_consistency(3, 8, proof, root2, root2)


def test_generation_rejects_bad_sizes() -> None:
    with pytest.raises(ProofError):
        merkle.inclusion_proof(RFC_TREE.node, 8, 8)
    with pytest.raises(ProofError):
        merkle.consistency_proof(RFC_TREE.node, 0, 8)
    with pytest.raises(ProofError):
        merkle.consistency_proof(RFC_TREE.node, 5, 4)
    assert merkle.consistency_proof(RFC_TREE.node, 4, 4) == []
