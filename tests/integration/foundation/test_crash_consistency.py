"""The crash invariants of the design, against the real `consent serve`: an acknowledged write
(consent, preference, erasure) is never lost and a decision that was answered is in the log,
when the service is killed (`kill -9` of its whole process group, and of the embedded
PostgreSQL with it) or stopped (SIGTERM) under load from concurrent clients.

Every 2xx answer the clients got is recorded; after the service is started again each must be
there: events in the ledger and in history, state equal to the fold of history, erased subjects
gone, decisions in the decision log, and everything in the audit log, which then verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from consent.audit.checkpoint import NoteSigner
from consent.audit.integrator import Integrator
from consent.db.database import Database, postmaster_pid
from tests.integration.conftest import Catalog
from tests.support.cli import ROOT, cli_env, free_port, process_running, run_consent

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_PURPOSES = ("analytics", "advertising")
_ACTIONS = ("web.analytics", "ads.targeted")
_CHOICES = ("granted", "denied", "withdrawn")
_CLIENTS = 8
_LOAD_SECONDS = 2.5


@dataclass
class Acknowledged:
    """Every 2xx answer the clients got, by what it acknowledged."""

    consents: dict[str, str] = field(default_factory=dict)  # event id -> subject id
    preferences: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, tuple[bool, str | None]] = field(default_factory=dict)  # allow, subject
    erased: dict[str, str] = field(default_factory=dict)  # subject id -> its identifier value
    erasure_leaves: list[str] = field(default_factory=list)
    # Answers that are neither a success nor "unavailable": a test body or the service is wrong.
    unexpected: list[tuple[str, int, str]] = field(default_factory=list)
    unavailable: int = 0
    no_answer: int = 0
    in_flight_at_interruption: int = 0

    @property
    def writes(self) -> int:
        return len(self.consents) + len(self.preferences) + len(self.erased)


class Service:
    """`consent serve` in a session of its own, its output in a log file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""

    def start(self) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "consent", "serve"],
                env={**self.env, "CONSENT_PORT": str(port)},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the service exited during start-up:\n{self.said()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + "/health/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        pytest.fail(f"the service did not become ready:\n{self.said()}")

    def said(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def kill_group(self) -> None:
        """kill -9 of the main process, its workers and its integrator (its process group)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _stop_embedded(pgdata: Path) -> None:
    """Leave no embedded server behind, even when the test fails."""
    pid = postmaster_pid(pgdata)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)


# -- the load ---------------------------------------------------------------------------------


class Load:
    """Concurrent clients doing what integrators do, until told to stop."""

    def __init__(self, base: str, key: str, version_id: str, seen: Acknowledged) -> None:
        self.base, self.version_id, self.seen = base, version_id, seen
        self.headers = {"Authorization": f"Bearer {key}"}
        self.stop = asyncio.Event()
        self.known: list[str] = []  # identifier values written to (returning customers)
        self.rng = random.Random(20261125)
        self.counter = 0
        self.in_flight = 0

    def _identifier(self, *, returning: bool) -> dict[str, str]:
        if returning and self.known:
            value = self.rng.choice(self.known)
        else:
            self.counter += 1
            value = f"CRASH-{self.counter:05d}"
            self.known.append(value)
        return {"type": "customer_id", "value": value}

    async def _post(self, client: httpx.AsyncClient, path: str, body: Any) -> Any:
        """The answer's body on a 2xx, else None (the attempt is counted)."""
        self.in_flight += 1
        try:
            response = await client.post(path, json=body, headers=self.headers)
        except httpx.TransportError:
            self.seen.no_answer += 1
            return None
        finally:
            self.in_flight -= 1
        if response.status_code in {200, 201}:
            return response.json()
        if response.status_code == 503:
            self.seen.unavailable += 1
        else:
            self.seen.unexpected.append((path, response.status_code, response.text[:300]))
        return None

    async def consent(self, client: httpx.AsyncClient) -> None:
        body = {
            "identifier": self._identifier(returning=self.rng.random() < 0.6),
            "choices": [
                {"purpose": p, "choice": self.rng.choice(_CHOICES)}
                for p in _PURPOSES
                if self.rng.random() < 0.7
            ]
            or [{"purpose": "analytics", "choice": "granted"}],
            "notice_version_id": self.version_id,
            "language": "en",
            "surface": "banner",
            "channel": "web",
        }
        if (answer := await self._post(client, "/v1/consents", body)) is not None:
            self.seen.consents[answer["event_id"]] = answer["subject_id"]

    async def preference(self, client: httpx.AsyncClient) -> None:
        body = {
            "identifier": self._identifier(returning=self.rng.random() < 0.7),
            "items": [
                {"kind": "channel", "key": "email", "value": self.rng.choice(["opt_in", "opt_out"])}
            ],
            "surface": "portal",
            "channel": "web",
        }
        if (answer := await self._post(client, "/v1/preferences", body)) is not None:
            self.seen.preferences[answer["event_id"]] = answer["subject_id"]

    def _decision_request(self) -> dict[str, Any]:
        return {
            "subject": {"identifier": self._identifier(returning=self.rng.random() < 0.9)},
            "action": self.rng.choice(_ACTIONS),
            "context": {"requester": "esp", "jurisdiction": "DE"},
        }

    def _decided(self, answer: dict[str, Any]) -> None:
        self.seen.decisions[answer["decision_id"]] = (answer["allow"], answer.get("subject_id"))

    async def decision(self, client: httpx.AsyncClient) -> None:
        if (answer := await self._post(client, "/v1/decisions", self._decision_request())) is None:
            return
        self._decided(answer)

    async def batch(self, client: httpx.AsyncClient) -> None:
        body = {"decisions": [self._decision_request() for _ in range(5)]}
        if (answer := await self._post(client, "/v1/decisions/batch", body)) is not None:
            for decided in answer["decisions"]:
                self._decided(decided)

    async def erasure(self, client: httpx.AsyncClient, n: int) -> None:
        """A subject of its own (no other client writes to it), recorded, then erased."""
        value = f"ERASE-{n:03d}"
        identifier = {"type": "customer_id", "value": value}
        consent = {
            "identifier": identifier,
            "choices": [{"purpose": "analytics", "choice": "granted"}],
            "notice_version_id": self.version_id,
            "surface": "banner",
            "channel": "web",
        }
        if await self._post(client, "/v1/consents", consent) is None:
            return
        erased = await self._post(client, "/v1/subjects/erase", {"identifier": identifier})
        if erased is not None:
            self.seen.erased[erased["subject_id"]] = value
            self.seen.erasure_leaves.extend(erased["audit_events"])

    async def client(self, client: httpx.AsyncClient, n: int) -> None:
        erasures = 0
        while not self.stop.is_set():
            roll = self.rng.random()
            if n == 0 and erasures < 4 and roll < 0.2:
                erasures += 1
                await self.erasure(client, erasures)
            elif roll < 0.35:
                await self.consent(client)
            elif roll < 0.55:
                await self.preference(client)
            elif roll < 0.9:
                await self.decision(client)
            else:
                await self.batch(client)

    async def run_until(self, interrupt: Any) -> None:
        """Load from `_CLIENTS` clients; after `_LOAD_SECONDS`, `interrupt()` (a kill or a stop)
        while they keep sending; then the clients stop once every request has its outcome."""
        limits = httpx.Limits(max_connections=_CLIENTS, max_keepalive_connections=_CLIENTS)
        async with httpx.AsyncClient(base_url=self.base, timeout=30, limits=limits) as client:
            tasks = [asyncio.create_task(self.client(client, n)) for n in range(_CLIENTS)]
            await asyncio.sleep(_LOAD_SECONDS)
            before = self.seen.writes
            self.seen.in_flight_at_interruption = self.in_flight
            await asyncio.to_thread(interrupt)
            await asyncio.sleep(0.3)  # clients meet the stopped service
            self.stop.set()
            await asyncio.gather(*tasks)
        assert before > 20, "the load acknowledged almost nothing before the interruption"


# -- after the restart: everything acknowledged is there ---------------------------------------


async def _pages(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=params)
        assert response.status_code == 200, (path, response.text)
        page = response.json()
        items += page["items"]
        if not (cursor := page["next_cursor"]):
            return items


def _fold(history: list[dict[str, Any]], items: str, key: Any) -> dict[Any, str]:
    """Per key, the event id of the newest choice: the latest `occurred_at`, ties broken by
    arrival (history lists the most recently recorded first)."""
    newest: dict[Any, tuple[datetime, int, str]] = {}
    for arrival, event in enumerate(reversed(history)):
        order = (datetime.fromisoformat(event["occurred_at"]), arrival, event["event_id"])
        for item in event[items]:
            if key(item) not in newest or order > newest[key(item)]:
                newest[key(item)] = order
    return {k: v[2] for k, v in newest.items()}


async def _check_subject(
    client: httpx.AsyncClient, subject: str, consents: set[str], preferences: set[str]
) -> None:
    """Every acknowledged event of `subject` is in its history, and its state is the fold."""
    base = f"/v1/subjects/{subject}"
    history = await _pages(client, base + "/consents/history")
    assert consents <= {e["event_id"] for e in history}, "an acknowledged consent was lost"
    state = (await client.get(base + "/consents")).json()
    assert {s["purpose"]: s["event_id"] for s in state["consents"]} == _fold(
        history, "choices", lambda c: c["purpose"]
    )
    history = await _pages(client, base + "/preferences/history")
    assert preferences <= {e["event_id"] for e in history}, "an acknowledged preference was lost"
    state = (await client.get(base + "/preferences")).json()
    assert {(p["kind"], p["key"]): p["event_id"] for p in state["preferences"]} == _fold(
        history, "items", lambda p: (p["kind"], p["key"])
    )


async def _leaf_index(client: httpx.AsyncClient, event: str) -> int:
    """The event's index in the audit log, once integrated."""
    deadline = time.monotonic() + 30
    while True:
        response = await client.get(f"/v1/audit/events/{event}")
        assert response.status_code == 200, (event, response.text)
        if (index := response.json()["leaf_index"]) is not None:
            return int(index)
        assert time.monotonic() < deadline, f"audit event {event} was never integrated"
        await asyncio.sleep(0.2)


async def _in_batches(calls: list[Any], size: int = 16) -> list[Any]:
    results: list[Any] = []
    for start in range(0, len(calls), size):
        results += await asyncio.gather(*calls[start : start + size])
    return results


async def _check_everything(base: str, key: str, seen: Acknowledged, env: dict[str, str]) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        subjects: dict[str, tuple[set[str], set[str]]] = {}
        for events, side in ((seen.consents, 0), (seen.preferences, 1)):
            for event, subject in events.items():
                if subject not in seen.erased:
                    subjects.setdefault(subject, (set(), set()))[side].add(event)
        await _in_batches([_check_subject(client, s, *e) for s, e in subjects.items()])

        for subject, value in seen.erased.items():
            assert (await client.get(f"/v1/subjects/{subject}/consents")).status_code == 404
            lookup = await client.post(
                "/v1/subjects/lookup", json={"identifier": {"type": "customer_id", "value": value}}
            )
            assert lookup.status_code == 404, "an acknowledged erasure was undone"

        async def logged(decision: str, allow: bool) -> None:
            response = await client.get(f"/v1/decisions/{decision}")
            assert response.status_code == 200, f"answered decision {decision} is not in the log"
            assert response.json()["allow"] is allow

        await _in_batches([logged(d, allow) for d, (allow, _) in seen.decisions.items()])

        # The audit log: every acknowledged event, and each decision about a known subject, is
        # a leaf under a signed checkpoint, with a proof, and `consent audit verify` passes.
        leaves = [
            *seen.consents,
            *seen.preferences,
            *seen.erasure_leaves,
            *(d for d, (_, subject) in seen.decisions.items() if subject is not None),
        ]
        indexes = await _in_batches([_leaf_index(client, e) for e in leaves])
        deadline = time.monotonic() + 30
        while True:
            checkpoint = await client.get("/v1/audit/checkpoint")
            if checkpoint.status_code == 200 and int(checkpoint.text.splitlines()[1]) > max(
                indexes
            ):
                break
            assert time.monotonic() < deadline, (
                f"no signed checkpoint covers leaf {max(indexes)}: "
                f"{checkpoint.status_code} {checkpoint.text[:200]}"
            )
            await asyncio.sleep(0.3)
        for event in random.Random(7).sample(leaves, 5):
            proof = await client.get(f"/v1/audit/events/{event}/proof")
            assert proof.status_code == 200, proof.text
    verified = await asyncio.to_thread(run_consent, "audit", "verify", env=env)
    assert verified.returncode == 0, verified.stderr[-3000:]


# -- the tests ---------------------------------------------------------------------------------


async def _catalogue(base: str, key: str) -> str:
    """Two purposes and a published notice asking for both; the version's id."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:

        async def post(path: str, body: Any, status: int = 201) -> Any:
            response = await client.post(path, json=body)
            assert response.status_code == status, response.text
            return response.json()

        for purpose in _PURPOSES:
            await post(
                "/v1/purposes", {"key": purpose, "name": purpose.title(), "legal_basis": "consent"}
            )
        await post("/v1/notices", {"key": "main", "purposes": list(_PURPOSES)})
        text = {"title": "Cookies", "body": "We use cookies for analytics and ads."}
        await post("/v1/notices/main/versions", {"texts": {"en": text}})
        published = await post("/v1/notices/main/versions/1/publish", None, status=200)
        return str(published["id"])


def _setup(database_dsn: str, tmp_path: Path, embedded: bool) -> tuple[dict[str, str], Path]:
    pgdata = tmp_path / "data" / "pgdata"
    env = cli_env(
        None if embedded else database_dsn,
        data_dir=tmp_path / "data",
        CONSENT_WORKERS="2",
        CONSENT_SHUTDOWN_GRACE_SECONDS="10",
        CONSENT_LOG_LEVEL="warning",
    )
    return env, pgdata


async def _started_with_tenant(service: Service, env: dict[str, str]) -> tuple[str, str]:
    await asyncio.to_thread(service.start)
    created = await asyncio.to_thread(run_consent, "tenant", "create", "Crash Shop", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    return key, await _catalogue(service.base, key)


@pytest.mark.parametrize("embedded", [False, True], ids=["database-url", "embedded"])
async def test_kill_9_under_load_loses_no_acknowledged_write_or_decision(
    database_dsn: str, db: object, tmp_path: Path, embedded: bool
) -> None:
    """kill -9 of `consent serve` (main process, workers, integrator) mid-load, and of the
    embedded PostgreSQL with it (it runs in a session of its own, so it is killed by its pid):
    the service comes back (the embedded server recovers), and every answered write, erasure
    and decision is there."""
    env, pgdata = _setup(database_dsn, tmp_path, embedded)
    service, seen = Service(env, tmp_path / "service.log"), Acknowledged()
    try:
        key, version = await _started_with_tenant(service, env)

        def crash() -> None:
            postmaster = postmaster_pid(pgdata) if embedded else None
            service.kill_group()
            if postmaster is not None:
                os.kill(postmaster, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while process_running(postmaster):
                    assert time.monotonic() < deadline, "the embedded PostgreSQL outlived kill -9"
                    time.sleep(0.05)

        await Load(service.base, key, version, seen).run_until(crash)
        assert not seen.unexpected, seen.unexpected[:5]
        assert seen.in_flight_at_interruption > 0, "nothing was in flight at the kill"
        await asyncio.to_thread(service.start)
        await _check_everything(service.base, key, seen, env)
    finally:
        service.kill_group()
        if embedded:
            _stop_embedded(pgdata)


@pytest.mark.parametrize("embedded", [False, True], ids=["database-url", "embedded"])
async def test_sigterm_under_load_answers_or_refuses_and_loses_nothing_answered(
    database_dsn: str, db: object, tmp_path: Path, embedded: bool
) -> None:
    """SIGTERM (a graceful stop) mid-load: each request in flight is answered (and then
    durable), refused (503) or never answered (a connection error); the service exits 0, and
    after a new start every answered write and decision is there."""
    env, pgdata = _setup(database_dsn, tmp_path, embedded)
    service, seen = Service(env, tmp_path / "service.log"), Acknowledged()
    try:
        key, version = await _started_with_tenant(service, env)
        assert service.proc is not None
        proc = service.proc
        await Load(service.base, key, version, seen).run_until(
            lambda: proc.send_signal(signal.SIGTERM)
        )
        assert await asyncio.to_thread(proc.wait, 60) == 0, service.said()
        assert seen.in_flight_at_interruption > 0, "nothing was in flight at the SIGTERM"
        assert not seen.unexpected, seen.unexpected[:5]
        if embedded:
            assert postmaster_pid(pgdata) is None, "the embedded PostgreSQL was not stopped"
        await asyncio.to_thread(service.start)
        await _check_everything(service.base, key, seen, env)
    finally:
        service.kill_group()
        if embedded:
            _stop_embedded(pgdata)


# -- the audit integrator across a stop or a crash ---------------------------------------------


async def _signed_tail(db: Database) -> tuple[int, int]:
    """(tree size, size of the last signed checkpoint) of the tenant's log."""
    async with db.pool.acquire() as conn:
        row = await conn.fetchrow(
            "select l.tree_size, coalesce(max(c.tree_size), 0) as signed from audit_log as l "
            "left join audit_checkpoint as c using (log_id) group by l.tree_size"
        )
    assert row is not None
    return int(row["tree_size"]), int(row["signed"])


async def _consents(catalog: Catalog, n: int, prefix: str) -> None:
    for i in range(n):
        await catalog.consent(
            identifier={"type": "device", "value": f"{prefix}-{i}"},
            choices=[{"purpose": "ads", "choice": "granted"}],
        )


async def test_an_integrator_signs_what_one_before_it_left_unsigned(
    catalog: Catalog, db: Database, signer: NoteSigner
) -> None:
    """`consent serve` killed (or stopped) between integrating leaves and signing them (it
    signs at most once a second): the next one's integrator must sign them. It signed a log
    only after integrating a new leaf of it, so those leaves stayed under no checkpoint (no
    proof, 409) until the tenant's next write, found by the SIGTERM test above."""
    await _consents(catalog, 7, "crash")
    killed = Integrator(db, signer, batch_size=3, sign_interval=3600)
    await killed.integrate_all()  # the first batch signs; the rest waits for the interval
    size, signed = await _signed_tail(db)
    assert signed < size  # and then the process is gone

    stop = asyncio.Event()
    restarted = Integrator(db, signer, batch_size=3, sign_interval=1.0)
    running = asyncio.create_task(restarted.run(stop, interval=0.05))
    try:
        deadline = time.monotonic() + 5
        while (await _signed_tail(db))[1] < size and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await running
    assert await _signed_tail(db) == (size, size)


async def test_a_stopped_integrator_leaves_every_leaf_signed(
    catalog: Catalog, db: Database, signer: NoteSigner
) -> None:
    """A graceful stop (SIGTERM to `consent serve`) signs what its integrator integrated since
    its last checkpoint, instead of leaving it for the next start."""
    stop = asyncio.Event()
    integrator = Integrator(db, signer, batch_size=3, sign_interval=3600)
    running = asyncio.create_task(integrator.run(stop, interval=0.05))
    try:
        await _consents(catalog, 7, "stop")
        deadline = time.monotonic() + 5
        while True:  # integrated (the first batch signed), the rest waiting for the interval
            async with db.pool.acquire() as conn:
                if not await conn.fetchval("select count(*) from audit_pending"):
                    break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await running
    size, signed = await _signed_tail(db)
    assert signed == size
