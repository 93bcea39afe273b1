"""Single decisions over HTTP under load, next to the same server's trivial endpoint; prints ONE
JSON object.

    .venv/bin/python bench/decisions_http.py [--subjects 10000] [--seconds 15] [--connections 32]
                                             [--workers 1] [--profile DIR] [--integrator-off]

`python -m consent serve` (granian + uvloop) runs in a subprocess on its own database (an embedded
PostgreSQL in a temporary directory, or a new database on CONSENT_BENCH_DATABASE_URL) with
`--subjects` seeded subjects (see bench/audience.py). wrk (Debian's `wrk`, a separate C load
generator) then loads, in the same run and against the same server:

- `GET /health/live` (no database, no policy): the server's ceiling on this machine;
- `POST /v1/decisions` for random subjects by e-mail identifier, in a few contexts: the full
  path (API key, ledger read under row-level security, policy via the decision cache, decision
  log by group commit, durable before the answer).

Then `--pairs` short pairs of both, back to back (`paired_ratio_median`: this machine's speed
drifts between phases), the decisions again from `--light-connections` connections (latency
below saturation), and a sweep over `--sweep` connection counts:
`max_decisions_per_s_within_p99_target` is the most decisions/s served with p99 <= 10 ms, the
capacity to plan with.
Reported: requests/s and latency percentiles of both, ratio = decisions / health (target
>= 0.5), decisions p99 (target <= 10 ms), non-2xx answers, CPU cores used by the service,
PostgreSQL and wrk during the decision phase, the decision cache's hit rate and the number of
decisions in the log (every answered decision must be there). `--profile DIR` records the
service's processes with py-spy (raw collapsed stacks) during the decision phase; `--integrator-off`
runs the service without its audit integrator (`consent serve` runs it as a process of its own
beside the workers; its CPU counts as the service's) to measure what it costs; `--keep`
keeps the work directory with the service's log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from audience import (
    Service,
    cpu_seconds,
    log,
    postgres_cpu_seconds,
    postgres_server,
    profiled,
    seed,
)

from consent.crypto.keys import load_keyring
from consent.db.scratch import create_database, drop_database

WRK_SCRIPT = (
    r"""
local subjects = 0
local contexts = {
  '{"requester": "esp", "jurisdiction": "DE"}',
  '{"requester": "esp", "jurisdiction": "US-CA", "gpc": true, "age": 30}',
  '{"requester": "ads", "jurisdiction": "FR", "age": 15}',
}
local actions = {"email.marketing", "email.marketing", "ads.targeted", "web.analytics"}
function init(args)
  subjects = tonumber(args[1])
  headers = {["Authorization"] = "Bearer " .. args[2], ["Content-Type"] = "application/json"}
  math.randomseed(os.time() + tonumber(args[3] or 0))
end
request = function()
  local body = string.format(
    '{"subject": {"identifier": {"type": "email", "value": "user%d@example.com"}}, '
    .. '"action": "%s", "context": %s}',
    math.random(subjects), actions[math.random(#actions)], contexts[math.random(#contexts)])
  return wrk.format("POST", "/v1/decisions", headers, body)
end
"""
    r"""
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
"""
)
HEALTH_SCRIPT = WRK_SCRIPT[WRK_SCRIPT.index("done = function") :]


def wrk(
    url: str, script: Path, args: list[str], seconds: float, connections: int
) -> dict[str, Any]:
    done = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{int(seconds)}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
            "--",
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 60,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {done.stdout[-800:]} {done.stderr[-800:]}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    wall = raw["duration_us"] / 1e6
    return {
        "requests_per_s": round((raw["requests"] - raw["status_errors"]) / wall),
        "requests": raw["requests"],
        "non_2xx": raw["status_errors"],
        "socket_errors": raw["socket_errors"],
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "mean_ms": round(raw["mean_us"] / 1000, 2),
    }


def get_json(url: str, key: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


async def logged_decisions(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("select count(*) from decision_log"))
    finally:
        await conn.close()


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get update && apt-get install -y wrk")
    decide_lua, health_lua = work / "decide.lua", work / "health.lua"
    decide_lua.write_text(WRK_SCRIPT)
    health_lua.write_text(HEALTH_SCRIPT)
    with postgres_server(work) as (server_dsn, _):
        dsn = asyncio.run(create_database(server_dsn, prefix="consent_bench"))
        try:
            load_keyring(work / "keys", create=True)
            _, key = asyncio.run(seed(dsn, work / "keys", args.subjects))
            service = Service(
                dsn,
                work,
                workers=args.workers,
                env={
                    "CONSENT_DB_POOL_MAX": str(args.pool),
                    "CONSENT_DECISION_LOG_LINGER_MS": str(args.linger_ms),
                    "CONSENT_AUDIT_INTEGRATOR": "false" if args.integrator_off else "true",
                },
            )
            service.start()
            try:
                base = service.base
                wargs = [str(args.subjects), key]
                log("warming up")
                wrk(base + "/health/live", health_lua, [], 3, args.connections)
                wrk(base + "/v1/decisions", decide_lua, [*wargs, "1"], 5, args.connections)
                log("GET /health/live")
                health = wrk(base + "/health/live", health_lua, [], args.seconds, args.connections)
                before = asyncio.run(logged_decisions(dsn))
                pids = service.workers()
                cpu = (cpu_seconds(pids), postgres_cpu_seconds(), time.perf_counter())
                children = os.times()
                log("POST /v1/decisions")
                with profiled(pids, args.profile, name="decisions"):
                    decide = wrk(
                        base + "/v1/decisions",
                        decide_lua,
                        [*wargs, "2"],
                        args.seconds,
                        args.connections,
                    )
                wall = time.perf_counter() - cpu[2]
                after_children = os.times()
                cores = {
                    "service": round((cpu_seconds(pids) - cpu[0]) / wall, 2),
                    "postgres": round((postgres_cpu_seconds() - cpu[1]) / wall, 2),
                    "wrk": round(
                        (
                            after_children.children_user
                            + after_children.children_system
                            - children.children_user
                            - children.children_system
                        )
                        / wall,
                        2,
                    ),
                }
                logged = asyncio.run(logged_decisions(dsn)) - before
                policy = get_json(base + "/v1/policy", key)
                health_light = wrk(
                    base + "/health/live", health_lua, [], args.seconds, args.light_connections
                )
                log(f"POST /v1/decisions, {args.light_connections} connections")
                light = wrk(
                    base + "/v1/decisions",
                    decide_lua,
                    [*wargs, "3"],
                    args.seconds,
                    args.light_connections,
                )
                # This machine's speed drifts between phases (other guests on the host): pairs of
                # short health and decision phases back to back give ratios that drift less.
                pairs = []
                for i in range(args.pairs):
                    log(f"pair {i + 1}/{args.pairs}: health, then decisions")
                    h = wrk(base + "/health/live", health_lua, [], 4, args.connections)
                    d = wrk(
                        base + "/v1/decisions",
                        decide_lua,
                        [*wargs, str(100 + i)],
                        4,
                        args.connections,
                    )
                    pairs.append(round(d["requests_per_s"] / h["requests_per_s"], 3))
                sweep = []
                for n in args.sweep:
                    log(f"POST /v1/decisions, {n} connections (sweep)")
                    point = wrk(base + "/v1/decisions", decide_lua, [*wargs, str(10 + n)], 5, n)
                    sweep.append({"connections": n, **point})
            finally:
                service.stop()
        finally:
            asyncio.run(drop_database(server_dsn, dsn))
    ratio = round(decide["requests_per_s"] / health["requests_per_s"], 3)
    answered = decide["requests"] - decide["non_2xx"]
    lookups = policy["cache_hits"] + policy["cache_misses"]
    return {
        "benchmark": "decisions_http",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "server": {
            "workers": args.workers,
            "db_pool_max": args.pool,
            "decision_log_linger_ms": args.linger_ms,
            "audit_integrator": "off" if args.integrator_off else "own process",
        },
        "load": {
            "tool": "wrk",
            "threads": 1,
            "connections": args.connections,
            "seconds": args.seconds,
        },
        "stored_subjects": args.subjects,
        "health_live": health,
        "decisions": decide,
        # The same requests from only a few connections: latency below saturation.
        "health_live_light_load": {"connections": args.light_connections, **health_light},
        "decisions_light_load": {"connections": args.light_connections, **light},
        "ratio": ratio,
        # Health and decisions measured back to back, 4 s each, `--pairs` times after the main
        # phases: the median is the ratio least disturbed by the machine's drift.
        "paired_ratios": pairs,
        "paired_ratio_median": statistics.median(pairs) if pairs else None,
        "targets": {"decisions_p99_ms": 10, "ratio": 0.5},
        "met": {"p99": decide["p99_ms"] <= 10, "ratio": ratio >= 0.5},
        # A non-2xx answer under load is a defect (the service log says why: --keep).
        "no_errors": sum(r["non_2xx"] + r["socket_errors"] for r in [decide, light, *sweep]) == 0,
        # Capacity within the latency target: the most decisions/s any sweep point served with
        # p99 <= 10 ms (None when none did).
        "decisions_by_connections": [
            {k: r[k] for k in ("connections", "requests_per_s", "p50_ms", "p99_ms", "non_2xx")}
            for r in sweep
        ],
        "max_decisions_per_s_within_p99_target": max(
            (r["requests_per_s"] for r in sweep if r["p99_ms"] <= 10), default=None
        ),
        "cpu_cores_during_decisions": cores,
        "decision_cache_hit_rate": round(policy["cache_hits"] / lookups, 4) if lookups else None,
        "decisions_logged": logged,
        "every_answer_logged": logged >= answered,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--light-connections", type=int, default=2)
    parser.add_argument(
        "--sweep",
        type=lambda v: [int(x) for x in v.split(",") if x and int(x) > 0],
        default=[1, 2, 4, 8, 16],
        help="connection counts to measure decisions at, 5 s each (comma-separated; 0: none)",
    )
    parser.add_argument(
        "--pairs", type=int, default=3, help="back-to-back health/decision pairs (4 s each)"
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pool", type=int, default=16, help="CONSENT_DB_POOL_MAX")
    parser.add_argument(
        "--linger-ms", type=float, default=1.0, help="CONSENT_DECISION_LOG_LINGER_MS"
    )
    parser.add_argument(
        "--integrator-off",
        action="store_true",
        help="CONSENT_AUDIT_INTEGRATOR=false: measure without the audit integrator process "
        "(leaves then wait in the outbox)",
    )
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (the service's log)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="consent-bench-decisions-"))
    try:
        print(json.dumps(run(args, work)))
    finally:
        if args.keep:
            print(f"[bench] kept {work} (service log, wrk scripts, keys)", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
