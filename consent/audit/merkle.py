# Copyright 2026 The consent authors
# SPDX-License-Identifier: Apache-2.0
"""RFC 6962 Merkle tree hashing, proof generation and strict proof verification.

Hashing (RFC 6962 §2.1): ``leaf_hash = SHA-256(0x00 || leaf)``, ``node_hash = SHA-256(0x01 ||
left || right)``, and the root of the empty tree is ``SHA-256("")``. The tree over ``n > 1`` leaves
splits at the largest power of two ``k < n``.

Stored nodes. A *perfect node* ``(level, idx)`` is the root of the complete subtree over the
leaves ``[idx * 2**level, (idx + 1) * 2**level)``; level 0 nodes are the leaf hashes. Only
complete subtrees have perfect nodes, so they never change once written: the integrator stores
them in ``audit.node(level, idx, hash)`` (``Frontier.append`` yields them) and keeps the level 0
hashes in ``audit.event.leaf_hash``.

Right-edge subtrees. A proof for a tree of size ``n`` may need the hash of an *incomplete*
subtree on the right edge, covering ``[begin, n)`` with ``n - begin`` not a power of two. It is
computed (``subtree_hash``) from the perfect nodes of the binary decomposition of ``n - begin``:
with ``n - begin = 2**a + 2**b + ...`` (``a > b > ...``) the perfect nodes are ``(a, begin >> a)``,
``(b, (begin + 2**a) >> b)``, ... and the subtree hash is their right fold
``node_hash(h_a, node_hash(h_b, ...))``. That costs at most ``log2(n)`` node reads per proof
element and is exactly RFC 6962's MTH of that range, because ``begin`` is aligned to a power of
two larger than the range.

Proof generation takes a ``NodeGetter`` ``(level, idx) -> hash`` so the database can serve nodes;
``MemoryTree`` provides one over an in-memory list of leaf hashes.

Verification follows RFC 9162 §2.1.3-2.1.4 in the form of transparency-dev/merkle
``proof/verify.go`` and is strict: ``index < size``, ``0 < size1 <= size2``, every hash exactly 32
bytes, the exact proof length, an empty proof and equal roots when ``size1 == size2``, the whole
proof consumed, and a constant-time root comparison.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from typing import Final, NamedTuple

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_TREE_SIZE",
    "Frontier",
    "MemoryTree",
    "Node",
    "NodeGetter",
    "ProofError",
    "RootMismatchError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "root_from_nodes",
    "subtree_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: Final = 32
MAX_TREE_SIZE: Final = 2**64 - 1
_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"
_sha256 = hashlib.sha256
EMPTY_ROOT: Final = _sha256(b"").digest()

NodeGetter = Callable[[int, int], bytes]
"""Returns the hash of the perfect node ``(level, idx)``; level 0 is the leaf hash."""


class Node(NamedTuple):
    """A perfect node, stored as ``audit.node(level, idx, hash)``.

    It covers the leaves ``[idx << level, (idx + 1) << level)``.
    """

    level: int
    idx: int
    hash: bytes


class ProofError(ValueError):
    """A size, index, hash or proof is malformed, or a proof does not verify."""


class RootMismatchError(ProofError):
    """The proof is well formed but the recomputed root differs from the expected one."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash ``SHA-256(0x00 || data)``."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def leaf_hashes(leaves: Iterable[bytes]) -> list[bytes]:
    """Leaf hashes of many leaves (one list comprehension, no per-call overhead)."""
    sha, prefix = _sha256, _LEAF_PREFIX
    return [sha(prefix + data).digest() for data in leaves]


def _pair_level(hashes: Sequence[bytes]) -> list[bytes]:
    """Hashes of the complete pairs ``(0, 1), (2, 3), ...`` of one level; an odd tail is ignored."""
    sha, prefix = _sha256, _NODE_PREFIX
    it = iter(hashes)
    return [sha(prefix + left + right).digest() for left, right in zip(it, it, strict=False)]


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} must be exactly {HASH_SIZE} bytes")
    return value


def _check_hashes(values: Sequence[bytes], what: str) -> None:
    if all(type(value) is bytes and len(value) == HASH_SIZE for value in values):
        return
    for position, value in enumerate(values):
        _check_hash(value, f"{what}[{position}]")


def _check_int(value: object, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProofError(f"{what} must be an int")
    if not minimum <= value <= MAX_TREE_SIZE:
        raise ProofError(f"{what} out of range: {value}")
    return value


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash (MTH) of a list of leaf hashes, level by level.

    Pairing each level left to right and promoting an odd last node unchanged builds the same
    tree as RFC 6962's "split at the largest power of two" recursion.
    """
    _check_hashes(hashes, "leaf hash")
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        upper = _pair_level(level)
        if len(level) & 1:
            upper.append(level[-1])
        level = upper
    return level[0]


def _fold_right(hashes: Sequence[bytes]) -> bytes:
    """``node_hash(h0, node_hash(h1, ... h_last))``: the root over a descending decomposition."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = _sha256(_NODE_PREFIX + left + result).digest()
    return result


class Frontier:
    """Compact range ``[0, size)``: one perfect node per set bit of ``size``, largest first.

    This is the integrator's state (``log_state.tree_size`` and ``log_state.frontier``).
    ``append`` adds a leaf hash and returns the perfect nodes of level >= 1 it completed;
    ``root`` is the right fold of the frontier.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        _check_int(size, "size")
        if len(hashes) != size.bit_count():
            raise ProofError(f"a frontier of size {size} has {size.bit_count()} hashes")
        _check_hashes(hashes, "frontier")
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The perfect subtree roots of the set bits of ``size``, largest (leftmost) first."""
        return tuple(self._hashes)

    def copy(self) -> Frontier:
        return Frontier(self._size, self._hashes)

    def root(self) -> bytes:
        return _fold_right(self._hashes) if self._hashes else EMPTY_ROOT

    def append(self, leaf_hash: bytes) -> list[Node]:
        """Append one leaf hash; return the newly completed perfect nodes (level >= 1)."""
        return self.append_subtree(0, leaf_hash)

    def extend(self, leaf_hashes: Iterable[bytes]) -> list[Node]:
        """Append many leaf hashes; return all newly completed perfect nodes (level >= 1)."""
        nodes: list[Node] = []
        for value in leaf_hashes:
            nodes.extend(self.append_subtree(0, value))
        return nodes

    def append_subtree(self, level: int, subtree_hash: bytes) -> list[Node]:
        """Append the root of a perfect subtree of ``2**level`` leaves at an aligned size.

        Returns the perfect nodes above ``level`` that this completes. Used to stream large
        replays in aligned chunks; ``append`` is the ``level == 0`` case.
        """
        _check_hash(subtree_hash, "subtree hash")
        size = self._size
        if level < 0 or size & ((1 << level) - 1):
            raise ProofError(f"a subtree of level {level} cannot be appended at size {size}")
        if size + (1 << level) > MAX_TREE_SIZE:
            raise ProofError("tree is full")
        width = 1 << level
        stack, value, index = self._hashes, subtree_hash, size >> level
        nodes: list[Node] = []
        while index & 1:
            value = _sha256(_NODE_PREFIX + stack.pop() + value).digest()
            level += 1
            index >>= 1
            nodes.append(Node(level, index, value))
        stack.append(value)
        self._size = size + width
        return nodes


def _get(get_node: NodeGetter, level: int, index: int) -> bytes:
    value = get_node(level, index)
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ProofError(f"node source returned a bad hash for ({level}, {index})")
    return value


def subtree_hash(get_node: NodeGetter, begin: int, end: int) -> bytes:
    """Hash of the RFC 6962 subtree over leaves ``[begin, end)`` from perfect nodes.

    ``begin`` must be a multiple of the smallest power of two ``>= end - begin`` (true for every
    subtree of an RFC 6962 tree, including incomplete right-edge ones). See the module docstring.
    """
    width = end - begin
    if begin < 0 or width <= 0 or begin % (1 << (width - 1).bit_length()):
        raise ProofError(f"[{begin}, {end}) is not an RFC 6962 subtree")
    parts: list[bytes] = []
    position = begin
    while position < end:
        level = (end - position).bit_length() - 1
        parts.append(_get(get_node, level, position >> level))
        position += 1 << level
    return _fold_right(parts)


def root_from_nodes(get_node: NodeGetter, size: int) -> bytes:
    """Root of the tree of ``size`` leaves from perfect nodes (``EMPTY_ROOT`` when empty)."""
    _check_int(size, "size")
    return subtree_hash(get_node, 0, size) if size else EMPTY_ROOT


def _sibling(get_node: NodeGetter, level: int, index: int, size: int) -> bytes:
    """Hash of node ``(level, index)`` in a tree of ``size`` leaves, complete or right-edge."""
    begin = index << level
    end = min(begin + (1 << level), size)
    if end - begin == 1 << level:
        return _get(get_node, level, index)
    return subtree_hash(get_node, begin, end)


def _path(get_node: NodeGetter, index: int, size: int, start_level: int) -> list[bytes]:
    """Audit path of node ``index >> start_level`` from ``start_level`` up, bottom first."""
    inner = (index ^ (size - 1)).bit_length()
    proof = [
        _sibling(get_node, level, (index >> level) ^ 1, size) for level in range(start_level, inner)
    ]
    proof.extend(
        _get(get_node, level, (index >> level) ^ 1)
        for level in range(inner, size.bit_length())
        if (index >> level) & 1
    )
    return proof


def inclusion_proof(get_node: NodeGetter, index: int, size: int) -> list[bytes]:
    """RFC 6962 §2.1.1 audit path for leaf ``index`` in the tree of ``size`` leaves."""
    _check_int(size, "size")
    _check_int(index, "index")
    if index >= size:
        raise ProofError(f"index {index} is not below size {size}")
    return _path(get_node, index, size, 0)


def consistency_proof(get_node: NodeGetter, size1: int, size2: int) -> list[bytes]:
    """RFC 6962 §2.1.2 consistency proof from ``size1`` to ``size2`` (``0 < size1 <= size2``)."""
    _check_int(size1, "size1")
    _check_int(size2, "size2")
    if not 0 < size1 <= size2:
        raise ProofError(f"need 0 < size1 <= size2, got {size1}, {size2}")
    if size1 == size2:
        return []
    last = size1 - 1
    shift = (size1 & -size1).bit_length() - 1
    proof = [] if size1 == 1 << shift else [_get(get_node, shift, last >> shift)]
    proof.extend(_path(get_node, last, size2, shift))
    return proof


def _decompose(index: int, size: int) -> tuple[int, int]:
    """Lengths of the inner and border parts of the audit path of ``index`` in ``size``."""
    inner = (index ^ (size - 1)).bit_length()
    return inner, (index >> inner).bit_count()


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """Root implied by an inclusion proof; raises ``ProofError`` when the proof is malformed."""
    _check_int(size, "size")
    _check_int(index, "index")
    if index >= size:
        raise ProofError(f"index {index} is not below size {size}")
    _check_hash(leaf_hash, "leaf hash")
    _check_hashes(proof, "proof")
    inner, border = _decompose(index, size)
    if len(proof) != inner + border:
        raise ProofError(f"wrong proof length {len(proof)}, want {inner + border}")
    sha, prefix, value = _sha256, _NODE_PREFIX, leaf_hash
    for level, sibling in enumerate(proof[:inner]):
        pair = sibling + value if (index >> level) & 1 else value + sibling
        value = sha(prefix + pair).digest()
    for sibling in proof[inner:]:
        value = sha(prefix + sibling + value).digest()
    return value


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify an inclusion proof; raises ``ProofError`` (``RootMismatchError`` on a wrong root)."""
    _check_hash(root, "root")
    calculated = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if not hmac.compare_digest(calculated, root):
        raise RootMismatchError("inclusion proof does not lead to the expected root")


def root_from_consistency_proof(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> bytes:
    """Root of ``size2`` implied by a consistency proof, after checking it against ``root1``."""
    _check_int(size1, "size1")
    _check_int(size2, "size2")
    _check_hash(root1, "root1")
    _check_hashes(proof, "proof")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if size2 < size1:
        raise ProofError(f"size2 ({size2}) < size1 ({size1})")
    if size1 == size2:
        if proof:
            raise ProofError("size1 == size2 requires an empty proof")
        return root1
    last = size1 - 1
    inner, border = _decompose(last, size2)
    shift = (size1 & -size1).bit_length() - 1
    inner -= shift
    if not proof:
        raise ProofError("size1 < size2 requires a non-empty proof")
    seed, rest = (root1, proof) if size1 == 1 << shift else (proof[0], proof[1:])
    if len(rest) != inner + border:
        raise ProofError(f"wrong proof length {len(proof)}")
    mask = last >> shift
    hash1 = hash2 = seed
    sha, prefix = _sha256, _NODE_PREFIX
    for level, sibling in enumerate(rest[:inner]):
        if (mask >> level) & 1:
            hash1 = sha(prefix + sibling + hash1).digest()
            hash2 = sha(prefix + sibling + hash2).digest()
        else:
            hash2 = sha(prefix + hash2 + sibling).digest()
    for sibling in rest[inner:]:
        hash1 = sha(prefix + sibling + hash1).digest()
        hash2 = sha(prefix + sibling + hash2).digest()
    if not hmac.compare_digest(hash1, root1):
        raise RootMismatchError("consistency proof does not lead to the first root")
    return hash2


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Verify a consistency proof between two tree heads; raises ``ProofError`` on any failure."""
    _check_hash(root2, "root2")
    calculated = root_from_consistency_proof(size1, size2, proof, root1)
    if not hmac.compare_digest(calculated, root2):
        raise RootMismatchError("consistency proof does not lead to the second root")


class MemoryTree:
    """Every perfect node of an in-memory tree: a ``NodeGetter`` for tests, tools and benchmarks.

    ``levels[0]`` holds the leaf hashes and ``levels[k][i]`` the perfect node ``(k, i)``. Proofs
    can be generated for any size up to the current one.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        self.extend(leaf_hashes)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append leaf hashes and compute every newly completed perfect node."""
        added = list(leaf_hashes)
        _check_hashes(added, "leaf hash")
        self._levels[0].extend(added)
        level = 0
        while len(self._levels[level]) > 1:
            if level + 1 == len(self._levels):
                self._levels.append([])
            lower, upper = self._levels[level], self._levels[level + 1]
            upper.extend(_pair_level(lower[2 * len(upper) :]))
            level += 1

    def node(self, level: int, index: int) -> bytes:
        """The perfect node ``(level, index)``; ``LookupError`` when it is not complete yet."""
        if level < 0 or index < 0 or level >= len(self._levels):
            raise LookupError(f"no node ({level}, {index})")
        nodes = self._levels[level]
        if index >= len(nodes):
            raise LookupError(f"no node ({level}, {index})")
        return nodes[index]

    def _size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ProofError(f"size {size} is beyond the tree size {self.size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        return root_from_nodes(self.node, self._size(size))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(self.node, index, self._size(size))

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        return consistency_proof(self.node, size1, self._size(size2))
