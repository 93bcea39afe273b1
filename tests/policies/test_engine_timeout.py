"""A timed-out in-process evaluation must not hold up other decisions.

The Go engine cannot stop an evaluation: a slow one runs to its end on its engine and thread.
The caller gets a 503 at the timeout (fail closed); the busy engine is set aside (closed when
it ends) and a fresh one takes its place, so that every other decision is still made.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, cast

import pytest
import structlog

from consent.decisions.engine import InProcessOpaEngine, PolicyBundle, PolicyUnavailable
from tests.policies.conftest import SALE_IN_UTAH

# The shipped policy, plus a rule that takes seconds for one action the policy does not know.
SLOW_RULE = """
denials contains "denied.slow" if {
	input.action == "slow.timeout"
	count([n | some n in numbers.range(1, 1000000); n % 7 == 0]) > 0
}
"""
SLOW = {**SALE_IN_UTAH, "action": "slow.timeout"}
# Denied by the shipped policy: the subject is not known.
UNKNOWN = {
    **SALE_IN_UTAH,
    "subject": {**cast("dict[str, Any]", SALE_IN_UTAH["subject"]), "known": False},
}
# The slow rule takes 1-1.5 s on this machine: each timeout must end well before it does.
TIMEOUT = 0.5
SHORT_TIMEOUT = 0.2


def _with_slow_rule(bundle: PolicyBundle) -> PolicyBundle:
    name = "consent/decision.rego"
    return PolicyBundle(
        root=bundle.root,
        modules={**bundle.modules, name: bundle.modules[name] + SLOW_RULE},
        test_modules={},
        data=bundle.data,
        revision="sha256:slow",
    )


def _opa_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("opa"))


async def _decide_in_time(engine: InProcessOpaEngine, input_doc: dict[str, Any]) -> bool:
    started = time.monotonic()
    result = await engine.evaluate(input_doc)
    assert time.monotonic() - started < TIMEOUT
    return result.allow


async def _until_nothing_set_aside(engine: InProcessOpaEngine) -> None:
    deadline = time.monotonic() + 120
    while engine.set_aside:
        assert time.monotonic() < deadline, "a slow evaluation never ended"
        await asyncio.sleep(0.05)


async def test_other_decisions_are_made_while_a_timed_out_one_runs(bundle: PolicyBundle) -> None:
    threads = _opa_threads()
    engine = InProcessOpaEngine(_with_slow_rule(bundle), pool_size=1, timeout=TIMEOUT, check=False)
    try:
        with structlog.testing.capture_logs() as logs:
            with pytest.raises(PolicyUnavailable, match="timed out"):
                await engine.evaluate(SLOW)
            # The only engine is still busy with it, yet decisions are made as usual.
            assert await _decide_in_time(engine, SALE_IN_UTAH) is True
            assert await _decide_in_time(engine, UNKNOWN) is False
            assert engine.set_aside == 1  # the slow evaluation was still running meanwhile

            await _until_nothing_set_aside(engine)
            assert await _decide_in_time(engine, SALE_IN_UTAH) is True
        # One thread per engine in use, at most one more per engine set aside.
        assert _opa_threads() - threads <= 2
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert [e["event"] for e in warnings] == ["policy.engine_set_aside"]
        # Nothing of the input (personal data) in the log lines.
        assert "slow.timeout" not in repr(logs)
        assert "US-UT" not in repr(logs)
    finally:
        await engine.aclose()


async def test_engines_set_aside_are_bounded(bundle: PolicyBundle) -> None:
    # Both slow evaluations must time out while the first still runs: both within its first
    # half second.
    engine = InProcessOpaEngine(
        _with_slow_rule(bundle), pool_size=1, timeout=SHORT_TIMEOUT, check=False
    )
    try:
        with structlog.testing.capture_logs() as logs:
            for _ in range(2):
                with pytest.raises(PolicyUnavailable, match="timed out"):
                    await engine.evaluate(SLOW)
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
            "policy.engine_set_aside",
            "policy.engine_busy_past_timeout",
        ]
        # One engine (pool_size) set aside at most: the second slow evaluation kept its engine,
        # so decisions wait for it and time out (a 503, never a denial), as before.
        assert engine.set_aside == 1
        with pytest.raises(PolicyUnavailable, match="timed out"):
            await engine.evaluate(SALE_IN_UTAH)
    finally:
        started = time.monotonic()
        await engine.aclose()
        assert time.monotonic() - started < TIMEOUT  # never waits for a busy engine
    with pytest.raises(PolicyUnavailable):
        await engine.evaluate(SALE_IN_UTAH)
