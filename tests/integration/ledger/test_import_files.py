"""`consent import` with the files admins really have: a BOM, a stray non-UTF-8 byte, columns
in the wrong place; and its progress output when stderr is a log file, not a terminal."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from consent.consents.importer import ImportResult, ImportUsageError, import_file
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from tests.integration.ledger.conftest import Catalog
from tests.support.cli import ROOT, cli_env, run_consent

pytestmark = pytest.mark.integration

DAY_AGO = (datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)).isoformat()
HEADER = "identifier_type,identifier_value,purpose,choice,occurred_at,channel"


async def _import(
    db: Database, keyring: KeyRing, catalog: Catalog, path: Path, **options: Any
) -> tuple[ImportResult, str, list[dict[str, Any]]]:
    err = options.pop("stderr", None) or io.StringIO()
    report = io.BytesIO()
    result = await import_file(
        db, keyring, UUID(catalog.tenant.id), path, stderr=err, report=report, **options
    )
    lines = [json.loads(line) for line in report.getvalue().splitlines()]
    return result, err.getvalue(), lines


async def _events(db: Database) -> int:
    async with db.system() as conn:
        n: int = await conn.fetchval("select count(*) from consent_event")
        return n


async def test_an_ndjson_file_with_a_byte_order_mark_imports(
    catalog: Catalog, db: Database, keyring: KeyRing, tmp_path: Path
) -> None:
    """Windows tools write a UTF-8 BOM before the first line; CSV files are read past it, and
    so must NDJSON files be (the first row used to be rejected as "not valid JSON")."""
    rows = [
        {
            "identifier_type": "customer_id",
            "identifier_value": f"C-{i}",
            "purpose": "ads",
            "choice": "granted",
            "occurred_at": DAY_AGO,
            "channel": "web",
        }
        for i in range(2)
    ]
    path = tmp_path / "bom.ndjson"
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(json.dumps(r).encode() + b"\r\n" for r in rows))
    result, _, report = await _import(db, keyring, catalog, path)
    assert report == []
    assert (result.rows, result.imported, result.committed) == (2, 2, True)
    assert await _events(db) == 2


async def test_a_non_utf8_byte_names_its_own_line(
    catalog: Catalog, db: Database, keyring: KeyRing, tmp_path: Path
) -> None:
    """A Latin-1 byte deep in a CSV file: the report names that row (the error used to name
    the line where the decoder's 8 KiB chunk started) and nothing is imported."""
    lines = [HEADER] + [f"customer_id,C-{i},ads,granted,{DAY_AGO},web" for i in range(2, 3001)]
    bad_line = 2500
    lines[bad_line - 1] = f"customer_id,Ren\xe9-7,ads,granted,{DAY_AGO},web"
    path = tmp_path / "latin1.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    result, err, report = await _import(db, keyring, catalog, path, batch_size=500)
    assert [(r["line"], r["field"]) for r in report] == [(bad_line, "row")]
    assert "UTF-8" in report[0]["reason"]
    assert f"line {bad_line}: row: " in err
    assert (result.rows, result.valid, result.rejected, result.committed) == (2999, 2998, 1, False)
    assert await _events(db) == 0


@pytest.mark.parametrize("column", ["choice", "channel", "surface", "method"])
async def test_an_email_in_the_wrong_column_is_not_printed(
    catalog: Catalog, db: Database, keyring: KeyRing, tmp_path: Path, column: str
) -> None:
    """Columns exported in another order put an e-mail address where a choice or channel
    belongs: the reason says which values are accepted, without echoing the address."""
    secret = "ann.wrong.column@example.com"
    row = {
        "identifier_type": "customer_id",
        "identifier_value": "C-1",
        "purpose": "ads",
        "choice": "granted",
        "occurred_at": DAY_AGO,
        "channel": "web",
        column: secret,
    }
    path = tmp_path / "swapped.ndjson"
    path.write_text(json.dumps(row) + "\n")
    result, err, report = await _import(db, keyring, catalog, path)
    assert [r["field"] for r in report] == [column]
    assert secret not in err
    assert secret not in json.dumps(report)
    assert "one of" in report[0]["reason"]
    assert not result.committed


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def _many(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "many.csv"
    with path.open("w") as f:
        f.write(HEADER + "\n")
        for i in range(rows):
            f.write(f"customer_id,C-{i},ads,granted,{DAY_AGO},web\n")
    return path


async def test_progress_redraws_one_line_on_a_terminal(
    catalog: Catalog, db: Database, keyring: KeyRing, tmp_path: Path
) -> None:
    path = await _many(tmp_path, 1500)
    _, err, _ = await _import(db, keyring, catalog, path, batch_size=100, stderr=_Terminal())
    updates = err.split("\r")
    assert len(updates) >= 3, err  # the status line is redrawn while the import runs
    assert "import: 1,500/1,500 rows (100%)" in updates[-1]


async def test_progress_into_a_log_file_is_plain_lines(
    catalog: Catalog, db: Database, keyring: KeyRing, tmp_path: Path
) -> None:
    """Under cron or CI stderr is a file: no carriage returns (a log of one endless line of
    redraws), only whole lines, and the final count with the rate."""
    path = await _many(tmp_path, 1500)
    result, err, _ = await _import(db, keyring, catalog, path, batch_size=100)
    assert result.imported == 1500
    assert "\r" not in err
    assert err.endswith("\n")
    assert err.splitlines()[-1].startswith("import: 1,500/1,500 rows (100%), ")
    assert len(err.splitlines()) <= 3


async def test_an_unclosed_quote_names_the_row_it_opens(
    catalog: Catalog, db: Database, keyring: KeyRing, tmp_path: Path
) -> None:
    """An unclosed quote swallows the rest of the file into one field; the error names the row
    where the quote opened (it used to name the end of the file)."""
    lines = [HEADER] + [f"customer_id,C-{i},ads,granted,{DAY_AGO},web" for i in range(2, 2001)]
    lines[9] = f'customer_id,"C-10,ads,granted,{DAY_AGO},web'
    path = tmp_path / "quote.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportUsageError, match=r"^line 10: not valid CSV \("):
        await _import(db, keyring, catalog, path)
    assert await _events(db) == 0


async def test_the_report_may_not_overwrite_the_file_it_reports_on(
    catalog: Catalog, tmp_path: Path, database_dsn: str, keys_dir: Path
) -> None:
    """`--report` naming the input file truncated it before reading: the rows were lost and
    the import "succeeded" with 0 rows. Refused, the file kept."""
    path = tmp_path / "crm.ndjson"
    row = {
        "identifier_type": "customer_id",
        "identifier_value": "C-1",
        "purpose": "ads",
        "choice": "granted",
        "occurred_at": DAY_AGO,
        "channel": "web",
    }
    path.write_text(json.dumps(row) + "\n")
    before = path.read_bytes()
    env = cli_env(database_dsn, keys_dir, tmp_path / "data")
    for report in (str(path), str(tmp_path / "." / "crm.ndjson")):
        done = run_consent(
            "import", str(path), "--tenant", catalog.tenant.id, "--report", report, env=env
        )
        assert done.returncode == 2, done.stderr
        assert "--report" in done.stderr
        assert path.read_bytes() == before


async def test_ctrl_c_rolls_back_and_says_so(
    catalog: Catalog, db: Database, tmp_path: Path, database_dsn: str, keys_dir: Path
) -> None:
    """An admin stops a long import with Ctrl-C: one line saying nothing was committed and
    exit status 130, not a Python traceback."""
    path = await _many(tmp_path, 20_000)
    env = cli_env(database_dsn, keys_dir, tmp_path / "data")
    proc = subprocess.Popen(
        [sys.executable, "-m", "consent", "import", str(path), "--tenant", catalog.tenant.id],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not await _events_seen(db) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)  # rows are being written (uncommitted)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "consent import: interrupted" in err
    assert "nothing was committed" in err
    assert await _events(db) == 0


async def _events_seen(db: Database) -> bool:
    """Whether another session (the import) holds a write lock on consent_event."""
    async with db.system() as conn:
        found: bool = await conn.fetchval(
            "select exists (select 1 from pg_locks l join pg_class c on c.oid = l.relation"
            " where c.relname = 'consent_event' and l.mode = 'RowExclusiveLock'"
            " and l.pid <> pg_backend_pid())"
        )
        return found


async def test_a_semicolon_separated_file_is_refused_with_the_reason(
    catalog: Catalog, db: Database, keyring: KeyRing, tmp_path: Path
) -> None:
    """Excel in many locales saves "CSV" with semicolons: say so instead of listing the whole
    header line as one unknown column."""
    path = tmp_path / "excel.csv"
    path.write_text(HEADER.replace(",", ";") + f"\ncustomer_id;C-1;ads;granted;{DAY_AGO};web\n")
    with pytest.raises(ImportUsageError) as refused:
        await _import(db, keyring, catalog, path)
    message = str(refused.value)
    assert "separated by ';'" in message
    assert "commas" in message
    assert "unknown column(s) identifier_type;" not in message
