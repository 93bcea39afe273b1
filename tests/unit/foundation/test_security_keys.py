"""Key files on disk: a key that data is wrapped under survives a power cut, and the keys
directory is private even when it was made before the first start."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from consent.crypto.keys import load_keyring, rotate_kek

pytestmark = pytest.mark.unit


class _DiskEvents:
    """Records (not replaces) the renames and fsyncs the key ring makes, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, int]] = []  # ("replace", inode of the target's directory)
        real_replace: Callable[..., None] = os.replace
        real_fsync: Callable[[int], None] = os.fsync

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            real_replace(src, dst, *args, **kwargs)
            self.events.append(("replace", Path(dst).parent.stat().st_ino))

        def fsync(fd: int) -> None:
            real_fsync(fd)
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                self.events.append(("fsync-dir", st.st_ino))

        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "fsync", fsync)

    def unsynced_renames(self) -> list[int]:
        """Directories with a rename not followed by an fsync of that directory."""
        pending: set[int] = set()
        for kind, inode in self.events:
            if kind == "replace":
                pending.add(inode)
            else:
                pending.discard(inode)
        return sorted(pending)


def test_a_new_kek_is_on_disk_for_good_before_data_keys_are_wrapped_under_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`consent keys rotate` writes a new KEK and then re-wraps every data key under it in
    PostgreSQL (durable at each commit). The KEK's file and the `current` pointer were renamed
    into place without a sync of their directory: after a power cut the directory entry could
    be gone while the database holds every data key wrapped under that KEK, unreadable."""
    keys = tmp_path / "keys"
    load_keyring(keys)
    events = _DiskEvents(monkeypatch)
    rotate_kek(keys)
    assert any(kind == "replace" for kind, _ in events.events)
    assert events.unsynced_renames() == []


def test_keys_generated_on_first_start_are_on_disk_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = _DiskEvents(monkeypatch)
    load_keyring(tmp_path / "keys")
    assert sum(kind == "replace" for kind, _ in events.events) >= 4  # kek, current, lookup, signing
    assert events.unsynced_renames() == []


def test_a_keys_directory_made_before_the_first_start_is_made_private(tmp_path: Path) -> None:
    """An operator who ran `mkdir -p .consent/keys` (or a volume mounted with a loose mode)
    got a keys directory that every local user could list, or write: replacing `kek/current`
    and a KEK file of one's own then has new data keys wrapped under a key the attacker holds.
    Others lose every permission, the group its write."""
    keys = tmp_path / "keys"
    (keys / "kek").mkdir(parents=True)
    keys.chmod(0o777)
    (keys / "kek").chmod(0o755)
    load_keyring(keys)
    assert stat.S_IMODE(keys.stat().st_mode) == 0o750  # a group that reads it keeps that
    assert stat.S_IMODE((keys / "kek").stat().st_mode) == 0o750
    for path in (p for p in keys.rglob("*") if p.is_file()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_a_key_never_lands_in_a_file_left_readable_by_others(tmp_path: Path) -> None:
    """A key is written to `<name>.<pid>.tmp` and renamed into place. A file of that name left
    behind with a loose mode kept its mode (O_CREAT sets none on an existing file): the new
    lookup key was then readable by every local user."""
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    stale = keys / f"lookup.key.{os.getpid()}.tmp"
    stale.write_bytes(b"")
    stale.chmod(0o644)
    load_keyring(keys)
    assert stat.S_IMODE((keys / "lookup.key").stat().st_mode) == 0o600


def test_a_key_is_never_written_through_a_symbolic_link(tmp_path: Path) -> None:
    keys, elsewhere = tmp_path / "keys", tmp_path / "elsewhere"
    keys.mkdir(mode=0o700)
    elsewhere.write_bytes(b"")
    (keys / f"lookup.key.{os.getpid()}.tmp").symlink_to(elsewhere)
    with pytest.raises(OSError, match="link"):
        load_keyring(keys)
    assert elsewhere.read_bytes() == b""
    assert not (keys / "lookup.key").exists()
