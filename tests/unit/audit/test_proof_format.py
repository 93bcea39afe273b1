# Copyright 2026 The consent authors
# SPDX-License-Identifier: Apache-2.0
"""c2sp.org/tlog-proof@v1 text and consistency-proof JSON: round trips and strict parsing."""

from __future__ import annotations

import base64
import hashlib

import pytest

from consent.audit.proof_format import (
    TLOG_PROOF_HEADER,
    ProofFormatError,
    TlogProof,
    format_consistency_proof,
    format_tlog_proof,
    parse_consistency_proof,
    parse_tlog_proof,
)

pytestmark = pytest.mark.unit

HASHES = tuple(hashlib.sha256(bytes([i])).digest() for i in range(3))
NOTE = (
    "example.com/log\n5\n"
    + base64.b64encode(HASHES[0]).decode()
    + "\n\n\u2014 example.com/log AAAA\n"
)
B64 = [base64.b64encode(h).decode() for h in HASHES]


def test_round_trip_with_extra() -> None:
    proof = TlogProof(index=4, proof=HASHES, checkpoint=NOTE, extra=b"ctx")
    text = format_tlog_proof(proof)
    assert text == (
        f"{TLOG_PROOF_HEADER}\nextra Y3R4\nindex 4\n{B64[0]}\n{B64[1]}\n{B64[2]}\n\n{NOTE}"
    )
    assert parse_tlog_proof(text) == proof
    assert parse_tlog_proof(text.encode()) == proof


def test_round_trip_without_extra_or_hashes() -> None:
    proof = TlogProof(index=0, proof=(), checkpoint=NOTE)
    text = format_tlog_proof(proof)
    assert text == f"{TLOG_PROOF_HEADER}\nindex 0\n\n{NOTE}"
    assert parse_tlog_proof(text) == proof


GOOD = f"{TLOG_PROOF_HEADER}\nindex 4\n{B64[0]}\n\n{NOTE}"


@pytest.mark.parametrize(
    "text",
    [
        GOOD.replace("@v1", "@v2"),
        GOOD.replace("index 4", "index 04"),
        GOOD.replace("index 4", "index -4"),
        GOOD.replace("index 4", "index  4"),
        GOOD.replace("index 4", "index 18446744073709551615"),
        GOOD.replace("index 4\n", ""),
        GOOD.replace(B64[0], B64[0][:-1]),  # bad padding
        GOOD.replace(B64[0], base64.b64encode(HASHES[0][:31]).decode()),  # 31 bytes
        GOOD.replace(B64[0], B64[0] + " "),
        GOOD.replace(f"{B64[0]}\n\n", f"{B64[0]}\n"),  # no blank line
        GOOD.replace("index 4\n", "index 4\nextra Y3R4\n"),  # extra after index
        f"{TLOG_PROOF_HEADER}\nindex 4\n{B64[0]}\n\n",  # no checkpoint
        GOOD.replace("\n", "\r\n", 1),
    ],
)
def test_strict_parse(text: str) -> None:
    assert text != GOOD
    with pytest.raises(ProofFormatError):
        parse_tlog_proof(text)


def test_good_reference_parses() -> None:
    assert parse_tlog_proof(GOOD).proof == (HASHES[0],)


def test_non_canonical_base64_is_rejected() -> None:
    canonical = base64.b64encode(HASHES[0]).decode()
    last = canonical[-2]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sneaky = canonical[:-2] + alphabet[alphabet.index(last) ^ 1] + "="
    assert base64.b64decode(sneaky) == HASHES[0]  # same bytes, different text
    with pytest.raises(ProofFormatError, match="canonical"):
        parse_tlog_proof(GOOD.replace(canonical, sneaky))


def test_consistency_json_round_trip() -> None:
    text = format_consistency_proof(HASHES)
    assert text == '["' + '", "'.join(B64) + '"]'
    assert parse_consistency_proof(text) == HASHES
    assert parse_consistency_proof(b"[]") == ()


@pytest.mark.parametrize(
    "text",
    ["{}", "[1]", f'["{B64[0]}", null]', '["AAAA"]', "not json", f'"{B64[0]}"', b"\xff"],
)
def test_consistency_json_strict(text: str | bytes) -> None:
    with pytest.raises(ProofFormatError):
        parse_consistency_proof(text)


def test_format_rejects_bad_values() -> None:
    with pytest.raises(ProofFormatError):
        format_tlog_proof(TlogProof(index=-1, proof=(), checkpoint=NOTE))
    with pytest.raises(ProofFormatError):
        format_tlog_proof(TlogProof(index=0, proof=(b"short",), checkpoint=NOTE))
    with pytest.raises(ProofFormatError):
        format_consistency_proof([b"short"])
