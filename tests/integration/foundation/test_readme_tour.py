"""Every `curl` of the README, in the order a new user meets them, against `consent serve`:
each must work as written (after the quick start's block) and answer what the README shows."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.cli import ROOT, cli_env, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _blocks_with_curl() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```\n", readme, flags=re.DOTALL)
    return [b for b in blocks if "curl " in b]


def _wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the service exited during start-up"
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(base + "/health/ready", timeout=5) as r,  # noqa: S310
        ):
            if r.status == 200:
                return
        time.sleep(0.3)
    pytest.fail("the service did not become ready")


def test_every_curl_of_the_readme_works_as_written(
    database_dsn: str, db: object, tmp_path: Path
) -> None:
    """The consent ledger's example named a purpose the tour never created, `"…"` as the
    notice version and `7f1c…` as the Idempotency-Key: a 400 for anyone who ran it."""
    blocks = _blocks_with_curl()
    assert len(blocks) >= 3  # the quick start, the consent ledger, policy decisions
    port = free_port()
    env = cli_env(database_dsn, data_dir=tmp_path / "data", CONSENT_PORT=str(port))
    script = (
        "\n".join(blocks)
        .replace("localhost:8000", f"127.0.0.1:{port}")
        .replace(".venv/bin/consent", f"{sys.executable} -m consent")
    )
    script = re.sub(r"(?m)^curl -s ", "echo; curl -s ", script)  # one answer per line
    proc = subprocess.Popen(
        [sys.executable, "-m", "consent", "serve"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}", proc)
        walked = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert walked.returncode == 0, walked.stderr
    answers = [json.loads(line) for line in walked.stdout.splitlines() if line.strip()]
    assert len(answers) == script.count("echo; curl -s ")
    problems = [a for a in answers if "status" in a and a.get("type", "").startswith("/problems")]
    assert problems == []
    consents = [a for a in answers if "event_id" in a and "notice_hash" in a]
    assert len(consents) == 2
    decisions = [a for a in answers if "decision_id" in a]
    assert len(decisions) == 2
    assert all(d["allow"] is True and d["reasons"] == ["allowed.consent"] for d in decisions)
    states = [a for a in answers if "consents" in a]  # the state read of the quick start
    assert [(c["purpose"], c["effective"]) for c in states[0]["consents"]] == [
        ("email_marketing", True)
    ]
