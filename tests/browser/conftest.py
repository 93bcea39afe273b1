"""A real service process and a real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CONSENT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def live_server(
    database_dsn: str, keys_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`consent serve` on a free port, against the test database and keys."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONSENT_")},
        "CONSENT_DATABASE_URL": database_dsn,
        "CONSENT_KEYS_DIR": str(keys_dir),
        "CONSENT_DATA_DIR": str(tmp_path_factory.mktemp("live")),
        "CONSENT_PORT": str(port),
        "CONSENT_AUDIT_INTEGRATOR": "false",
        "CONSENT_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "consent", "serve"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + "/health/live", timeout=2):  # noqa: S310
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("the service did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make test` installs Debian's chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context()
        yield await context.new_page()
        await browser.close()
