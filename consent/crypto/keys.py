"""The key ring: key-encryption keys, the lookup HMAC root key and the Ed25519 signing key.

Layout of the keys directory (default `.consent/keys`, mode 0700, files 0600):

    kek/<kek_id>.key   base64 of a 32-byte key-encryption key (old ones stay until retired)
    kek/current        the id of the KEK that wraps new data keys
    kek/retired        the ids of the KEKs `consent keys retire` destroyed, one a line (public)
    lookup.key         base64 of the 32-byte HMAC root key (per-tenant keys are derived by HKDF)
    signing.ed25519    PKCS#8 PEM Ed25519 private key for audit checkpoints and receipts

Data keys (one per subject) are AES-256-GCM keys wrapped by a KEK and stored in PostgreSQL with
the id of the KEK that wrapped them, so a rotation can re-wrap them while the service runs. Once
no data key is wrapped under an old KEK, `consent keys retire` removes its file (retire_kek): a
database backup taken before an erasure then no longer opens. Key material is never logged:
nothing here logs, and the repr of KeyRing shows ids only.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consent.crypto.aead import (
    KEY_BYTES,
    DecryptionError,
    derive_key,
    keyed_digest,
    new_key,
    open_sealed,
    seal,
)

__all__ = [
    "KeyError_",
    "KeyRing",
    "is_kek_id",
    "kek_id_of",
    "kek_ids_on_disk",
    "load_keyring",
    "parse_kek",
    "retire_kek",
    "retired_kek_ids",
    "rotate_kek",
]

_KEK_DIR: Final = "kek"
_CURRENT: Final = "current"
_RETIRED: Final = "retired"  # ids of destroyed KEKs: "retired before" is not "never existed"
_LOOKUP: Final = "lookup.key"
_SIGNING: Final = "signing.ed25519"
_LOCK: Final = ".generation.lock"  # empty; flock(2) on it serialises key generation
_RETIRING: Final = ".retiring"  # a KEK file being destroyed: no longer *.key, so never loaded
_KEK_ID_CHARS: Final = frozenset("0123456789abcdef")
_KEK_ID_LENGTH: Final = 16
_NOT_OTHERS: Final = stat.S_IRWXO | stat.S_IWGRP  # off a keys directory


class KeyError_(Exception):  # noqa: N801 - KeyError is a builtin with another meaning
    """A key is missing, malformed or unknown."""


def parse_kek(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"must decode to {KEY_BYTES} bytes")
    return raw


def kek_id_of(kek: bytes) -> str:
    """A short public id of a KEK (not secret: a hash of the key under a fixed label)."""
    return hashlib.sha256(b"consent/kek-id\x00" + kek).hexdigest()[:_KEK_ID_LENGTH]


def is_kek_id(text: str) -> bool:
    """Whether `text` has the form of a KEK id (so it can name a file in the KEK directory)."""
    return len(text) == _KEK_ID_LENGTH and set(text) <= _KEK_ID_CHARS


@contextlib.contextmanager
def _generation_lock(keys_dir: Path) -> Iterator[None]:
    """Serialise key generation between processes: the workers of a first `consent serve`
    start together, and each would otherwise generate (and keep using) keys of its own while
    only the last one written survives on disk."""
    _ensure_dir(keys_dir)
    fd = os.open(keys_dir / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_secret(path: Path, data: bytes) -> None:
    """Write a new secret file atomically with mode 0600."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    # Never through a symbolic link planted there; a file left there keeps its mode on open.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    # The rename is durable only once its directory is: without this a power cut could undo
    # it after data keys were wrapped under the new key and committed to PostgreSQL.
    _sync_dir(path.parent)


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data) + b"\n"


@dataclass(repr=False)
class KeyRing:
    keks: dict[str, bytes]
    current_kek_id: str
    lookup_root: bytes
    signing_key: Ed25519PrivateKey
    keys_dir: Path | None = None
    _current_mtime: float = field(default=0.0)
    _tenant_keys: dict[tuple[bytes, str], bytes] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"KeyRing(kek_ids={sorted(self.keks)}, current={self.current_kek_id})"

    # -- data keys ---------------------------------------------------------------------------
    def new_data_key(self) -> bytes:
        return new_key()

    def wrap(self, dek: bytes, aad: bytes) -> tuple[str, bytes]:
        """Wrap a data key under the current KEK; returns (kek_id, wrapped)."""
        self.refresh()
        return self.current_kek_id, seal(self.keks[self.current_kek_id], dek, aad)

    def unwrap(self, kek_id: str, wrapped: bytes, aad: bytes) -> bytes:
        kek = self.keks.get(kek_id)
        if kek is None:
            self.refresh(force=True)
            kek = self.keks.get(kek_id)
        if kek is None:
            raise KeyError_(f"unknown key-encryption key {kek_id}")
        try:
            return open_sealed(kek, wrapped, aad)
        except DecryptionError as exc:
            raise KeyError_("a data key does not unwrap under its KEK") from exc

    # -- lookups -----------------------------------------------------------------------------
    def _tenant_key(self, label: bytes, tenant_id: str) -> bytes:
        """A key of the tenant's derived from the lookup root under `label` (each use its own
        label, so no kind of digest stands for another), derived once per process."""
        key = self._tenant_keys.get((label, tenant_id))
        if key is None:
            key = derive_key(self.lookup_root, label + tenant_id.encode())
            self._tenant_keys[(label, tenant_id)] = key
        return key

    def lookup_key(self, tenant_id: str) -> bytes:
        return self._tenant_key(b"consent/lookup/v1/", tenant_id)

    def lookup_digest(self, tenant_id: str, id_type: str, normalized: str) -> bytes:
        message = id_type.encode() + b"\x00" + normalized.encode()
        return keyed_digest(self.lookup_key(tenant_id), message)

    # -- idempotency records -----------------------------------------------------------------
    def idempotency_key(self, tenant_id: str) -> bytes:
        """The tenant's key for the request hashes of idempotency records (consent/idempotency.py):
        derived apart from its lookup key, so neither kind of digest stands for the other."""
        return self._tenant_key(b"consent/idempotency/v1/", tenant_id)

    # -- import files ------------------------------------------------------------------------
    def import_file_key(self, tenant_id: str) -> bytes:
        """The tenant's key for the hashes by which `consent import` remembers the files it
        committed (consent/consents/importer.py): a one-row file is easy to rebuild, so a plain
        hash would confirm a guessed e-mail address. Derived apart from the lookup and
        idempotency keys."""
        return self._tenant_key(b"consent/import-file/v1/", tenant_id)

    # -- reload ------------------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> None:
        """Pick up a KEK rotation done by another process (`consent keys rotate`)."""
        if self.keys_dir is None:
            return
        current = self.keys_dir / _KEK_DIR / _CURRENT
        try:
            mtime = current.stat().st_mtime
        except FileNotFoundError:
            return
        if not force and mtime == self._current_mtime:
            return
        keks, current_id = _read_keks(self.keys_dir)
        # Keys only ever join the ring: data wrapped under a KEK retired since stays readable
        # here (there is none left once it is retired). The pointer is followed even when the
        # ring's current KEK is gone from the directory (rotated, then retired, before this
        # look): staying on it would wrap new data keys under a KEK no process can load again.
        # A ring whose KEK came from CONSENT_KEK has no keys_dir and never gets here.
        self.keks.update(keks)
        if current_id is not None and current_id in self.keks:
            self.current_kek_id = current_id
        self._current_mtime = mtime


def _read_keks(keys_dir: Path) -> tuple[dict[str, bytes], str | None]:
    kek_dir = keys_dir / _KEK_DIR
    keks: dict[str, bytes] = {}
    if kek_dir.is_dir():
        for path in sorted(kek_dir.glob("*.key")):
            try:
                text = path.read_text(encoding="ascii")
            except FileNotFoundError:  # retired between the listing and the read
                continue
            kek = parse_kek(text)
            keks[kek_id_of(kek)] = kek
    current_path = kek_dir / _CURRENT
    current = current_path.read_text(encoding="ascii").strip() if current_path.exists() else None
    return keks, current


def _ensure_dir(path: Path) -> None:
    """Create `path` (mode 0700) and make its entry durable. One made before (`mkdir -p`, a
    volume) that this process owns loses every permission of others and its group's write:
    whoever may write the keys directory can swap `kek/current` for a key of their own. (A
    group that reads it, as an operator may have set up for the service's user, keeps that.)"""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(PermissionError):  # a parent this process may not read
            _sync_dir(path.parent)
    st = path.stat()
    if st.st_uid == os.geteuid() and st.st_mode & _NOT_OTHERS:
        with contextlib.suppress(OSError):  # a read-only mount: nothing this process can do
            path.chmod(stat.S_IMODE(st.st_mode) & ~_NOT_OTHERS)


def _add_kek(keys_dir: Path, kek: bytes) -> str:
    kid = kek_id_of(kek)
    kek_dir = keys_dir / _KEK_DIR
    _ensure_dir(kek_dir)
    _write_secret(kek_dir / f"{kid}.key", _b64(kek))
    _write_secret(kek_dir / _CURRENT, kid.encode() + b"\n")
    return kid


def load_keyring(keys_dir: Path, *, kek: str | None = None, create: bool = True) -> KeyRing:
    """Load the key ring from `keys_dir`, generating missing keys when `create` is true.

    `kek` (base64, e.g. from CONSENT_KEK) becomes the current KEK; KEKs found in the
    directory stay available to unwrap data keys wrapped before. Processes that create keys at
    the same time take turns, so they all end up with the same keys.
    """
    if not create:
        return _load_keyring(keys_dir, kek, create=False)
    with _generation_lock(keys_dir):
        return _load_keyring(keys_dir, kek, create=True)


def _load_keyring(keys_dir: Path, kek: str | None, *, create: bool) -> KeyRing:
    keks, current = _read_keks(keys_dir)
    if kek is not None:
        env_kek = parse_kek(kek)
        current = kek_id_of(env_kek)
        keks[current] = env_kek
    elif current is None or current not in keks:
        if not create:
            raise KeyError_(f"no key-encryption key in {keys_dir}")
        fresh = new_key()
        current = _add_kek(keys_dir, fresh)
        keks[current] = fresh

    lookup_path = keys_dir / _LOOKUP
    if not lookup_path.exists():
        if not create:
            raise KeyError_(f"no lookup key in {keys_dir}")
        _write_secret(lookup_path, _b64(new_key()))
    lookup_root = parse_kek(lookup_path.read_text(encoding="ascii"))

    signing_path = keys_dir / _SIGNING
    if not signing_path.exists():
        if not create:
            raise KeyError_(f"no signing key in {keys_dir}")
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_secret(signing_path, pem)
    loaded = serialization.load_pem_private_key(signing_path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise KeyError_(f"{signing_path.name} is not an Ed25519 private key")

    ring = KeyRing(
        keks=keks,
        current_kek_id=current,
        lookup_root=lookup_root,
        signing_key=loaded,
        keys_dir=keys_dir if kek is None else None,
    )
    current_file = keys_dir / _KEK_DIR / _CURRENT
    if current_file.exists():
        ring._current_mtime = current_file.stat().st_mtime  # noqa: SLF001
    return ring


def rotate_kek(keys_dir: Path) -> str:
    """Generate a new KEK in `keys_dir` and make it current; returns its id."""
    with _generation_lock(keys_dir):
        return _add_kek(keys_dir, new_key())


def kek_ids_on_disk(keys_dir: Path) -> tuple[list[str], str | None]:
    """The ids of the KEKs in `keys_dir` (sorted) and the id its `current` file names."""
    keks, current = _read_keks(keys_dir)
    return sorted(keks), current


def retire_kek(keys_dir: Path, kek_id: str) -> bool:
    """Destroy the file of KEK `kek_id`; False when there is none (already retired).

    Refuses (KeyError_) the current KEK. The caller checks first that no data key is wrapped
    under it (consent.crypto.datakeys.retire_keks): this only removes the file. The file is
    renamed out of the `*.key` pattern first (a process loading the ring then sees it whole or
    not at all), overwritten with zeros and synced, then unlinked. The overwrite is best effort:
    a journalling or copy-on-write filesystem, an SSD's wear levelling or a snapshot may keep
    the old blocks, and copies of the keys directory (backups) are the operator's to destroy.
    """
    if not is_kek_id(kek_id):
        raise KeyError_(f"not a key-encryption key id: {kek_id!r}")
    kek_dir = keys_dir / _KEK_DIR
    with _generation_lock(keys_dir):
        _, current = _read_keks(keys_dir)
        if kek_id == current:
            raise KeyError_(f"{kek_id} is the current key-encryption key")
        paths = [p for p in kek_dir.glob("*.key") if _holds_kek(p, kek_id)]
        leftovers = list(kek_dir.glob(f"{kek_id}.key{_RETIRING}"))
        if paths or leftovers:  # recorded before the file goes: never gone and unrecorded
            _record_retired(keys_dir, kek_id)
        # A destruction that a crash interrupted is finished now, but it is no retirement.
        for leftover in leftovers:
            _destroy(leftover)
        for path in paths:  # normally one, <kek_id>.key
            _destroy(path.rename(path.with_name(path.name + _RETIRING)))
        if kek_dir.is_dir():
            _sync_dir(kek_dir)
    return bool(paths)


def retired_kek_ids(keys_dir: Path) -> frozenset[str]:
    """The ids of the KEKs retired from `keys_dir` (recorded since retirements are)."""
    try:
        text = (keys_dir / _KEK_DIR / _RETIRED).read_text(encoding="ascii")
    except FileNotFoundError:
        return frozenset()
    return frozenset(line for line in text.split() if is_kek_id(line))


def _record_retired(keys_dir: Path, kek_id: str) -> None:
    """Add `kek_id` to the ids of retired KEKs (under the generation lock)."""
    known = retired_kek_ids(keys_dir)
    if kek_id not in known:
        ids = sorted(known | {kek_id})
        _write_secret(keys_dir / _KEK_DIR / _RETIRED, "".join(f"{k}\n" for k in ids).encode())


def _holds_kek(path: Path, kek_id: str) -> bool:
    """Whether the file at `path` holds KEK `kek_id` (by its content, as the ring loads it: a
    file named after the id that holds another key, the current one say, is left alone)."""
    try:
        return kek_id_of(parse_kek(path.read_text(encoding="ascii"))) == kek_id
    except (FileNotFoundError, ValueError):
        return False


def _destroy(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, bytes(os.fstat(fd).st_size))
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()


def _sync_dir(path: Path) -> None:
    """Make the removal of a file in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
