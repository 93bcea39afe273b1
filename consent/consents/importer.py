"""`consent import FILE`: bulk import of existing consents, all or nothing.

One row is one consent event. A CSV file has a header line naming its columns; an NDJSON file
has one JSON object per line. Columns (NDJSON: fields, string values):

    identifier_type, identifier_value   who (or subject_id: an existing subject's id)
    purpose, choice                     one purpose key; granted | denied | withdrawn
    occurred_at                         when the choice was made: RFC 3339 with a time zone,
                                        not before 1970
    channel                             web | app | email | sms | phone | store | post | other
    notice_version_id, language         optional: the notice version shown and its language
    surface, method                     default "import"
    agent_id, property_id               optional

An NDJSON line may instead be exactly the body of `POST /v1/consents` (a `choices` list);
`occurred_at` is required there too, since an import records past choices.

Every row is checked as the API checks it (shape, `validate_shape`, then the database checks of
`ConsentService.record_in`), inside ONE transaction of the tenant; each batch of rows runs in a
savepoint, and a batch with a bad row is replayed row by row, each in its own savepoint, so one
bad row never aborts the transaction. Rejected rows are reported as `line N: field: reason`
on stderr (the first 100) and, with `--report FILE`, all of them as NDJSON objects
`{"line", "field", "reason"}`. Reports never contain identifier values, nor a value refused
by a list of accepted ones (it may be an identifier in the wrong column): an unknown purpose or
identifier type is reported with the accepted ones, not with the value found (a device id such
as `a3f9c0d2` is a well-formed purpose key and identifier type). Progress goes to
stderr: on a terminal one status line redrawn in place, elsewhere (cron, CI) a plain line every
30 seconds; the last one gives the row count and rows per second.

Outcome and exit status:

    0  committed: every row was valid, or with --skip-invalid at least one row was valid
       (imported, or skipped as a duplicate; the rejected rows are in the report); an empty
       file, or one of duplicates only, imports nothing and exits 0
    1  nothing committed: a row was rejected (without --skip-invalid), every row was rejected
       (with --skip-invalid), or the database failed during the import
    2  nothing done: bad arguments, unreadable file, bad CSV header, unknown tenant
  130  interrupted (Ctrl-C): nothing committed

`--dry-run` does everything, reports the same and exits with the same status, but rolls back.

Running it again: the tenant's committed files are remembered by a hash of their bytes
(`import_run`), so importing the same file again (a retried job, a second cron run) does
nothing and exits 0, saying when it was imported; `--again` imports it once more. A rejected
or dry-run import is not remembered. The hash is an HMAC-SHA256 under the tenant's import file
key (`KeyRing.import_file_key`), not a plain SHA-256: a one-row file is easy to rebuild, and a
plain hash in a dump would confirm a guessed e-mail address. Files remembered before
(migration 0024) by their plain SHA-256 still count as imported.

Duplicates: a row that states a fact already recorded is skipped, not recorded twice (history
would show the same choice twice, and the audit log hold two leaves for one fact): its subject
(or a subject linked into it) has an event with the same occurred_at, the same choices (in any
order) and the same proof fields (notice version, language, surface, channel, method, agent,
property), whether that event came from an earlier import (an overlapping daily export: another
file, which the file hash does not catch), from the API, or from an earlier row of this file.
Skipped rows count as valid, and are reported as "skipped N duplicates". One query per batch
asks the database (which sees this import's own rows) about the batch; within a batch, a set
of the batch's facts finds repeats, so memory stays bounded by the batch size, not the file's.
`--again` only passes the file-hash check: the rows it repeats are still duplicates.

Speed: the tables were analysed (by autovacuum) before the import, perhaps while small, and it
cannot see the import's uncommitted rows. So that plans made for small tables do not scan what
the import has written (each row slower than the last), the import analyses the tables it
writes from inside its transaction at ANALYZE_FIRST_AT valid rows and each time that count
doubles (migrations/0016). `bench/ledger_import.py` measures the rate and its slowdown.

Size: a new subject holds no lock until the commit (its identifier row decides who creates
it), so the one transaction is not limited by the server's lock table; an import creating
20,000 new subjects commits on a server with default settings.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import hmac
import sys
import time
from collections.abc import Coroutine, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, Literal, get_args, get_type_hints
from uuid import UUID

import asyncpg
import msgspec

from consent.audit.outbox import AuditWriter
from consent.consents.schemas import Channel, ChoiceIn, ConsentCreate, Method, Surface
from consent.consents.service import ConsentService, validate_shape
from consent.crypto.keys import KeyRing
from consent.db.database import Conn, Database
from consent.db.grouped import DB_UNAVAILABLE
from consent.db.sql import SqlFile
from consent.errors import FieldError, NotFound, ValidationFailed
from consent.subjects.identifiers import BUILTIN_TYPES, InvalidIdentifier, normalize

__all__ = [
    "FileDigests",
    "ImportAborted",
    "ImportResult",
    "ImportUsageError",
    "Rejection",
    "add_parser",
    "cmd_import",
    "exit_status",
    "import_file",
]

IQ = SqlFile.beside(__file__, "import_queries.sql")

Format = Literal["csv", "ndjson"]
DEFAULT_BATCH_SIZE: Final = 500
ANALYZE_FIRST_AT: Final = 1_000
"""Valid rows after which an import first analyses the tables it writes (then as it doubles)."""
SHOWN_REJECTIONS: Final = 100
_PROGRESS_INTERVAL: Final = 0.25
_CHUNK: Final = 1 << 20
_BOM: Final = b"\xef\xbb\xbf"
_NOT_UTF8: Final = "not UTF-8 text (save the file as UTF-8)"
_LOG_INTERVAL: Final = 30.0
_choices_json: Final = msgspec.json.Encoder()
"""Seconds between progress lines when stderr is not a terminal (a log file, a pipe)."""

FLAT_COLUMNS: Final = (
    "identifier_type",
    "identifier_value",
    "subject_id",
    "purpose",
    "choice",
    "occurred_at",
    "notice_version_id",
    "language",
    "surface",
    "channel",
    "method",
    "agent_id",
    "property_id",
)
_REQUIRED_COLUMNS: Final = ("purpose", "choice", "occurred_at", "channel")
_OCCURRED_AT_REQUIRED: Final = "required: when the choice was made (RFC 3339 with a time zone)"


class ImportUsageError(Exception):
    """The import cannot start (or go on): bad file, header or tenant. Exit status 2."""


class ImportAborted(Exception):
    """The import stopped part-way (database failure); nothing was committed. Exit status 1."""


class Rejection(msgspec.Struct, frozen=True):
    """One problem of one rejected row (a row with several problems has several)."""

    line: int
    field: str
    reason: str


class ImportResult(msgspec.Struct, frozen=True, kw_only=True):
    rows: int  # rows read (blank lines are not rows)
    valid: int  # rows that passed every check (duplicates included)
    rejected: int  # rows with at least one problem
    imported: int  # rows committed (0 unless committed): valid rows that were not duplicates
    # Valid rows skipped as facts already recorded (by an earlier row or before the import).
    duplicates: int = 0
    committed: bool
    dry_run: bool
    skip_invalid: bool
    seconds: float
    # Set when the same file (same bytes) was committed before: nothing was done this time.
    already_imported_at: datetime | None = None

    @property
    def would_commit(self) -> bool:
        """Every row valid, or (with --skip-invalid) at least one row valid."""
        return self.rejected == 0 or (self.skip_invalid and self.valid > 0)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


class FlatRow(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One row of a CSV file or a flat NDJSON line: one purpose, everything a string."""

    identifier_type: str | None = None
    identifier_value: str | None = None
    subject_id: str | None = None
    purpose: str | None = None
    choice: str | None = None
    occurred_at: str | None = None
    notice_version_id: str | None = None
    language: str | None = None
    surface: str | None = None
    channel: str | None = None
    method: str | None = None
    agent_id: str | None = None
    property_id: str | None = None


class FileDigests(msgspec.Struct, frozen=True):
    """Which file this is: the keyed hash it is remembered by, and the plain SHA-256 that
    files committed before migration 0024 were remembered by (compared, never stored)."""

    keyed: bytes
    plain: bytes


class _Item(msgspec.Struct):
    """A row as read: its line, the decoded object (or why it could not be decoded)."""

    line: int
    obj: dict[str, Any] | None
    errors: list[FieldError]


class _Checked(msgspec.Struct):
    line: int
    data: ConsentCreate | None
    errors: list[FieldError]
    flat: bool
    secret: str | None  # the raw identifier value, scrubbed from every reason


# -- reading ----------------------------------------------------------------------------------


def detect_format(path: Path, given: str | None) -> Format:
    if given in {"csv", "ndjson"}:
        return "csv" if given == "csv" else "ndjson"
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in {".ndjson", ".jsonl"}:
        return "ndjson"
    raise ImportUsageError(f"{path.name}: cannot tell the format; give --format csv|ndjson")


def scan_file(path: Path, key: bytes) -> tuple[int, FileDigests]:
    """Line count (the progress total) and the hashes of the bytes (which file this is: HMAC
    under `key`, and the plain SHA-256), reading the file once in 1 MiB chunks."""
    lines = 0
    last = b"\n"
    keyed = hmac.new(key, digestmod=hashlib.sha256)
    plain = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
            keyed.update(chunk)
            plain.update(chunk)
    return lines + (last != b"\n"), FileDigests(keyed.digest(), plain.digest())


def _is_utf8(cells: list[str]) -> bool:
    """False when a cell holds bytes that were not UTF-8 (read with surrogateescape)."""
    try:
        "".join(cells).encode()
    except UnicodeEncodeError:
        return False
    return True


def _csv_header(reader: Iterator[list[str]]) -> list[str]:
    for raw in reader:
        if any(cell.strip() for cell in raw):
            header = [cell.strip().lower() for cell in raw]
            break
    else:
        return []
    if not _is_utf8(header):
        raise ImportUsageError("CSV header: the file is not UTF-8")
    for sep in (";", "\t"):
        if len(header) == 1 and sep in header[0]:
            shown = "tab" if sep == "\t" else f"'{sep}'"
            raise ImportUsageError(
                f"CSV header: the columns are separated by {shown}; separate them by commas "
                "(in a spreadsheet: save as CSV UTF-8, comma-delimited)"
            )
    problems: list[str] = []
    unknown = [c for c in header if c not in FLAT_COLUMNS]
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)}")
    duplicates = sorted({c for c in header if header.count(c) > 1})
    if duplicates:
        problems.append(f"duplicate column(s) {', '.join(duplicates)}")
    missing = [c for c in _REQUIRED_COLUMNS if c not in header]
    if "subject_id" not in header and not {"identifier_type", "identifier_value"} <= set(header):
        missing.append("identifier_type and identifier_value (or subject_id)")
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if problems:
        raise ImportUsageError(
            "CSV header: " + "; ".join(problems) + f" (columns: {', '.join(FLAT_COLUMNS)})"
        )
    return header


def check_csv_header(path: Path) -> None:
    """Raises ImportUsageError unless the file starts with a usable header line."""
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f, strict=True)
        try:
            _csv_header(reader)
        except csv.Error as exc:
            raise ImportUsageError(f"line {reader.line_num}: not valid CSV ({exc})") from None


def read_csv(path: Path) -> Generator[_Item]:
    """Rows of a CSV file, streamed; empty cells are absent values. Bytes that are not UTF-8
    reject their own row (decoding errors, raised per 8 KiB chunk, would name another line)."""
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f, strict=True)
        line = -1  # the last line of the rows read so far (-1: the header is not read)
        try:
            header = _csv_header(reader)
            line = reader.line_num
            for raw in reader:
                start, line = line + 1, reader.line_num
                if not any(cell.strip() for cell in raw):
                    continue
                if len(raw) != len(header):
                    reason = f"has {len(raw)} columns, the header {len(header)}"
                    yield _Item(start, None, [FieldError("row", reason)])
                    continue
                if not _is_utf8(raw):
                    yield _Item(start, None, [FieldError("row", _NOT_UTF8)])
                    continue
                obj = {k: v.strip() for k, v in zip(header, raw, strict=True) if v.strip()}
                yield _Item(start, obj, [])
        except csv.Error as exc:
            # The row's first line: an unclosed quote runs on to the end of the file.
            at = reader.line_num if line < 0 else line + 1
            raise ImportUsageError(f"line {at}: not valid CSV ({exc})") from None


def read_ndjson(path: Path) -> Generator[_Item]:
    """Objects of an NDJSON file, streamed; a line that is not a JSON object is rejected."""
    with path.open("rb") as f:
        for line, text in enumerate(f, start=1):
            raw = text.removeprefix(_BOM) if line == 1 else text  # as CSV reads (utf-8-sig)
            if not raw.strip():
                continue
            try:
                obj = msgspec.json.decode(raw)
            except msgspec.DecodeError as exc:
                yield _Item(line, None, [FieldError("row", f"not valid JSON ({exc})")])
                continue
            if not isinstance(obj, dict):
                yield _Item(line, None, [FieldError("row", "not a JSON object")])
                continue
            yield _Item(line, obj, [])


# -- checking ---------------------------------------------------------------------------------


def _flat_field(path: str) -> str:
    """A ConsentCreate field path as the column it came from."""
    if path.startswith("choices"):
        return "choice" if path.endswith(".choice") else "purpose"
    if path.startswith("identifier"):
        return "identifier_type" if path.endswith(".type") else "identifier_value"
    return path


_ALLOWED: Final[dict[str, tuple[str, ...]]] = {
    "choice": get_args(get_args(get_type_hints(ChoiceIn, include_extras=True)["choice"])[0]),
    "surface": get_args(Surface),
    "channel": get_args(Channel),
    "method": get_args(Method),
}


def _convert_error(exc: msgspec.ValidationError) -> FieldError:
    message = str(exc)
    field = "row"
    at = message.rfind(" - at `$")
    if at >= 0:
        field = message[at + len(" - at `$") :].rstrip("`").lstrip(".") or "row"
        message = message[:at]
    elif message.startswith("Object contains unknown field `"):
        field = message.removeprefix("Object contains unknown field `").rstrip("`")
        message = "unknown field"
    if message.startswith("Invalid enum value"):
        # msgspec quotes the value, which may be personal data from a misplaced column.
        allowed = _ALLOWED.get(field.rsplit(".", 1)[-1])
        message = f"not one of {', '.join(allowed)}" if allowed else "not an accepted value"
    return FieldError(field, message)


def _from_flat(obj: dict[str, Any]) -> tuple[ConsentCreate | None, list[FieldError]]:
    # As in CSV, an empty value is an absent one.
    obj = {k: (v.strip() or None) if isinstance(v, str) else v for k, v in obj.items()}
    try:
        row = msgspec.convert(obj, FlatRow)
    except msgspec.ValidationError as exc:
        return None, [_convert_error(exc)]
    errors = [
        FieldError(name, "required")
        for name in ("purpose", "choice", "channel")
        if getattr(row, name) is None
    ]
    if row.occurred_at is None:
        errors.append(FieldError("occurred_at", _OCCURRED_AT_REQUIRED))
    if row.identifier_type is not None and row.identifier_value is None:
        errors.append(FieldError("identifier_value", "required with identifier_type"))
    if row.identifier_value is not None and row.identifier_type is None:
        errors.append(FieldError("identifier_type", "required with identifier_value"))
    if errors:
        return None, errors
    body: dict[str, Any] = {
        "subject_id": row.subject_id,
        "identifier": (
            {"type": row.identifier_type, "value": row.identifier_value}
            if row.identifier_type is not None
            else None
        ),
        "choices": [{"purpose": row.purpose, "choice": row.choice}],
        "notice_version_id": row.notice_version_id,
        "language": row.language,
        "surface": row.surface or "import",
        "channel": row.channel,
        "method": row.method or "import",
        "agent_id": row.agent_id,
        "property_id": row.property_id,
        "occurred_at": row.occurred_at,
    }
    try:
        return msgspec.convert(body, ConsentCreate), []
    except msgspec.ValidationError as exc:
        error = _convert_error(exc)
        return None, [FieldError(_flat_field(error.field), error.message)]


def _secret_of(obj: dict[str, Any] | None) -> str | None:
    if obj is None:
        return None
    value = obj.get("identifier_value")
    ident = obj.get("identifier")
    if value is None and isinstance(ident, dict):
        value = ident.get("value")
    return value if isinstance(value, str) and value.strip() else None


_LISTED_AT_MOST: Final = 20
"""Accepted values a rejection lists; past that it counts them and names the endpoint."""


def _not_one_of(what: str, accepted: frozenset[str], endpoint: str) -> str:
    """Why a value is refused, naming the accepted ones, never the value (module docstring)."""
    if not accepted:
        return f"the tenant has no {what} yet ({endpoint})"
    if len(accepted) > _LISTED_AT_MOST:
        return f"not one of the tenant's {len(accepted)} {what} (GET {endpoint} lists them)"
    return f"not one of the tenant's {what}: {', '.join(sorted(accepted))}"


def check_row(
    item: _Item,
    known_purposes: frozenset[str],
    now: datetime,
    identifier_types: frozenset[str] = BUILTIN_TYPES,
) -> _Checked:
    """Every check that needs no database write; `record_in` does the rest.
    `identifier_types`: the built-in types and the tenant's own."""
    flat = item.obj is None or "choices" not in item.obj
    checked = _Checked(item.line, None, list(item.errors), flat, _secret_of(item.obj))
    if item.obj is None:
        return checked
    if flat:
        data, errors = _from_flat(item.obj)
    else:
        try:
            data, errors = msgspec.convert(item.obj, ConsentCreate), []
        except msgspec.ValidationError as exc:
            data, errors = None, [_convert_error(exc)]
        if data is not None and data.occurred_at is None:
            errors.append(FieldError("occurred_at", _OCCURRED_AT_REQUIRED))
    if data is None or errors:
        checked.errors = errors
        return checked
    try:
        validate_shape(data, now)
    except ValidationFailed as exc:
        errors.extend(exc.errors or [FieldError("row", exc.detail or "invalid")])
    if data.identifier is not None and data.identifier.type not in identifier_types:
        why = _not_one_of("identifier types", identifier_types, "/v1/identifier-types")
        errors.append(FieldError("identifier.type", f"unknown identifier type: {why}"))
    for i, choice in enumerate(data.choices):
        if choice.purpose not in known_purposes:
            field = "purpose" if flat else f"choices[{i}].purpose"
            why = _not_one_of("purposes", known_purposes, "/v1/purposes")
            errors.append(FieldError(field, f"unknown purpose: {why}"))
    if flat:
        errors = [FieldError(_flat_field(e.field), e.message) for e in errors]
    checked.errors = errors
    checked.data = None if errors else data
    return checked


def _db_errors(exc: Exception, flat: bool) -> list[FieldError]:
    if isinstance(exc, ValidationFailed):
        errors = exc.errors or [FieldError("row", exc.detail or "invalid")]
        return [FieldError(_flat_field(e.field), e.message) for e in errors] if flat else errors
    if isinstance(exc, NotFound):
        return [FieldError("subject_id", "no such subject")]
    state = getattr(exc, "sqlstate", "?")
    return [FieldError("row", f"rejected by the database ({type(exc).__name__}, {state})")]


# Per-row problems found by the database: invalid data (class 22) or a violated constraint
# (class 23). Anything else (connection lost, out of locks, ...) aborts the whole import.
_ROW_ERRORS: Final = (
    ValidationFailed,
    NotFound,
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
)


# -- reporting --------------------------------------------------------------------------------


class Progress:
    """Rows done / total, rows per second: on a terminal one status line redrawn with `\\r`;
    elsewhere (a log file, a pipe) a plain line every _LOG_INTERVAL seconds and at the end."""

    def __init__(self, stream: IO[str], total: int, label: str = "import") -> None:
        self.stream = stream
        self.total = total
        self.label = label
        self.started = time.monotonic()
        self._last_shown = 0.0
        self._width = 0
        self.done = 0
        isatty = getattr(stream, "isatty", None)
        self.terminal = bool(isatty()) if callable(isatty) else False
        self._interval = _PROGRESS_INTERVAL if self.terminal else _LOG_INTERVAL
        if not self.terminal:
            self._last_shown = self.started

    def _line(self) -> str:
        elapsed = time.monotonic() - self.started
        total = max(self.total, self.done)
        percent = 100 * self.done // total if total else 100
        rate = self.done / elapsed if elapsed > 0 else 0.0
        return f"{self.label}: {self.done:,}/{total:,} rows ({percent}%), {rate:,.0f} rows/s"

    def _show(self) -> None:
        text = self._line()
        if self.terminal:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._last_shown = time.monotonic()

    def update(self, done: int) -> None:
        self.done = done
        if time.monotonic() - self._last_shown >= self._interval:
            self._show()

    def note(self, text: str) -> None:
        """Print a line of its own, keeping the status line (on a terminal) below it."""
        if not self.terminal:
            self.stream.write(text + "\n")
            return
        self.stream.write("\r" + text.ljust(self._width) + "\n")
        self._width = 0
        self._show()

    def finish(self, *, complete: bool = True) -> None:
        if complete:
            self.total = self.done  # the estimate counted blank and continuation lines
        self._show()
        if self.terminal:
            self.stream.write("\n")
        self.stream.flush()


def _scrubbed(text: str, secret: str) -> str:
    """`text` without the row's identifier value `secret` where a message would quote it
    (`'…'`, `"…"`, `` `…` ``), or where it is the whole text (a field named by it). Only
    there: a short value such as a customer id `1` or `e` is also part of the words and
    paths of messages (`choices[1].purpose`), which must stay as they are."""
    if text == secret:
        return _SCRUBBED
    for quote in ("'", '"', "`"):
        text = text.replace(quote + secret + quote, quote + _SCRUBBED + quote)
    return text


_SCRUBBED: Final = "[identifier]"


class _Reporter:
    def __init__(self, progress: Progress, report: IO[bytes] | None) -> None:
        self.progress = progress
        self.report = report
        self.rows = 0
        self.shown = 0
        self._encoder = msgspec.json.Encoder()

    def reject(self, line: int, errors: list[FieldError], secret: str | None) -> None:
        self.rows += 1
        for error in errors:
            field, reason = error.field, error.message
            if secret:
                field = _scrubbed(field, secret)
                reason = _scrubbed(reason, secret)
            if self.report is not None:
                self.report.write(self._encoder.encode(Rejection(line, field, reason)) + b"\n")
            if self.shown < SHOWN_REJECTIONS:
                self.progress.note(f"line {line}: {field}: {reason}")
            self.shown += 1


# -- importing --------------------------------------------------------------------------------


class _Rollback(Exception):
    """Leaves the tenant transaction without committing (dry run, rejected rows)."""


_Fact = tuple[object, ...]
"""What makes two rows the same fact: the subject (its surviving subject, or for a subject not
created yet the identifier's type and keyed HMAC), occurred_at, the choices as a set, and the
proof fields (`recorded_already` in import_queries.sql compares the same)."""


class _Seen(msgspec.Struct):
    """A checked row of a batch: already recorded before the batch, and its fact (None when it
    cannot be told: a malformed identifier, which the write rejects anyway)."""

    recorded: bool
    fact: _Fact | None


def _proof(data: ConsentCreate) -> tuple[object, ...]:
    return (
        data.notice_version_id,
        data.language,
        data.surface,
        data.channel,
        data.method,
        data.agent_id,
        data.property_id,
    )


class _Run:
    def __init__(
        self,
        conn: Conn,
        service: ConsentService,
        reporter: _Reporter,
        progress: Progress,
    ) -> None:
        self.conn = conn
        self.service = service
        self.reporter = reporter
        self.progress = progress
        self.rows = 0
        self.valid = 0  # rows recorded
        self.duplicates = 0  # valid rows skipped: facts already recorded
        self.analyze_at = ANALYZE_FIRST_AT
        self._lookup_tenant = str(service.tenant_id)

    async def run(
        self,
        rows: Iterator[_Item],
        known: frozenset[str],
        batch_size: int,
        identifier_types: frozenset[str] = BUILTIN_TYPES,
    ) -> None:
        batch: list[_Checked] = []
        for item in rows:
            self.rows += 1
            checked = check_row(item, known, datetime.now(UTC), identifier_types)
            if checked.data is not None:
                batch.append(checked)
                if len(batch) >= batch_size:
                    await self.flush(batch)
                    batch = []
                continue
            await self.flush(batch)  # keeps the report in line order
            batch = []
            self.reporter.reject(checked.line, checked.errors, checked.secret)
            self.progress.update(self.progress.done + 1)
        await self.flush(batch)

    async def record_file(self, digest: FileDigests, *, again: bool) -> datetime | None:
        """Remember the file (by its keyed hash) before the commit; waits for a concurrent
        import of the same file, and returns when that one committed it (then this one must
        not)."""
        if await self.conn.fetchval(IQ.record_import, digest.keyed, self.valid, again) is not None:
            return None
        when: datetime = await self.conn.fetchval(IQ.prior_import, digest.keyed, digest.plain)
        return when

    async def _record(self, item: _Checked) -> None:
        assert item.data is not None  # noqa: S101 - only checked rows are batched
        await self.service.record_in(self.conn, item.data, None)

    async def _analyze_when_doubled(self) -> None:
        """The planner's statistics of the written tables, refreshed from inside the import at
        ANALYZE_FIRST_AT valid rows and whenever that count has doubled since (log2(rows)
        times): without it, tables analysed while small keep plans that scan what the import
        has written, and each row costs more than the last (migrations/0016)."""
        if self.valid >= self.analyze_at:
            await self.conn.execute(IQ.analyze_import_tables)
            self.analyze_at = 2 * self.valid

    def _lookup(self, data: ConsentCreate) -> tuple[str | None, bytes | None]:
        """The identifier's type and keyed HMAC, as the subject resolver computes them (none
        for a subject named by id, or an identifier the write will reject as malformed)."""
        ident = data.identifier
        if ident is None:
            return None, None
        try:
            value = normalize(ident.type, ident.value)
        except InvalidIdentifier:
            return None, None
        return ident.type, self.service.keyring.lookup_digest(
            self._lookup_tenant, ident.type, value
        )

    async def _query_seen(self, batch: list[_Checked]) -> list[_Seen]:
        rows = [item.data for item in batch if item.data is not None]
        lookups = [self._lookup(d) for d in rows]
        found = await self.conn.fetch(
            IQ.recorded_already,
            [d.subject_id for d in rows],
            [t for t, _ in lookups],
            [h for _, h in lookups],
            [d.occurred_at for d in rows],
            [_choices_json.encode(d.choices).decode() for d in rows],
            [d.notice_version_id for d in rows],
            [d.language for d in rows],
            [d.surface for d in rows],
            [d.channel for d in rows],
            [d.method for d in rows],
            [d.agent_id for d in rows],
            [d.property_id for d in rows],
        )
        seen: list[_Seen] = []
        for d, (id_type, digest), r in zip(rows, lookups, found, strict=True):
            subject: object = r["survivor"]
            if subject is None:
                subject = ("new", id_type, digest) if digest is not None else None
            fact = None
            if subject is not None:
                choices = frozenset((c.purpose, c.choice) for c in d.choices)
                fact = (subject, d.occurred_at, choices, *_proof(d))
            seen.append(_Seen(bool(r["recorded"]), fact))
        return seen

    async def _seen(self, batch: list[_Checked]) -> list[_Seen]:
        """Per row of the batch: whether its subject has its fact already (one query for the
        batch, which sees the rows this import wrote before it), and the fact, to find rows
        of the batch that repeat an earlier one. Bounded by the batch: nothing is kept of the
        rows of earlier batches, which the database has. A value the database refuses (it
        refuses the row's write too) is asked about row by row."""
        try:
            async with self.conn.transaction():
                return await self._query_seen(batch)
        except _ROW_ERRORS:
            pass
        seen: list[_Seen] = []
        for item in batch:
            try:
                async with self.conn.transaction():
                    seen += await self._query_seen([item])
            except _ROW_ERRORS:
                seen.append(_Seen(recorded=False, fact=None))
        return seen

    async def flush(self, batch: list[_Checked]) -> None:
        """Record a batch in one savepoint, skipping the rows that are facts recorded already
        (before the import, or by an earlier row); if a row fails, replay it row by row."""
        if not batch:
            return
        base = self.progress.done
        seen = await self._seen(batch)
        recorded = duplicates = 0
        try:
            async with self.conn.transaction():
                facts: set[_Fact] = set()
                for i, (item, row) in enumerate(zip(batch, seen, strict=True), start=1):
                    if row.recorded or row.fact in facts:
                        duplicates += 1
                    else:
                        await self._record(item)
                        recorded += 1
                        if row.fact is not None:
                            facts.add(row.fact)
                    self.progress.update(base + i)
        except _ROW_ERRORS:
            pass
        else:
            self.valid += recorded
            self.duplicates += duplicates
            await self._analyze_when_doubled()
            return
        facts = set()
        for i, (item, row) in enumerate(zip(batch, seen, strict=True), start=1):
            if row.recorded or row.fact in facts:
                self.duplicates += 1
                self.progress.update(base + i)
                continue
            try:
                async with self.conn.transaction():
                    await self._record(item)
            except _ROW_ERRORS as exc:
                self.reporter.reject(item.line, _db_errors(exc, item.flat), item.secret)
            else:
                self.valid += 1
                if row.fact is not None:
                    facts.add(row.fact)
            self.progress.update(base + i)
        await self._analyze_when_doubled()


def _open(path: Path, fmt: str | None, key: bytes) -> tuple[Generator[_Item], int, FileDigests]:
    """The file's rows (streamed), about how many there are, and its hashes (`scan_file`)."""
    kind = detect_format(path, fmt)
    try:
        total, digest = scan_file(path, key)
    except OSError as exc:
        raise ImportUsageError(f"{path}: {exc.strerror}") from None
    if kind == "csv":
        check_csv_header(path)
        total = max(total - 1, 0)
    return (read_csv(path) if kind == "csv" else read_ndjson(path)), total, digest


async def import_file(
    db: Database,
    keyring: KeyRing,
    tenant_id: UUID,
    path: Path,
    *,
    fmt: str | None = None,
    dry_run: bool = False,
    skip_invalid: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    report: IO[bytes] | None = None,
    stderr: IO[str] | None = None,
    audit_origin: str | None = None,
    again: bool = False,
) -> ImportResult:
    """Import `path` into the tenant in one transaction (see the module docstring).

    Raises ImportUsageError (bad file, header or tenant) or ImportAborted (the database
    failed); in both cases nothing was committed. `audit_origin`: the service's
    CONSENT_AUDIT_ORIGIN, used if this import creates the tenant's audit log. A file the
    tenant committed before (same bytes) is not imported again unless `again`.
    """
    if batch_size < 1:
        raise ImportUsageError("--batch-size must be at least 1")
    rows, total, digest = _open(path, fmt, keyring.import_file_key(str(tenant_id)))
    out = stderr if stderr is not None else sys.stderr
    progress = Progress(out, total)
    reporter = _Reporter(progress, report)
    run: _Run | None = None
    commit = committing = False
    already: datetime | None = None
    try:
        async with db.tenant(tenant_id) as conn:
            if not await conn.fetchval(IQ.tenant_exists):
                raise ImportUsageError(f"no tenant {tenant_id}")
            known = frozenset(r["key"] for r in await conn.fetch(IQ.known_purposes))
            own_types = [r["key"] for r in await conn.fetch(IQ.known_identifier_types)]
            identifier_types = BUILTIN_TYPES | frozenset(own_types)
            audit = AuditWriter(audit_origin) if audit_origin is not None else None
            service = ConsentService(db, keyring, tenant_id, audit=audit)
            run = _Run(conn, service, reporter, progress)
            already = (
                None if again else await conn.fetchval(IQ.prior_import, digest.keyed, digest.plain)
            )
            _roll_back_unless(already is None)
            await run.run(rows, known, batch_size, identifier_types)
            commit = reporter.rows == 0 or (skip_invalid and run.valid + run.duplicates > 0)
            if commit and not dry_run:
                already = await run.record_file(digest, again=again)
                commit = already is None
            _roll_back_unless(commit and not dry_run)
            committing = True
    except _Rollback:
        pass
    except (asyncpg.PostgresError, *DB_UNAVAILABLE) as exc:
        progress.finish(complete=False)
        raise ImportAborted(_abort_message(exc, committing)) from exc
    except asyncio.CancelledError:  # Ctrl-C: the transaction was rolled back
        if committing:  # ... unless the commit had reached the server
            raise ImportAborted("interrupted while committing: check whether it happened") from None
        raise
    finally:
        rows.close()
    progress.finish()
    assert run is not None  # noqa: S101 - set before anything can roll back
    committed = commit and not dry_run
    seconds = time.monotonic() - progress.started
    if already is not None:  # the same file was committed before: nothing done
        return ImportResult(
            rows=0,
            valid=0,
            rejected=0,
            imported=0,
            committed=False,
            dry_run=dry_run,
            skip_invalid=skip_invalid,
            seconds=seconds,
            already_imported_at=already,
        )
    return ImportResult(
        rows=run.rows,
        valid=run.valid + run.duplicates,
        rejected=reporter.rows,
        imported=run.valid if committed else 0,
        duplicates=run.duplicates,
        committed=committed,
        dry_run=dry_run,
        skip_invalid=skip_invalid,
        seconds=seconds,
    )


def _roll_back_unless(commit: bool) -> None:
    if not commit:
        raise _Rollback


def _abort_message(exc: Exception, committing: bool) -> str:
    state = getattr(exc, "sqlstate", None)
    what = f"{type(exc).__name__}" + (f" {state}" if state else "")
    outcome = "the commit may or may not have happened" if committing else "nothing was committed"
    hint = ""
    if state == "53200":
        hint = (
            "; the transaction ran out of lock slots: split the file or raise "
            "max_locks_per_transaction"
        )
    return f"the database failed ({what}); {outcome}{hint}"


def exit_status(result: ImportResult) -> int:
    """0 when the import committed (a dry run: would have committed) or the file had been
    imported before, else 1."""
    return 0 if result.would_commit or result.already_imported_at else 1


def summary(result: ImportResult) -> str:
    if result.already_imported_at is not None:
        when = result.already_imported_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"nothing to do: this file was imported at {when} (--again imports it once more)"
    rate = f"{result.rows:,} rows in {result.seconds:.2f} s ({result.rows_per_s:,.0f} rows/s)"
    dups = f"{result.duplicates:,} duplicate{'' if result.duplicates == 1 else 's'}"
    if result.dry_run:
        count = result.valid - result.duplicates if result.would_commit else 0
        return (
            f"dry run, nothing written: {rate}; {result.valid:,} valid ({dups}), "
            f"{result.rejected:,} rejected; would import {count:,} rows"
        )
    if result.committed:
        return (
            f"imported {result.imported:,} rows, skipped {dups}, "
            f"rejected {result.rejected:,}: {rate}"
        )
    hint = (
        " (--skip-invalid imports the valid ones)"
        if result.valid and not result.skip_invalid
        else ""
    )
    return f"nothing imported: {result.rejected:,} of {result.rows:,} rows rejected{hint}; {rate}"


# -- command ----------------------------------------------------------------------------------


async def _main(args: argparse.Namespace, tenant_id: UUID, report: IO[bytes] | None) -> int:
    from consent.config import load_settings
    from consent.crypto.binding import KeyRingMismatch, open_with_keys

    settings = load_settings()
    try:
        # Keys missing in development are generated only for a database bound to none: a
        # wrong CONSENT_KEYS_DIR gets nothing written in it.
        db, keyring = await open_with_keys(settings)
    except KeyRingMismatch as exc:
        return _fail(str(exc), 1)  # a refused key ring, as `consent serve` (README: CLI)
    try:
        result = await import_file(
            db,
            keyring,
            tenant_id,
            Path(args.file),
            fmt=args.format,
            dry_run=args.dry_run,
            skip_invalid=args.skip_invalid,
            batch_size=args.batch_size,
            report=report,
            audit_origin=settings.audit_origin,
            again=args.again,
        )
    finally:
        await db.close()
    print(summary(result))  # noqa: T201 - the result: stdout (progress and rejections: stderr)
    return exit_status(result)


def _fail(message: str, status: int) -> int:
    print(f"consent import: {message}", file=sys.stderr)  # noqa: T201
    return status


def cmd_import(args: argparse.Namespace) -> int:
    try:
        tenant_id = UUID(args.tenant)
    except ValueError:
        return _fail("--tenant: not a tenant id (a UUID)", 2)
    path = Path(args.file)
    if not path.is_file():
        return _fail(f"{path}: no such file", 2)
    if args.report and Path(args.report).exists() and Path(args.report).samefile(path):
        # Opening it for writing would truncate the file before it is read.
        return _fail("--report: that is the file being imported; name another file", 2)
    try:
        if detect_format(path, args.format) == "csv":
            check_csv_header(path)
        report = Path(args.report).open("wb") if args.report else None  # noqa: SIM115
    except (ImportUsageError, OSError) as exc:
        return _fail(str(exc), 2)
    try:
        return _run_command(args, tenant_id, report)
    finally:
        if report is not None:
            report.close()


def _run_loop(coro: Coroutine[Any, Any, int]) -> int:
    """uvloop when installed: the import is a long chain of round trips (~2x faster)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(coro)
    return uvloop.run(coro)


def _run_command(args: argparse.Namespace, tenant_id: UUID, report: IO[bytes] | None) -> int:
    from consent.config import ConfigError
    from consent.crypto.keys import KeyError_
    from consent.db.database import DatabaseUnavailable
    from consent.db.migrate import MigrationError

    try:
        return _run_loop(_main(args, tenant_id, report))
    except (ImportUsageError, ConfigError, KeyError_) as exc:
        return _fail(str(exc), 2)
    except (ImportAborted, MigrationError) as exc:
        return _fail(str(exc), 1)
    except DatabaseUnavailable as exc:
        return _fail(f"cannot reach the database ({exc})", 1)
    except KeyboardInterrupt:
        if sys.stderr.isatty():
            print(file=sys.stderr)  # noqa: T201 - below the progress line
        return _fail("interrupted; nothing was committed", 130)


def add_parser(sub: Any) -> None:
    from consent.cli import positive_int  # the CLI imports this module while building itself

    parser: argparse.ArgumentParser = sub.add_parser(
        "import",
        help="import consents from CSV or NDJSON (all or nothing)",
        description=(
            "Import existing consents, one per row, into one tenant in one transaction. "
            "CSV columns / NDJSON fields: identifier_type, identifier_value (or subject_id), "
            "purpose, choice, occurred_at (RFC 3339 with zone), channel, and optionally "
            "notice_version_id, language, surface (default import), method (default import), "
            "agent_id, property_id. An NDJSON line may instead be a POST /v1/consents body. "
            "A row whose fact the subject already has (same occurred_at, choices and proof) "
            "is skipped as a duplicate. "
            "Exit status: 0 committed (or a dry run that would commit); 1 nothing committed "
            "(a row was rejected, or with --skip-invalid every row was, or the database "
            "failed); 2 bad arguments, file or tenant; 130 interrupted, nothing committed."
        ),
    )
    parser.add_argument("file", help="a .csv or .ndjson (.jsonl) file")
    parser.add_argument("--tenant", required=True, metavar="TENANT_ID", help="the tenant's id")
    parser.add_argument(
        "--format", choices=["csv", "ndjson"], help="default: from the file name's extension"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="check every row, report, then roll back"
    )
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="commit the valid rows and report the rejected ones (default: any rejected row "
        "means nothing is imported)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"rows per savepoint (default {DEFAULT_BATCH_SIZE}); a batch with a bad row is "
        "replayed row by row",
    )
    parser.add_argument("--report", metavar="FILE", help="write every rejected row here as NDJSON")
    parser.add_argument(
        "--again",
        action="store_true",
        help="import the file even if the tenant imported the same file (same bytes) before "
        "(its rows already recorded are still skipped as duplicates); by default that run "
        "does nothing and exits 0",
    )
    parser.set_defaults(func=cmd_import)
