"""In-process OPA decision throughput and latency; prints JSON.

    .venv/bin/python bench/decisions_inprocess.py [--n 3000]

Uncached: every input is distinct (now_ns differs), through `InProcessOpaEngine.evaluate` with a
pool of 1 and 2 engines and one concurrent caller per engine; `direct_*` call compiled engines
from plain threads without asyncio, to show what the event-loop hop costs. Cached: the same
input again and again through `CachedPolicyEngine` (the hit path: canonical JSON + LRU lookup).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import threading
import time
from typing import Any

from consent.decisions.engine import (
    CachedPolicyEngine,
    CompiledPolicy,
    InProcessOpaEngine,
    PolicyBundle,
)

NOW = 1_750_000_000_000_000_000
DAY = 86_400_000_000_000


def make_input(i: int) -> dict[str, Any]:
    """Five consent purposes, a 13-month maximum age, an action needing two of them."""
    keys = ["analytics", "personalization", "advertising", "email_marketing", "data_sharing"]
    return {
        "now_ns": NOW + i,
        "action": "ads.retarget",
        "subject": {
            "known": True,
            "jurisdiction": "US-CA",
            "age": 30,
            "parental_consent": False,
            "parental_consent_third_parties": False,
            "gpc": i % 2 == 0,
            "limit_sensitive": False,
            "objections": [],
        },
        "purposes": {
            k: {
                "legal_basis": "consent",
                "max_age_ns": 395 * DAY,
                "strictly_necessary": False,
                "material_version": 2,
            }
            for k in keys
        },
        "consents": {
            k: {"status": "granted", "recorded_at_ns": NOW - 30 * DAY, "material_version": 2}
            for k in keys
        },
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100)
    return {
        "p50_us": round(q[49] * 1e6, 1),
        "p99_us": round(q[98] * 1e6, 1),
        "mean_us": round(statistics.fmean(ordered) * 1e6, 1),
    }


async def run_uncached(bundle: PolicyBundle, pool_size: int, n: int) -> dict[str, Any]:
    engine = InProcessOpaEngine(bundle, pool_size=pool_size, check=False)
    inputs = [make_input(i) for i in range(n)]
    latencies: list[float] = []
    concurrency = pool_size
    try:
        for doc in inputs[:200]:  # warm up: the prepared query is built on first use
            await engine.evaluate(doc)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for doc in inputs:
            queue.put_nowait(doc)

        async def worker() -> None:
            while not queue.empty():
                doc = queue.get_nowait()
                t0 = time.perf_counter()
                await engine.evaluate(doc)
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    finally:
        await engine.aclose()
    return {
        "pool_size": pool_size,
        "concurrent_callers": concurrency,
        "n": n,
        "evals_per_s": round(n / elapsed),
        **percentiles(latencies),
    }


def run_direct(bundle: PolicyBundle, threads: int, n: int) -> dict[str, Any]:
    """Compiled engines called from plain threads, one engine each: no asyncio, no cache."""
    policies = [CompiledPolicy(bundle) for _ in range(threads)]
    inputs = [make_input(i) for i in range(n)]
    latencies: list[float] = []

    def work(policy: CompiledPolicy, part: list[dict[str, Any]]) -> None:
        for doc in part:
            t0 = time.perf_counter()
            policy.decide(doc)
            latencies.append(time.perf_counter() - t0)

    try:
        for policy in policies:
            for doc in inputs[:200]:
                policy.decide(doc)
        workers = [
            threading.Thread(target=work, args=(policy, inputs[i::threads]))
            for i, policy in enumerate(policies)
        ]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - start
    finally:
        for policy in policies:
            policy.close()
    return {"threads": threads, "n": n, "evals_per_s": round(n / elapsed), **percentiles(latencies)}


async def run_cached(bundle: PolicyBundle, n: int) -> dict[str, Any]:
    engine = CachedPolicyEngine(InProcessOpaEngine(bundle, pool_size=1, check=False))
    doc = make_input(0)
    latencies: list[float] = []
    try:
        await engine.evaluate(doc)
        start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            await engine.evaluate(doc)
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
    finally:
        await engine.aclose()
    return {
        "n": n,
        "evals_per_s": round(n / elapsed),
        "hits": engine.hits,
        **percentiles(latencies),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    bundle = PolicyBundle.load()
    result = {
        "engine": "opa_bindings 0.4.4 (OPA v1.20.2), in-process",
        "revision": bundle.revision,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "direct_1_thread": run_direct(bundle, 1, args.n),
        "direct_2_threads": run_direct(bundle, 2, args.n),
        "uncached_1_thread": await run_uncached(bundle, 1, args.n),
        "uncached_2_threads": await run_uncached(bundle, 2, args.n),
        "cached_hit": await run_cached(bundle, args.n * 10),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
