# Copyright 2026 The consent authors
# SPDX-License-Identifier: Apache-2.0
"""Benchmark the pure audit-log core on a 1M-leaf tree; prints one JSON object on stdout.

    .venv/bin/python bench/audit_verify.py [--leaves N] [--leaf-bytes B] [--samples S]

Measures: recomputing the root from leaf bytes (hash every leaf, then the tree), the streaming
``verify_offline.replay`` against a signed checkpoint, ``Frontier.append`` throughput (the
integrator's inner loop), and inclusion/consistency proof generation + verification latency
from in-memory perfect nodes (``MemoryTree``) at a size that is not a power of two.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from consent.audit import merkle
from consent.audit.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from consent.audit.verify_offline import replay


def synthetic_leaves(count: int, size: int) -> list[bytes]:
    """Distinct leaves of ``size`` bytes: a JSON-ish prefix with the index, padded with noise."""
    noise = os.urandom(size)
    out = []
    for i in range(count):
        head = b'{"event_uuid":"%036d","n":%d,"pad":"' % (i, i)
        out.append((head + noise)[:size])
    return out


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": round(statistics.median(ordered) * 1e6, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1] * 1e6, 1),
        "max_us": round(ordered[-1] * 1e6, 1),
    }


def frontier_rate(hashes: list[bytes]) -> tuple[float, int, bytes]:
    frontier = merkle.Frontier()
    append = frontier.append
    nodes = 0
    start = time.perf_counter()
    for value in hashes:
        nodes += len(append(value))
    seconds = time.perf_counter() - start
    return seconds, nodes, frontier.root()


def inclusion_latency(tree: merkle.MemoryTree, size: int, samples: int) -> list[float]:
    rng = random.Random(1)
    root = tree.root(size)
    timings = []
    for _ in range(samples):
        index = rng.randrange(size)
        start = time.perf_counter()
        proof = tree.inclusion_proof(index, size)
        merkle.verify_inclusion(tree.node(0, index), index, size, proof, root)
        timings.append(time.perf_counter() - start)
    return timings


def consistency_latency(tree: merkle.MemoryTree, size: int, samples: int) -> list[float]:
    rng = random.Random(2)
    root2 = tree.root(size)
    timings = []
    for _ in range(samples):
        size1 = rng.randrange(1, size + 1)
        root1 = tree.root(size1)
        start = time.perf_counter()
        proof = tree.consistency_proof(size1, size)
        merkle.verify_consistency(size1, size, proof, root1, root2)
        timings.append(time.perf_counter() - start)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--leaf-bytes", type=int, default=200)
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    leaves = synthetic_leaves(args.leaves, args.leaf_bytes)

    hash_s, hashes = timed(lambda: merkle.leaf_hashes(leaves))
    tree_s, root = timed(lambda: merkle.root_from_leaf_hashes(hashes))
    frontier_s, nodes, frontier_root = frontier_rate(hashes)
    build_s, tree = timed(lambda: merkle.MemoryTree(hashes))
    if frontier_root != root or tree.root() != root:
        sys.exit("root mismatch between implementations")

    signer = NoteSigner.from_seed("bench.example/audit", bytes(32))
    note = sign_checkpoint(Checkpoint("bench.example/audit", len(leaves), root), [signer])
    replay_s, result = timed(lambda: replay(leaves, note, signer.vkey))
    if not result.ok:
        sys.exit(f"replay failed: {result.reason}")

    size = args.leaves - 1 if args.leaves & (args.leaves - 1) == 0 else args.leaves
    report = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "leaves": args.leaves,
        "leaf_bytes": args.leaf_bytes,
        "root_from_leaf_bytes_s": round(hash_s + tree_s, 3),
        "leaf_hashing_s": round(hash_s, 3),
        "tree_from_leaf_hashes_s": round(tree_s, 3),
        "replay_signed_checkpoint_s": round(replay_s, 3),
        "frontier_append_leaves_per_s": round(args.leaves / frontier_s),
        "frontier_nodes_emitted": nodes,
        "memory_tree_build_s": round(build_s, 3),
        "proof_tree_size": size,
        "inclusion_gen_verify": percentiles(inclusion_latency(tree, size, args.samples)),
        "consistency_gen_verify": percentiles(consistency_latency(tree, size, args.samples)),
        "proof_samples": args.samples,
    }
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
