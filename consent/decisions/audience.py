"""The audience filter: NDJSON in, NDJSON out, for any number of identifiers in bounded memory.

Request: a header line `{"action": ..., "context": {...}, "output": "allowed"|"all"}`, then one
member per line: `{"subject_id": ...}` or `{"type": "email", "value": ...}`, optionally with
per-member overrides of the context (`jurisdiction`, `age`, `gpc`, ...).

Members are processed in chunks through the single call's pipeline (`DecisionService`): keyed
HMAC lookups, one ledger read per chunk, the exact input per member, its normalised form; each
distinct normalised input (a consent-state shape) is evaluated once per run (and the engine's
cache remembers it across runs). Each chunk's decisions are committed to the log (group commit)
as the request streams in; two chunks are in flight at a time, so memory depends on the chunk
size, never on the audience size.

Answer: the lines of the allowed members, verbatim (or, with `"output": "all"`, one
`{"line": n, "allow": ..., "reasons": [...]}` per member), then `{"summary": {...}}` with the
counts of denied members by reason. The answer is spooled (to a temporary file beyond a few MB)
and sent once the whole request has been decided and logged: all or nothing, so a failure is a
503 problem, never a partial answer, and no client or server has to stream both ways at once
(granian, for one, does not read a request body after the response has started).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Final
from uuid import UUID

import msgspec
import structlog

from consent.decisions.engine import (
    DecisionInput,
    DecisionResult,
    PolicyBundle,
    PolicyError,
    PolicyUnavailable,
)
from consent.decisions.logwriter import (
    AudienceMemberRecord,
    AudienceRunRecord,
    AudienceShapeRecord,
    GroupCommitWriter,
    LogBatch,
)
from consent.decisions.schemas import (
    AudienceHeader,
    AudienceMember,
    AudienceSummary,
    DecisionContext,
)
from consent.decisions.service import (
    UNKNOWN,
    Caller,
    Catalogue,
    DecisionService,
    PolicyChanged,
    Ref,
    SubjectRow,
    build_input,
    consent_values,
    normalize_identifier,
    ns_to_datetime,
    state_key,
    uuid7,
)
from consent.decisions.shape import needed_purposes
from consent.errors import ProblemError, ValidationFailed
from consent.subjects.identifiers import InvalidIdentifier

__all__ = ["AudienceAnswer", "AudienceFilter", "member_input"]

MAX_LINE_BYTES: Final = 16_384
SPOOL_MEMORY: Final = 4 * 1024 * 1024  # answer bytes kept in memory before spooling to disk
_READ_BYTES: Final = 256 * 1024
_MAX_INVALID_LINES: Final = 20
_ATTEMPTS: Final = 3
_CONTEXT_FIELDS: Final = ("jurisdiction", "gpc", "age", "parental_consent", "limit_sensitive")
_log = structlog.get_logger(__name__)
_encode = msgspec.json.Encoder().encode
_decode_members = msgspec.json.Decoder(list[AudienceMember]).decode
_decode_member = msgspec.json.Decoder(AudienceMember).decode
_decode_header = msgspec.json.Decoder(AudienceHeader).decode


def member_input(
    shape_input: DecisionInput,
    now_ns: int,
    purpose_keys: Sequence[str],
    purpose_material: Sequence[int | None],
    recorded_at_ns: Sequence[int | None],
    consent_material: Sequence[int | None],
) -> DecisionInput:
    """A member's exact input, rebuilt from the log (audience_shape.input, audience_run.now_ns and
    the member's row of the audience_member arrays)."""
    purposes = dict(shape_input.purposes)
    consents = dict(shape_input.consents)
    for key, pm, rec, cm in zip(
        purpose_keys, purpose_material, recorded_at_ns, consent_material, strict=True
    ):
        if pm is not None and key in purposes:
            purposes[key] = msgspec.structs.replace(purposes[key], material_version=pm)
        if rec is not None and cm is not None and key in consents:
            consents[key] = msgspec.structs.replace(
                consents[key], recorded_at_ns=rec, material_version=cm
            )
    return msgspec.structs.replace(shape_input, now_ns=now_ns, purposes=purposes, consents=consents)


@dataclass(slots=True)
class _Shape:
    number: int
    result: DecisionResult
    input: DecisionInput
    all_suffix: bytes


@dataclass(slots=True)
class _Run:
    caller: Caller
    header: AudienceHeader
    id: UUID
    now_ns: int
    record: AudienceRunRecord
    run_committed: bool = False
    shapes: dict[tuple[str, bytes], _Shape] = field(default_factory=dict)
    committed_shapes: set[int] = field(default_factory=set)
    revisions: list[str] = field(default_factory=list)
    contexts: dict[tuple[Any, ...], DecisionContext] = field(default_factory=dict)
    # (revision, context overrides, state_key) -> shape: members whose normalised input is
    # already known skip building it (see service.state_key).
    known: dict[tuple[object, ...], _Shape] = field(default_factory=dict)
    total: int = 0
    allowed: int = 0
    denied: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    invalid_lines: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Chunk:
    number: int
    lines: list[tuple[int, bytes]]  # (line number, raw line) of valid members
    refs: list[Ref]
    contexts: list[DecisionContext]
    context_keys: list[tuple[Any, ...]]


class AudienceAnswer:
    """A decided audience: the spooled member lines, then the summary line."""

    def __init__(self, spool: IO[bytes], summary: AudienceSummary) -> None:
        self.spool = spool
        self.summary = summary

    async def body(self) -> AsyncIterator[bytes]:
        try:
            self.spool.seek(0)
            while piece := self.spool.read(_READ_BYTES):
                yield piece
            yield _encode({"summary": self.summary}) + b"\n"
        finally:
            self.spool.close()

    async def collect(self) -> bytes:
        """The whole answer (tests, small audiences)."""
        return b"".join([piece async for piece in self.body()])


class AudienceFilter:
    def __init__(
        self,
        service: DecisionService,
        log: GroupCommitWriter,
        *,
        chunk_size: int = 5000,
        in_flight: int = 2,
    ) -> None:
        self.service = service
        self.log = log
        self.chunk_size = chunk_size
        self.in_flight = in_flight

    async def run(self, caller: Caller, body: AsyncIterator[bytes]) -> AudienceAnswer:
        """Read and decide the whole audience; the answer is spooled (to disk beyond
        SPOOL_MEMORY bytes) and streamed afterwards. Raises ProblemError or PolicyError: then
        nothing is answered (decisions already logged stay logged: they were made)."""
        lines = _lines(body)
        run = await self._start(caller, lines)
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115 - handed over
        pending: deque[asyncio.Task[bytes]] = deque()
        try:
            number = 0
            async for raw in _batched(lines, self.chunk_size):
                chunk = self._prepare(run, number, raw)
                number += 1
                pending.append(asyncio.create_task(self._decide_chunk(run, chunk)))
                while len(pending) >= self.in_flight:
                    spool.write(await pending.popleft())
            while pending:
                spool.write(await pending.popleft())
        except BaseException as exc:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            spool.close()
            if isinstance(exc, ProblemError | PolicyError):
                _log.warning("audience.failed", error=type(exc).__name__, audience_id=str(run.id))
            raise
        return AudienceAnswer(spool, self._summary(run))

    async def _start(self, caller: Caller, lines: AsyncIterator[tuple[int, bytes]]) -> _Run:
        header_line: bytes | None = None
        async for _, line in lines:
            header_line = line
            break
        if header_line is None:
            raise ValidationFailed.field("header", "the body has no header line")
        try:
            header = _decode_header(header_line)
        except msgspec.ValidationError as exc:
            raise ValidationFailed.field("header", f"invalid header: {exc}") from None
        except msgspec.DecodeError:
            raise ValidationFailed.field("header", "the header line is not JSON") from None
        now_ns = self.service.clock()
        run_id = uuid7(now_ns)
        record = AudienceRunRecord(
            id=run_id,
            tenant_id=caller.tenant_id,
            started_at=ns_to_datetime(now_ns),
            now_ns=now_ns,
            requester=header.context.requester,
            api_key_id=caller.api_key_id,
            request_id=caller.request_id,
            action=header.action,
            context=msgspec.to_builtins(header.context),
        )
        return _Run(caller=caller, header=header, id=run_id, now_ns=now_ns, record=record)

    # -- one chunk ------------------------------------------------------------------------------

    def _prepare(self, run: _Run, number: int, raw: list[tuple[int, bytes]]) -> _Chunk:
        """Decode, validate and hash a chunk's member lines (invalid ones are counted, skipped)."""
        try:
            members: list[AudienceMember | None] = list(
                _decode_members(b"[" + b",".join(line for _, line in raw) + b"]")
            )
        except (msgspec.DecodeError, msgspec.ValidationError):
            members = [_decode_one(line) for _, line in raw]
        chunk = _Chunk(number=number, lines=[], refs=[], contexts=[], context_keys=[])
        digest = self.service.lookup_hmac(run.caller.tenant_id)
        for (line_no, line), member in zip(raw, members, strict=True):
            ref = _ref(digest, member) if member is not None else None
            if ref is None or member is None:
                run.invalid += 1
                if len(run.invalid_lines) < _MAX_INVALID_LINES:
                    run.invalid_lines.append(line_no)
                continue
            chunk.lines.append((line_no, line))
            chunk.refs.append(ref)
            overrides = (
                member.jurisdiction,
                member.gpc,
                member.age,
                member.parental_consent,
                member.limit_sensitive,
            )
            chunk.contexts.append(_context(run, overrides))
            chunk.context_keys.append(overrides)
        return chunk

    async def _decide_chunk(self, run: _Run, chunk: _Chunk) -> bytes:
        if not chunk.refs:
            return b""
        service = self.service
        action = run.header.action
        tenant_id = run.caller.tenant_id
        # Lookups in HMAC order: neighbouring index pages, fewer cache misses.
        order = sorted(range(len(chunk.refs)), key=lambda i: chunk.refs[i].digest or b"")
        for _ in range(_ATTEMPTS):
            bundle = service.runtime.engine.bundle
            needed = needed_purposes(bundle, action)
            catalogue, sorted_rows = await service.read(
                tenant_id, needed, [chunk.refs[i] for i in order]
            )
            rows: list[SubjectRow] = [UNKNOWN] * len(order)
            for position, i in enumerate(order):
                rows[i] = sorted_rows[position]
            catalogue = catalogue.restrict(needed)
            try:
                shapes = await self._shapes(run, chunk, bundle, needed, catalogue, rows)
            except PolicyChanged:
                continue
            break
        else:
            raise PolicyUnavailable("the policy changed repeatedly during the run; retry")
        batch = self._records(run, chunk, needed, catalogue, rows, shapes)
        await self.log.write(batch)
        run.run_committed = True
        run.committed_shapes.update(s.shape for s in batch.audience_shapes)
        return self._answer(run, chunk, shapes)

    async def _shapes(
        self,
        run: _Run,
        chunk: _Chunk,
        bundle: PolicyBundle,
        needed: tuple[str, ...],
        catalogue: Catalogue,
        rows: list[SubjectRow],
    ) -> list[_Shape]:
        """Each member's shape. Members whose (context, state key) was seen before share its
        shape; for the others the exact input is built and normalised, and each distinct
        normalised input is evaluated once."""
        keys: list[tuple[object, ...]] = [
            (bundle.revision, ctx_key, state_key(catalogue, run.now_ns, row))
            for ctx_key, row in zip(chunk.context_keys, rows, strict=True)
        ]
        unseen: dict[tuple[object, ...], int] = {}
        for i, key in enumerate(keys):
            if key not in run.known and key not in unseen:
                unseen[key] = i
        if unseen:
            inputs = [
                build_input(run.header.action, run.now_ns, chunk.contexts[i], catalogue, rows[i])
                for i in unseen.values()
            ]
            results, normal_keys = await self.service.evaluator.decide(
                bundle, [(x, needed) for x in inputs]
            )
            for key, normal, result in zip(unseen, normal_keys, results, strict=True):
                run.known[key] = self._shape(run, normal, result)
        return [run.known[key] for key in keys]

    @staticmethod
    def _shape(run: _Run, key: bytes, result: DecisionResult) -> _Shape:
        """The run's shape of a normalised input (numbered in order of first sight)."""
        registry_key = (result.revision, key)
        shape = run.shapes.get(registry_key)
        if shape is None:
            shape = run.shapes[registry_key] = _Shape(
                number=len(run.shapes),
                result=result,
                input=msgspec.json.decode(key, type=DecisionInput),
                all_suffix=_encode({"allow": result.allow, "reasons": list(result.reasons)})[1:],
            )
            if result.revision not in run.revisions:
                run.revisions.append(result.revision)
        return shape

    def _records(
        self,
        run: _Run,
        chunk: _Chunk,
        needed: tuple[str, ...],
        catalogue: Catalogue,
        rows: list[SubjectRow],
        shapes: list[_Shape],
    ) -> LogBatch:
        """The log records of a chunk: the run (until committed), its new shapes, and per shape
        the members with the values of their exact inputs (see `member_input`)."""
        tenant_id = run.caller.tenant_id
        groups: dict[int, AudienceMemberRecord] = {}
        keys = list(needed)
        for row, shape in zip(rows, shapes, strict=True):
            group = groups.get(shape.number)
            if group is None:
                group = groups[shape.number] = AudienceMemberRecord(
                    run_id=run.id,
                    chunk=chunk.number,
                    shape=shape.number,
                    tenant_id=tenant_id,
                    members=0,
                    subject_ids=[],
                    purpose_keys=keys,
                    purpose_material=[],
                    recorded_at_ns=[],
                    consent_material=[],
                    event_uuid=uuid7(run.now_ns),
                    decided_at=run.record.started_at,
                    requester=run.record.requester,
                    action=run.record.action,
                    allow=shape.result.allow,
                    reasons=tuple(shape.result.reasons),
                    policy_revision=shape.result.revision,
                    shape_input=shape.input,
                )
            group.members += 1
            if row.subject_id is None:
                continue
            group.subject_ids.append(row.subject_id)
            given = {
                key: (recorded_us, consent_mv, notice_mv)
                for key, recorded_us, consent_mv, notice_mv in zip(
                    row.purposes,
                    row.recorded_at_us,
                    row.consent_material,
                    row.notice_material,
                    strict=True,
                )
            }
            for key in keys:
                purpose = catalogue.purposes.get(key)
                choice = given.get(key)
                if choice is None:
                    group.purpose_material.append(
                        purpose.material_version if purpose is not None else None
                    )
                    group.recorded_at_ns.append(None)
                    group.consent_material.append(None)
                    continue
                purpose_mv, material = consent_values(purpose, choice[1], choice[2])
                group.purpose_material.append(purpose_mv)
                group.recorded_at_ns.append(choice[0] * 1000)
                group.consent_material.append(material)
        shapes_used = {s.number: s for s in shapes}
        return LogBatch(
            audience_runs=[] if run.run_committed else [run.record],
            audience_shapes=[
                AudienceShapeRecord(
                    run_id=run.id,
                    shape=s.number,
                    tenant_id=tenant_id,
                    policy_revision=s.result.revision,
                    allow=s.result.allow,
                    reasons=s.result.reasons,
                    purposes=s.result.purposes,
                    input=s.input,
                )
                for s in shapes_used.values()
                if s.number not in run.committed_shapes
            ],
            audience_members=list(groups.values()),
        )

    def _answer(self, run: _Run, chunk: _Chunk, shapes: list[_Shape]) -> bytes:
        out: list[bytes] = []
        everything = run.header.output == "all"
        for (line_no, line), shape in zip(chunk.lines, shapes, strict=True):
            result = shape.result
            run.total += 1
            if result.allow:
                run.allowed += 1
            else:
                run.denied += 1
                run.by_reason.update(result.reasons)
            if everything:
                out.append(b'{"line":%d,' % line_no + shape.all_suffix)
            elif result.allow:
                out.append(line)
        return b"\n".join(out) + b"\n" if out else b""

    def _summary(self, run: _Run) -> AudienceSummary:
        return AudienceSummary(
            audience_id=run.id,
            action=run.header.action,
            now_ns=run.now_ns,
            policy_revisions=run.revisions,
            total=run.total,
            allowed=run.allowed,
            denied=run.denied,
            denied_by_reason=dict(sorted(run.by_reason.items())),
            invalid=run.invalid,
            invalid_lines=run.invalid_lines,
            distinct_inputs=len(run.shapes),
        )


# -- helpers ---------------------------------------------------------------------------------------


def _decode_one(line: bytes) -> AudienceMember | None:
    try:
        return _decode_member(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _ref(digest: Callable[[bytes], bytes], member: AudienceMember) -> Ref | None:
    if member.subject_id is not None:
        if member.type is not None or member.value is not None:
            return None
        return Ref(member.subject_id, None, None)
    if member.type is None or member.value is None:
        return None
    try:
        value = normalize_identifier(member.type, member.value)
    except InvalidIdentifier:
        return None
    message = member.type.encode() + b"\x00" + value.encode()
    return Ref(None, member.type, digest(message))


def _context(run: _Run, overrides: tuple[Any, ...]) -> DecisionContext:
    ctx = run.contexts.get(overrides)
    if ctx is None:
        changes = {
            name: value
            for name, value in zip(_CONTEXT_FIELDS, overrides, strict=True)
            if value is not msgspec.UNSET
        }
        ctx = (
            msgspec.structs.replace(run.header.context, **changes)
            if changes
            else run.header.context
        )
        if len(run.contexts) < 10_000:  # noqa: PLR2004
            run.contexts[overrides] = ctx
    return ctx


async def _lines(body: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    """Non-empty lines with their 1-based numbers; a line longer than MAX_LINE_BYTES fails."""
    buffer = b""
    number = 0
    async for part in body:
        buffer += part
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            number += 1
            stripped = line.strip()
            if stripped:
                yield number, stripped
        if len(buffer) > MAX_LINE_BYTES:
            raise ValidationFailed.field(f"line {number + 1}", "line too long")
    if buffer.strip():
        yield number + 1, buffer.strip()


async def _batched(
    lines: AsyncIterator[tuple[int, bytes]], size: int
) -> AsyncIterator[list[tuple[int, bytes]]]:
    batch: list[tuple[int, bytes]] = []
    async for item in lines:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
