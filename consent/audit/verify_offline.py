# Copyright 2026 The consent authors
# SPDX-License-Identifier: Apache-2.0
"""Offline verification for auditors: inclusion, consistency and full replay.

Pure functions over documents the service publishes (tlog-proof text, signed checkpoint notes,
consistency-proof JSON, leaf bytes) and a trusted verifier key (vkey). Standard library plus
``cryptography`` only; no database, no network.

Malformed input (unparseable proof, note or vkey) raises ``MalformedInputError``. Well-formed
input that fails a check (untrusted or invalid signature, wrong origin, proof or root mismatch)
returns a result with ``ok=False`` and a ``reason``.

Which log a checkpoint must be of (its origin): the ``origin`` given, else, for an inclusion
proof, the log the leaf names (its ``log`` field), else the key's name or a log under it
(``<key name>/<tenant>``: one key signs every tenant's log of a service).
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Final

from consent.audit.checkpoint import (
    Checkpoint,
    NoteError,
    VerifierKey,
    parse_checkpoint,
    parse_note,
    verify_note,
)
from consent.audit.merkle import (
    Frontier,
    ProofError,
    leaf_hash,
    leaf_hashes,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from consent.audit.proof_format import (
    ProofFormatError,
    parse_consistency_proof,
    parse_tlog_proof,
)

__all__ = [
    "ConsistencyResult",
    "ExportResult",
    "InclusionResult",
    "MalformedInputError",
    "ReplayResult",
    "replay",
    "verify_consistency_notes",
    "verify_export",
    "verify_inclusion_proof",
]

_CHUNK_LEVEL: Final = 12
_CHUNK: Final = 1 << _CHUNK_LEVEL


class MalformedInputError(ValueError):
    """A proof, note, verifier key or consistency proof could not be parsed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InclusionResult:
    ok: bool
    reason: str | None
    index: int
    leaf_hash: bytes
    checkpoint: Checkpoint | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsistencyResult:
    ok: bool
    reason: str | None
    old: Checkpoint | None
    new: Checkpoint | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayResult:
    """``first_mismatch_index`` is set when a leaf is missing, has an unexpected hash or repeats
    an ``event_uuid``; a wrong root alone cannot be located and leaves it ``None``."""

    ok: bool
    reason: str | None
    checkpoint: Checkpoint | None
    leaves_replayed: int
    computed_root: bytes | None
    first_mismatch_index: int | None


def _keys(vkeys: str | Sequence[str]) -> list[VerifierKey]:
    texts = [vkeys] if isinstance(vkeys, str) else list(vkeys)
    if not texts:
        raise MalformedInputError("at least one verifier key is needed")
    try:
        return [VerifierKey.parse(text) for text in texts]
    except NoteError as exc:
        raise MalformedInputError(f"verifier key: {exc}") from exc


def _open(note: str | bytes, keys: list[VerifierKey], origin: str | None) -> Checkpoint | str:
    """The verified checkpoint, or the reason it is not trusted."""
    try:
        parse_note(note)
    except NoteError as exc:
        raise MalformedInputError(f"checkpoint note: {exc}") from exc
    try:
        text = verify_note(note, keys).text
    except NoteError as exc:
        return f"checkpoint signature: {exc}"
    try:
        checkpoint = parse_checkpoint(text)
    except NoteError as exc:
        raise MalformedInputError(f"checkpoint body: {exc}") from exc
    if origin is not None:
        if checkpoint.origin != origin:
            return f"checkpoint origin {checkpoint.origin!r} is not {origin!r}"
    elif not _under_key(checkpoint.origin, keys[0].name):
        return (
            f"checkpoint origin {checkpoint.origin!r} is neither {keys[0].name!r}"
            f" nor a log under it"
        )
    return checkpoint


def _under_key(origin: str, key_name: str) -> bool:
    """Whether a log is the key's own or one under it (the service names each tenant's log
    `<key name>/<tenant id>`, all signed with its one key)."""
    return origin == key_name or origin.startswith(key_name.rstrip("/") + "/")


def _leaf_log(leaf: bytes) -> str | None:
    """The log a leaf names (every leaf of the service carries its log's origin as `log`)."""
    try:
        data = json.loads(leaf)
    except (ValueError, RecursionError):  # not JSON (or nested beyond the parser's depth)
        return None
    log = data.get("log") if isinstance(data, dict) else None
    return log if isinstance(log, str) else None


def verify_inclusion_proof(
    proof_text: str | bytes,
    leaf: bytes,
    vkey: str | Sequence[str],
    *,
    origin: str | None = None,
) -> InclusionResult:
    """Check a tlog-proof for ``leaf`` (the auditor's own copy of the leaf bytes).

    Checks the checkpoint's origin (default: the log the leaf names, else the first key's name
    or a log under it), key name and ID, signature, then the inclusion of
    ``SHA-256(0x00 || leaf)`` at the proof's index.
    """
    try:
        proof = parse_tlog_proof(proof_text)
    except ProofFormatError as exc:
        raise MalformedInputError(f"tlog-proof: {exc}") from exc
    hashed = leaf_hash(leaf)
    opened = _open(proof.checkpoint, _keys(vkey), origin if origin is not None else _leaf_log(leaf))
    if isinstance(opened, str):
        return InclusionResult(
            ok=False, reason=opened, index=proof.index, leaf_hash=hashed, checkpoint=None
        )
    try:
        verify_inclusion(hashed, proof.index, opened.size, proof.proof, opened.root_hash)
    except ProofError as exc:
        reason: str | None = f"inclusion: {exc}"
    else:
        reason = None
    return InclusionResult(
        ok=reason is None, reason=reason, index=proof.index, leaf_hash=hashed, checkpoint=opened
    )


def verify_consistency_notes(
    old_note: str | bytes,
    new_note: str | bytes,
    proof: str | bytes | Sequence[bytes],
    vkey: str | Sequence[str],
    *,
    origin: str | None = None,
) -> ConsistencyResult:
    """Check both signed checkpoints and the consistency proof (JSON text or hashes) between them.

    Both must be of one log (``origin``, by default the key's name or a log under it).
    Following RFC 9162 strictly, an old checkpoint of size 0 is rejected: it commits to nothing.
    """
    if isinstance(proof, str | bytes):
        try:
            hashes: Sequence[bytes] = parse_consistency_proof(proof)
        except ProofFormatError as exc:
            raise MalformedInputError(f"consistency proof: {exc}") from exc
    else:
        hashes = proof
    keys = _keys(vkey)
    old, new = _open(old_note, keys, origin), _open(new_note, keys, origin)
    if isinstance(old, str) or isinstance(new, str):
        return ConsistencyResult(
            ok=False,
            reason=old if isinstance(old, str) else str(new),
            old=None if isinstance(old, str) else old,
            new=None if isinstance(new, str) else new,
        )
    if old.origin != new.origin:
        mixed = f"the checkpoints are of two logs: {old.origin!r} and {new.origin!r}"
        return ConsistencyResult(ok=False, reason=mixed, old=old, new=new)
    try:
        verify_consistency(old.size, new.size, hashes, old.root_hash, new.root_hash)
    except ProofError as exc:
        return ConsistencyResult(ok=False, reason=f"consistency: {exc}", old=old, new=new)
    return ConsistencyResult(ok=True, reason=None, old=old, new=new)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportResult:
    """``first_bad_index`` is the leaf index of the first entry that fails, if one does."""

    ok: bool
    reason: str | None
    checkpoint: Checkpoint | None
    entries: int
    first_bad_index: int | None = None


def verify_export(
    document: str | bytes, vkey: str | Sequence[str], *, origin: str | None = None
) -> ExportResult:
    """Check a `consent-audit-export/v1` file (GET /v1/audit/export, `consent audit export`)
    with a verifier key obtained independently of it (the file's own `vkey` proves nothing):
    the checkpoint's signature and origin (default: the origin the checkpoint names, which
    must be signed by the trusted key), its size against `tree_size`, and every entry's
    inclusion proof, in increasing index order."""
    try:
        data = json.loads(document)
        kind = data.get("format")
        note, size, entries = str(data["checkpoint"]), int(data["tree_size"]), data["entries"]
        parsed = [
            (
                int(e["leaf_index"]),
                base64.b64decode(e["leaf"], validate=True),
                [base64.b64decode(h, validate=True) for h in e["inclusion_proof"]],
            )
            for e in entries
        ]
    except KeyError as exc:
        raise MalformedInputError(f"export file: no {exc.args[0]!r} field") from exc
    except (ValueError, TypeError, AttributeError) as exc:
        raise MalformedInputError(f"export file: {exc}") from exc
    if kind != "consent-audit-export/v1":
        raise MalformedInputError("not a consent-audit-export/v1 file")
    expected_origin = origin if origin is not None else note.split("\n", 1)[0]
    opened = _open(note, _keys(vkey), expected_origin)
    if isinstance(opened, str):
        return ExportResult(ok=False, reason=opened, checkpoint=None, entries=len(parsed))
    if opened.size != size:
        mismatch = f"tree_size {size} is not the checkpoint's size {opened.size}"
        return ExportResult(ok=False, reason=mismatch, checkpoint=opened, entries=len(parsed))
    previous = -1
    for index, leaf, proof in parsed:
        reason: str | None
        if index <= previous:
            reason = f"entry {index}: out of order or repeated"
        else:
            try:
                verify_inclusion(leaf_hash(leaf), index, size, proof, opened.root_hash)
                reason = None
            except ProofError as exc:
                reason = f"entry {index}: {exc}"
        if reason is not None:
            return ExportResult(
                ok=False,
                reason=reason,
                checkpoint=opened,
                entries=len(parsed),
                first_bad_index=index,
            )
        previous = index
    return ExportResult(ok=True, reason=None, checkpoint=opened, entries=len(parsed))


def _first_difference(computed: list[bytes], expected: list[bytes]) -> int:
    for position, value in enumerate(computed):
        if position >= len(expected) or not hmac.compare_digest(value, expected[position]):
            return position
    return len(computed)


def _duplicate_uuid(chunk: list[bytes], seen: set[str]) -> tuple[int, str] | None:
    for position, data in enumerate(chunk):
        try:
            event_uuid = json.loads(data)["event_uuid"]
        except (ValueError, TypeError, KeyError):
            return position, "leaf is not a JSON object with an event_uuid"
        if not isinstance(event_uuid, str) or event_uuid in seen:
            return position, f"duplicate or invalid event_uuid {event_uuid!r}"
        seen.add(event_uuid)
    return None


def _check_chunk(
    chunk: list[bytes],
    hashes: list[bytes],
    expected: Iterator[bytes] | None,
    seen: set[str] | None,
) -> tuple[int, str] | None:
    """Offset in the chunk and reason of its first bad leaf, if any."""
    if expected is not None:
        wanted = list(islice(expected, len(hashes)))
        if hashes != wanted:
            return _first_difference(hashes, wanted), "leaf hash differs from the stored one"
    if seen is not None:
        return _duplicate_uuid(chunk, seen)
    return None


def replay(
    leaves: Iterable[bytes],
    note: str | bytes,
    vkey: str | Sequence[str],
    *,
    origin: str | None = None,
    expected_leaf_hashes: Iterable[bytes] | None = None,
    check_event_uuids: bool = False,
) -> ReplayResult:
    """Recompute the root of the first ``size`` leaves and compare it with a signed checkpoint.

    ``leaves`` are leaf bytes in index order (extra leaves after ``size`` are not read). With
    ``expected_leaf_hashes`` (e.g. the stored ``leaf_hash`` column) the first leaf whose bytes do
    not hash to the stored hash is reported; ``check_event_uuids`` reports the first repeated
    ``event_uuid``. Streams in aligned chunks of 4096 leaves, so memory stays small.
    """
    opened = _open(note, _keys(vkey), origin)
    if isinstance(opened, str):
        return _replay_result(opened, None, 0, None, None)
    source, frontier = iter(leaves), Frontier()
    expected = None if expected_leaf_hashes is None else iter(expected_leaf_hashes)
    seen: set[str] | None = set() if check_event_uuids else None
    while frontier.size < opened.size:
        wanted = min(_CHUNK, opened.size - frontier.size)
        chunk = list(islice(source, wanted))
        hashes = leaf_hashes(chunk)
        problem = _check_chunk(chunk, hashes, expected, seen)
        if problem is None and len(chunk) < wanted:
            problem = len(chunk), "fewer leaves than the checkpoint size"
        if problem is not None:
            index = frontier.size + problem[0]
            return _replay_result(problem[1], opened, index, None, index)
        if len(chunk) == _CHUNK:
            frontier.append_subtree(_CHUNK_LEVEL, root_from_leaf_hashes(hashes))
        else:
            frontier.extend(hashes)
    root = frontier.root()
    reason = None if hmac.compare_digest(root, opened.root_hash) else "root mismatch"
    return _replay_result(reason, opened, frontier.size, root, None)


def _replay_result(
    reason: str | None,
    checkpoint: Checkpoint | None,
    replayed: int,
    root: bytes | None,
    mismatch: int | None,
) -> ReplayResult:
    return ReplayResult(
        ok=reason is None,
        reason=reason,
        checkpoint=checkpoint,
        leaves_replayed=replayed,
        computed_root=root,
        first_mismatch_index=mismatch,
    )
