"""`consent policy reload` without CONSENT_DATABASE_URL talks to the embedded PostgreSQL that
`consent serve` runs for the same data directory, and never starts one itself: with no service
running, starting a database (initdb, a data directory, a server) only to find that nobody
listens was slow and left a database behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.cli import ROOT, cli_env, free_port, run_consent

pytestmark = [pytest.mark.integration, pytest.mark.policy]

NO_SERVICE = "consent policy reload: no running service found"


def _reload(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = cli_env(data_dir=data_dir, CONSENT_LOG_LEVEL="warning")
    return run_consent("policy", "reload", "--wait", "2", env=env)


def test_no_database_url_and_no_service_starts_no_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = _reload(data)
    assert done.returncode == 3, done.stdout + done.stderr  # no running service answered
    assert not (data / "pgdata").exists(), "reload must not create an embedded database"
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr  # one line
    assert done.stderr.startswith(NO_SERVICE), done.stderr
    assert "CONSENT_DATABASE_URL" in done.stderr
    assert "CONSENT_DATA_DIR" in done.stderr
    assert "passed its checks" in done.stdout, done.stdout  # the bundle was still checked


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/health/ready", timeout=5) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.mark.slow
def test_reload_reaches_the_embedded_database_of_a_running_service(tmp_path: Path) -> None:
    """While `consent serve` runs on its embedded database, reload reaches it (as with a
    database URL); once the service has stopped, reload starts nothing (the data directory
    stays as the service left it, its server stopped)."""
    data, port = tmp_path / "data", free_port()
    env = cli_env(data_dir=data, CONSENT_PORT=str(port), CONSENT_LOG_LEVEL="warning")
    base = f"http://127.0.0.1:{port}"
    postmaster = data / "pgdata" / "postmaster.pid"
    with (tmp_path / "service.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "consent", "serve"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while not _ready(base):
            assert proc.poll() is None, (tmp_path / "service.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the service did not become ready"
            time.sleep(0.3)
        done = _reload(data)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "  process " in done.stdout, done.stdout
        assert NO_SERVICE not in done.stderr
        assert _ready(base), "the service must keep serving"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # the reload held no handle on the server: the service's stop stopped it
    assert not postmaster.exists(), "the embedded PostgreSQL should be stopped"

    again = _reload(data)
    assert again.returncode == 3, again.stdout + again.stderr
    assert again.stderr.startswith(NO_SERVICE), again.stderr
    assert not postmaster.exists(), "reload must not start the embedded PostgreSQL"
