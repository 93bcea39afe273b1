# Copyright 2026 The consent authors
# SPDX-License-Identifier: Apache-2.0
"""C2SP signed-note and tlog-checkpoint: known answers, round trips and strict parsing."""

from __future__ import annotations

import base64
import hashlib

import pytest

from consent.audit.checkpoint import (
    MAX_SIGNATURES,
    Checkpoint,
    InvalidSignatureError,
    NoteError,
    NoteSigner,
    UnverifiedNoteError,
    VerifierKey,
    format_checkpoint,
    key_id,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
    sign_checkpoint,
    sign_note,
    verify_note,
)

pytestmark = pytest.mark.unit

DASH = "\u2014"
# c2sp.org/signed-note example key and note.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    f"{DASH} example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
# golang.org/x/mod/sumdb/note TestSign: Ed25519 is deterministic, so signing must match exactly.
GO_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    f"{GO_TEXT}\n{DASH} PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
# A real sum.golang.org checkpoint (origin differs from the key name).
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_NOTE = (
    "go.sum database tree\n13485\n/ZWur4obeiqK+ASdnPK+/Rmz6LPQMUeSmHh0+UkL54Y=\n\n"
    f"{DASH} sum.golang.org "
    "Az3grnQReYTvpCrRxT+w50vixbqBlB/aPS8bL8f8KW4HHP+UjLSXOJgCh4f54n8hO6lrESglzyRXMXnhaWzaeY3zqw8=\n"
)

ORIGIN = "consent.example.com/audit/t1/2026"
ROOT = hashlib.sha256(b"root").digest()
CHECKPOINT = Checkpoint(ORIGIN, 42, ROOT)


def signer(name: str = ORIGIN, seed: int = 1) -> NoteSigner:
    return NoteSigner.from_seed(name, bytes([seed]) * 32)


def test_c2sp_key_id_known_answer() -> None:
    key = VerifierKey.parse(SPEC_VKEY)
    assert key.name == "example.com/foo"
    assert key.key_id.hex() == "530d903a"
    assert key_id("example.com/foo", key.public_key).hex() == "530d903a"
    assert str(key) == SPEC_VKEY


def test_c2sp_example_note_verifies() -> None:
    verified = verify_note(SPEC_NOTE, [VerifierKey.parse(SPEC_VKEY)])
    assert verified.text == "This is an example message.\n"
    assert [str(k) for k in verified.verified_by] == [SPEC_VKEY]
    tampered = SPEC_NOTE.replace("example message", "example massage")
    with pytest.raises(InvalidSignatureError):
        verify_note(tampered, [VerifierKey.parse(SPEC_VKEY)])


def test_go_signing_known_answer() -> None:
    peter = NoteSigner.from_seed("PeterNeumann", GO_SEED)
    assert peter.vkey == GO_VKEY
    assert sign_note(GO_TEXT, [peter]) == GO_NOTE
    assert verify_note(GO_NOTE.encode(), [VerifierKey.parse(GO_VKEY)]).text == GO_TEXT


def test_real_sumdb_checkpoint_opens_with_its_origin() -> None:
    key = VerifierKey.parse(SUMDB_VKEY)
    checkpoint, verified = open_checkpoint(SUMDB_NOTE, [key], origin="go.sum database tree")
    assert checkpoint.size == 13485
    assert verified.verified_by == (key,)
    with pytest.raises(NoteError, match="origin"):
        open_checkpoint(SUMDB_NOTE, [key], origin="sum.golang.org")


def test_sign_and_open_round_trip() -> None:
    log = signer()
    note = sign_checkpoint(CHECKPOINT, [log])
    assert note.startswith(f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n\n{DASH} {ORIGIN} ")
    checkpoint, verified = open_checkpoint(note, [log.verifier], origin=ORIGIN)
    assert checkpoint == CHECKPOINT
    assert verified.text == format_checkpoint(CHECKPOINT)
    assert VerifierKey.parse(log.vkey) == log.verifier


def test_unknown_signatures_are_ignored() -> None:
    log, witness, stranger = signer(), signer("witness.example/w1", 2), signer(seed=3)
    note = sign_checkpoint(CHECKPOINT, [stranger, witness, log])
    assert open_checkpoint(note, [log.verifier], origin=ORIGIN)[0] == CHECKPOINT
    verified = verify_note(note, [log.verifier, witness.verifier])
    assert {k.name for k in verified.verified_by} == {ORIGIN, "witness.example/w1"}


def test_note_without_trusted_signature_is_rejected() -> None:
    note = sign_checkpoint(CHECKPOINT, [signer(seed=3)])
    with pytest.raises(UnverifiedNoteError):
        verify_note(note, [signer().verifier])


def test_wrong_key_name_or_id_is_not_trusted() -> None:
    log = signer()
    note = sign_checkpoint(CHECKPOINT, [log])
    renamed = VerifierKey(ORIGIN + "x", log.verifier.key_id, log.verifier.public_key)
    other_id = VerifierKey(ORIGIN, b"\x00\x00\x00\x00", log.verifier.public_key)
    for key in (renamed, other_id):
        with pytest.raises(UnverifiedNoteError):
            verify_note(note, [key])


def test_bad_signature_from_trusted_key_rejects_the_note() -> None:
    log = signer()
    note = sign_checkpoint(CHECKPOINT, [log])
    forged = note.replace("\n42\n", "\n43\n")
    with pytest.raises(InvalidSignatureError):
        verify_note(forged, [log.verifier])


def test_sixteen_signatures_accepted_and_too_many_rejected() -> None:
    log = signer()
    witnesses = [signer(f"w{i}.example", i + 10) for i in range(15)]
    note = sign_checkpoint(CHECKPOINT, [*witnesses, log])
    assert len(parse_note(note).signatures) == 16
    assert open_checkpoint(note, [log.verifier], origin=ORIGIN)[0] == CHECKPOINT
    line = note.splitlines(keepends=True)[-1]
    crowded = note + line * (MAX_SIGNATURES - 16 + 1)
    with pytest.raises(NoteError, match="more than"):
        parse_note(crowded)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda n: n.replace("\n\n", "\n\n\n"),  # extra blank line before the signatures
        lambda n: n + "\n",  # trailing blank line
        lambda n: n.replace("\n", "\r\n"),  # CRLF
        lambda n: n.replace("\n42\n", "\n42\r\n"),  # a lone CR
        lambda n: n.replace(DASH, "-"),  # ASCII dash
        lambda n: n.replace(f"{DASH} ", f"{DASH}  "),  # two spaces
        lambda n: n.rstrip("\n"),  # unterminated signature line
        lambda n: n.replace("\n42\n", "\n4\t2\n"),  # control character
        lambda n: n.replace("=\n", "\n"),  # unpadded base64
        lambda n: n.split("\n\n")[0] + "\n",  # no signatures
    ],
)
def test_malformed_notes_do_not_verify(mutate: object) -> None:
    assert callable(mutate)
    log = signer()
    note = sign_checkpoint(CHECKPOINT, [log])
    with pytest.raises(NoteError):
        open_checkpoint(mutate(note), [log.verifier], origin=ORIGIN)


def test_invalid_utf8_is_rejected() -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        parse_note(b"\xff\n\n" + f"{DASH} a AAAAAAA=\n".encode())


@pytest.mark.parametrize(
    "text",
    [
        "origin\n42\n",  # too few lines
        "origin\n042\n" + base64.b64encode(ROOT).decode() + "\n",  # leading zero
        "origin\n-1\n" + base64.b64encode(ROOT).decode() + "\n",
        "origin\n18446744073709551616\n" + base64.b64encode(ROOT).decode() + "\n",
        "origin\n1\n" + base64.b64encode(ROOT[:31]).decode() + "\n",  # short root
        "\n1\n" + base64.b64encode(ROOT).decode() + "\n",  # empty origin
        "origin\n1\n" + base64.b64encode(ROOT).decode(),  # no final newline
        "origin\n1\n" + base64.b64encode(ROOT).decode() + "\n\n",  # empty extension line
    ],
)
def test_malformed_checkpoint_bodies(text: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(text)


def test_checkpoint_extension_lines_round_trip() -> None:
    checkpoint = Checkpoint(ORIGIN, 0, ROOT, ("ext one",))
    assert parse_checkpoint(format_checkpoint(checkpoint)) == checkpoint


@pytest.mark.parametrize(
    "vkey",
    [
        "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # wrong id
        "example.com/bar+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # wrong name
        "example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # upper hex
        "example.com/foo+530d903a+AukyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # type byte
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2",  # truncated
        "example.com/foo+530d903a",
        "example com+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    ],
)
def test_malformed_vkeys(vkey: str) -> None:
    with pytest.raises(NoteError):
        VerifierKey.parse(vkey)


def test_signing_rejects_bad_text() -> None:
    with pytest.raises(NoteError):
        sign_note("no newline", [signer()])
    with pytest.raises(NoteError):
        sign_note("a\rb\n", [signer()])
    with pytest.raises(NoteError):
        sign_note("ok\n", [])
    with pytest.raises(NoteError):
        signer(name="bad name")
