"""The built wheel works on its own, as the Dockerfile installs it: outside a checkout, the
package finds its migrations, policies and page scripts in the wheel, not in the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import asyncpg
import pytest

from consent.db.migrate import discover
from consent.db.scratch import create_database, drop_database

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, unpacked (what `pip install` puts in site-packages;
    the dependencies come from the test environment)."""
    out = tmp_path_factory.mktemp("wheel")
    build = ["pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet"]
    subprocess.run(
        [sys.executable, "-m", *build, "--wheel-dir", str(out), str(ROOT)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = out.glob("consent-*.whl")
    site = out / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def _consent(site: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("CONSENT_")}
    return subprocess.run(
        [sys.executable, *args],
        env={**keep, "PYTHONPATH": str(site), "CONSENT_LOG_LEVEL": "warning", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


async def test_the_wheel_migrates_decides_and_serves_its_pages_outside_a_checkout(
    wheel_site: Path, pg_server_dsn: str, tmp_path: Path
) -> None:
    imported = _consent(wheel_site, tmp_path, "-c", "import consent; print(consent.__file__)")
    assert imported.stdout.strip().startswith(str(wheel_site)), imported

    dsn = await create_database(pg_server_dsn)
    try:
        env = {"CONSENT_DATABASE_URL": dsn, "CONSENT_DATA_DIR": str(tmp_path / "data")}
        migrated = _consent(wheel_site, tmp_path, "-m", "consent", "migrate", **env)
        assert migrated.returncode == 0, migrated.stderr
        conn = await asyncpg.connect(dsn)
        try:
            applied = await conn.fetchval("select count(*) from schema_migrations")
        finally:
            await conn.close()
        assert applied == len(discover(ROOT / "migrations"))

        tested = _consent(wheel_site, tmp_path, "-m", "consent", "policy", "test", **env)
        assert tested.returncode == 0, tested.stdout + tested.stderr
        created = _consent(wheel_site, tmp_path, "-m", "consent", "tenant", "create", "W", **env)
        assert created.returncode == 0, created.stderr
        assert "csk_" in created.stdout
    finally:
        await drop_database(pg_server_dsn, dsn)
    for page_script in ("audit-verify.js", "audit-verify-page.js"):
        assert (wheel_site / "consent" / "static" / page_script).is_file()
