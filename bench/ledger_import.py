"""Bulk import (`consent import`) throughput, and whether it stays flat as the file grows.

    .venv/bin/python bench/ledger_import.py [--rows 50000] [--runs 1]

Prints ONE JSON object on stdout (progress goes to stderr):

- rows_per_s: rows of a CSV file imported per second by `import_file` (what `consent import`
  runs): each row a first-sight e-mail address with one consent, all in ONE transaction, as
  the command does, on a fresh tenant of a fresh database whose tables were analysed after 50
  rows (a service used a little, as autovacuum leaves it): the planner's statistics describe
  small tables, and nothing the import writes is visible to autovacuum until it commits.
- first_tenth_rows_per_s, last_tenth_rows_per_s: the rate over the first and the last tenth of
  the rows; slowdown = first / last. A row's cost that grows with the rows already imported
  shows as a slowdown well above 1 (it was 4-5x at 30,000 rows before the import analysed its
  own writes).

The database is its own: an embedded PostgreSQL in a temporary directory, or a new database on
the server named by CONSENT_BENCH_DATABASE_URL; either is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
from ledger import postgres_server

from consent.consents.importer import import_file
from consent.crypto.keys import KeyRing, load_keyring
from consent.db.database import Database
from consent.db.migrate import apply_migrations, default_migrations_dir
from consent.db.scratch import create_database, drop_database
from consent.tenancy.service import create_tenant_with_admin_key

_DONE = re.compile(r"import: ([\d,]+)/")


def log(message: str) -> None:
    print(f"[bench/ledger_import] {message}", file=sys.stderr, flush=True)


class ProgressClock:
    """Stands in for stderr: the import's progress lines, timed (rows done -> seconds)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.points: list[tuple[int, float]] = [(0, 0.0)]

    def write(self, text: str) -> int:
        for match in _DONE.finditer(text):
            self.points.append((int(match.group(1).replace(",", "")), self.elapsed()))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        """As a terminal: the import then reports progress every quarter second."""
        return True

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def rate_between(self, low: int, high: int) -> float:
        """Rows per second from the first point at or past `low` to the first at or past
        `high` (progress lines come every few tenths of a second)."""
        start = next(p for p in self.points if p[0] >= low)
        end = next((p for p in self.points if p[0] >= high), self.points[-1])
        return (end[0] - start[0]) / (end[1] - start[1]) if end[1] > start[1] else 0.0


@contextlib.asynccontextmanager
async def database(server_dsn: str) -> AsyncIterator[str]:
    """A fresh database on the benchmark's server."""
    dsn = await create_database(server_dsn, prefix="bench_import", migrate=False)
    try:
        yield dsn
    finally:
        await drop_database(server_dsn, dsn)


def write_csv(path: Path, rows: int, run: int) -> None:
    with path.open("w") as out:
        out.write("identifier_type,identifier_value,purpose,choice,occurred_at,channel\n")
        for i in range(rows):
            out.write(f"email,r{run}.u{i}@example.com,analytics,granted,2025-01-01T00:00:00Z,web\n")


async def one_run(
    db: Database, keyring: KeyRing, work: Path, rows: int, run: int
) -> dict[str, Any]:
    tenant, _ = await create_tenant_with_admin_key(db, f"bench import {run}")
    async with db.system() as conn:
        await conn.execute(
            "insert into purpose (tenant_id, key, name, legal_basis, max_age_days) "
            "values ($1, 'analytics', 'Analytics', 'consent', 395)",
            tenant.id,
        )
    # A service that has been used a little: a few rows committed and the tables analysed
    # while small, as autovacuum does, so the planner's statistics describe small tables.
    warm = work / f"warm-{run}.csv"
    write_csv(warm, 50, -run - 1)
    await import_file(db, keyring, UUID(str(tenant.id)), warm, stderr=ProgressClock())  # type: ignore[arg-type]
    async with db.system() as conn:
        await conn.execute("analyze")
    path = work / f"import-{run}.csv"
    write_csv(path, rows, run)
    clock = ProgressClock()
    result = await import_file(db, keyring, UUID(str(tenant.id)), path, stderr=clock)  # type: ignore[arg-type]
    seconds = clock.elapsed()
    if result.imported != rows:
        raise RuntimeError(f"imported {result.imported} of {rows} rows")
    tenth = rows // 10
    first = clock.rate_between(0, tenth)
    last = clock.rate_between(rows - tenth, rows)
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds, 1),
        "first_tenth_rows_per_s": round(first, 1),
        "last_tenth_rows_per_s": round(last, 1),
        "slowdown": round(first / last, 2) if last else None,
    }


async def main_async(args: argparse.Namespace, server_dsn: str, work: Path) -> dict[str, Any]:
    async with database(server_dsn) as dsn:
        conn = await asyncpg.connect(dsn)
        await apply_migrations(conn, default_migrations_dir())
        await conn.close()
        db = await Database.connect(dsn, min_size=1, max_size=4)
        keyring = load_keyring(work / "keys")
        try:
            runs = []
            for run in range(args.runs):
                log(f"run {run + 1}: importing {args.rows:,} rows")
                runs.append(await one_run(db, keyring, work, args.rows, run))
                log(json.dumps(runs[-1]))
        finally:
            await db.close()
    return {
        "benchmark": "ledger_import",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "database": "external" if os.environ.get("CONSENT_BENCH_DATABASE_URL") else "embedded",
        **runs[-1],
        "runs": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="consent-bench-import-"))
    try:
        # bench/ledger.py's server (it sizes an embedded one with its own event loop: first)
        with postgres_server(work) as server_dsn:
            print(json.dumps(asyncio.run(main_async(args, server_dsn, work))))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
