"""`consent serve` as an operator starts and stops it: what it says, and one clear line (never
a worker's traceback) when its configuration cannot work."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

import pytest

from consent.crypto.keys import load_keyring
from consent.db.database import Database
from tests.support.cli import ROOT, as_an_unprivileged_user, cli_env, free_port, run_consent

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _unreachable_database() -> str:
    return f"postgresql://postgres@127.0.0.1:{free_port()}/consent"


def _serve_until_it_exits(
    env: dict[str, str], *, unprivileged: bool = False
) -> subprocess.CompletedProcess[str]:
    """`consent serve` that is expected to refuse to start; if it serves nevertheless, it and
    its workers are killed after a while (the test then fails on what it said). `unprivileged`:
    without root's right to read any file (the keys directory tests)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "consent", "serve"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_an_unprivileged_user if unprivileged else None,  # noqa: PLW1509
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=45)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += "\n(still running after 45 s: killed)"
    finally:
        with contextlib.suppress(ProcessLookupError):  # workers left behind
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _one_line(done: subprocess.CompletedProcess[str], code: int, *said: str) -> None:
    everything = done.stdout + done.stderr
    assert done.returncode == code, everything[-3000:]
    assert "Traceback" not in everything, everything[-3000:]
    for part in said:
        assert part in done.stderr, done.stderr
    assert "serving on" not in done.stderr, "it said it serves, then did not"


@pytest.mark.parametrize("host", ["no-such-host.invalid", "192.0.2.1"])
def test_an_address_it_cannot_listen_on_is_one_line_naming_the_setting(
    tmp_path: Path, host: str
) -> None:
    """A host name that does not resolve, or an address of another machine: exit 2 (bad
    configuration) naming CONSENT_HOST, not socket's traceback."""
    env = cli_env(
        _unreachable_database(),
        data_dir=tmp_path,
        CONSENT_HOST=host,
        CONSENT_PORT=str(free_port()),
    )
    done = run_consent("serve", env=env)
    _one_line(done, 2, "consent serve: cannot listen on ", host, "CONSENT_HOST")


def test_a_keys_directory_it_may_not_read_is_one_line_naming_it(
    database_dsn: str, db: object, tmp_path: Path
) -> None:
    """Every worker died on a PermissionError (an exception group, then "Unexpected exit from
    worker-1"): the main process checks the key ring before any worker starts."""
    keys = tmp_path / "keys"
    keys.mkdir(mode=0)
    env = cli_env(database_dsn, keys, tmp_path, CONSENT_PORT=str(free_port()))
    try:
        done = _serve_until_it_exits(env, unprivileged=True)
    finally:
        keys.chmod(0o700)
    _one_line(done, 1, "consent serve: ", "Permission denied", str(keys))


def test_production_without_keys_is_one_line_and_generates_none(
    database_dsn: str, db: object, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    env = cli_env(
        database_dsn, keys, tmp_path, CONSENT_PORT=str(free_port()), CONSENT_ENVIRONMENT="prod"
    )
    done = _serve_until_it_exits(env)
    _one_line(done, 1, f"consent serve: no key-encryption key in {keys}")
    assert list(keys.iterdir()) == []


def test_the_keys_of_another_database_are_refused_in_one_line(
    database_dsn: str, db: object, tmp_path: Path
) -> None:
    """The README: `consent serve` refuses a key directory that is not the database's. It did,
    with a traceback from every worker."""
    bound = run_consent("keys", "rotate", env=cli_env(database_dsn, data_dir=tmp_path))
    assert bound.returncode == 0, bound.stderr  # the database now belongs to tmp_path/keys
    other = tmp_path / "other-keys"  # no keys: none are generated for a database with some
    env = cli_env(database_dsn, other, tmp_path, CONSENT_PORT=str(free_port()))
    done = _serve_until_it_exits(env)
    _one_line(done, 1, f"consent serve: no key-encryption key in {other}", "CONSENT_KEYS_DIR")
    assert not other.exists()
    load_keyring(other)  # keys of another ring
    done = _serve_until_it_exits(env)
    _one_line(done, 1, "consent serve: the lookup key in the key directory is not the one")


def test_the_keys_of_another_database_are_refused_on_the_embedded_database_too(
    tmp_path: Path,
) -> None:
    """Without CONSENT_DATABASE_URL the key binding was not checked: it said "serving on",
    every worker failed (an exception group, twice), and in development a whole new key ring
    was generated in the wrong directory. `consent keys rotate` wrote a KEK there too."""
    data = tmp_path / "data"
    bound = run_consent("keys", "rotate", env=cli_env(data_dir=data))
    assert bound.returncode == 0, bound.stderr  # the embedded database belongs to data/keys

    stranger = tmp_path / "stranger"
    load_keyring(stranger)  # another key ring
    before = sorted(p.name for p in stranger.rglob("*"))
    env = cli_env(keys_dir=stranger, data_dir=data, CONSENT_PORT=str(free_port()))
    done = _serve_until_it_exits(env)
    _one_line(done, 1, "consent serve: the lookup key in the key directory is not the one")
    rotated = run_consent("keys", "rotate", env=env)
    _one_line(rotated, 1, "consent keys rotate: the lookup key in the key directory is not")
    assert sorted(p.name for p in stranger.rglob("*")) == before

    empty = tmp_path / "empty"
    env = cli_env(keys_dir=empty, data_dir=data, CONSENT_PORT=str(free_port()))
    done = _serve_until_it_exits(env)
    _one_line(done, 1, f"consent serve: no key-encryption key in {empty}", "CONSENT_KEYS_DIR")
    assert not [p for p in empty.rglob("*") if p.is_file()], "keys were generated there"


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def _start(env: dict[str, str], out: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "consent", "serve"],
        env=env,
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            if _get(f"http://127.0.0.1:{port}/health/ready") == 200:
                return
        time.sleep(0.3)
    pytest.fail("the service did not become ready")


def _run_until_ready_then(
    env: dict[str, str], port: int, log: Path, signum: signal.Signals
) -> tuple[int, str]:
    """Start `consent serve`, wait until it serves and its integrator integrates, then send
    `signum` to its whole process group (as a terminal's Ctrl-C does); its exit code and log."""
    with log.open("wb") as out:
        proc = _start(env, out)
    try:
        _wait_ready(port, proc, log)
        deadline = time.monotonic() + 30
        while "integrating until stopped" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # the integrator at work
        os.killpg(proc.pid, signum)
        code = proc.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return code, log.read_text()


def test_serve_says_where_it_listens_and_where_the_data_is_never_a_password(
    database_dsn: str, db: object, tmp_path: Path
) -> None:
    port = free_port()
    user, rest = database_dsn.split("://", 1)[1].split("@", 1)
    with_password = f"postgresql://{user}:not-shown@{rest}"  # trust: the password is unused
    env = cli_env(with_password, data_dir=tmp_path / "data", CONSENT_PORT=str(port))
    code, said = _run_until_ready_then(env, port, tmp_path / "serve.log", signal.SIGTERM)
    assert code == 0, said[-3000:]
    assert f"consent: serving on http://127.0.0.1:{port}" in said
    host_and_database = rest.split("?", 1)[0]
    keys = tmp_path / "data" / "keys"
    assert f"consent: database: {host_and_database} (CONSENT_DATABASE_URL); keys: {keys}" in said
    assert "not-shown" not in said


def test_ctrl_c_stops_the_service_without_taking_its_integrator_for_dead(tmp_path: Path) -> None:
    """Ctrl-C in the shell of `make run` signals the whole process group: the integrator
    stopped, was taken for dead and started again (a warning, and a second integrator that the
    service then had to stop) while the workers and the embedded PostgreSQL stopped."""
    port = free_port()
    data = tmp_path / "data"
    env = cli_env(data_dir=data, CONSENT_PORT=str(port))
    code, said = _run_until_ready_then(env, port, tmp_path / "serve.log", signal.SIGINT)
    assert code == 0, said[-3000:]
    assert "Traceback" not in said, said[-3000:]
    assert "audit.integrator_process.exited" not in said, said[-3000:]
    assert said.count("audit.integrator_process.started") == 1, said[-3000:]
    assert "service.stopped" in said
    assert f"database: embedded PostgreSQL in {data / 'pgdata'}; keys: {data / 'keys'}" in said
    assert not (data / "pgdata" / "postmaster.pid").exists()


async def test_every_line_it_logs_is_json_also_when_a_worker_fails(
    database_dsn: str, db: Database, tmp_path: Path
) -> None:
    """granian's own lines (a worker that failed to start, with its traceback; a worker killed
    after the grace period) were plain text between the JSON lines: `[ERROR] ...`."""
    # What only a worker finds: an OPA server that does not answer (the main process checks
    # the keys, the policy, the migrations and that the database answers, not this).
    env = cli_env(
        database_dsn,
        data_dir=tmp_path,
        CONSENT_PORT=str(free_port()),
        CONSENT_OPA_URL=f"http://127.0.0.1:{free_port()}",
    )
    done = await asyncio.to_thread(_serve_until_it_exits, env)
    assert done.returncode != 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines
    not_json = []
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            not_json.append(line)
    assert not_json == [], "\n".join(not_json[:20])
    logged = [json.loads(line) for line in lines]
    assert any("exception" in entry for entry in logged), logged


async def test_a_migration_it_cannot_apply_is_one_line(
    database_dsn: str, db: Database, tmp_path: Path
) -> None:
    """A migration edited after it was applied (or one the database user may not apply) was
    found by every worker, each failing with a traceback in the log; now the main process
    applies the migrations before any worker starts."""
    async with db.pool.acquire() as conn:
        recorded = await conn.fetchval("select sha256 from schema_migrations where version = 1")
        await conn.execute("update schema_migrations set sha256 = 'x' where version = 1")
    env = cli_env(database_dsn, data_dir=tmp_path, CONSENT_PORT=str(free_port()))
    try:
        done = await asyncio.to_thread(_serve_until_it_exits, env)
    finally:  # the database is the session's: every later test migrates it
        async with db.pool.acquire() as conn:
            await conn.execute(
                "update schema_migrations set sha256 = $1 where version = 1", recorded
            )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "consent serve: 0001_foundation.sql was edited after it was applied"
    )
    assert "Traceback" not in done.stderr + done.stdout
    assert "serving on" not in done.stderr


def test_a_policy_directory_without_policies_is_one_line(tmp_path: Path) -> None:
    """A misspelt CONSENT_POLICY_DIR: every worker failed to start, with its traceback."""
    env = cli_env(
        _unreachable_database(),
        data_dir=tmp_path,
        CONSENT_PORT=str(free_port()),
        CONSENT_POLICY_DIR=str(tmp_path / "polices"),
    )
    done = run_consent("serve", env=env)
    _one_line(done, 2, f"consent serve: CONSENT_POLICY_DIR: no policies under {tmp_path}")


def test_a_policy_that_fails_its_checks_is_one_line(tmp_path: Path) -> None:
    """A Rego error: every worker failed to start, each with its traceback in a log line."""
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies)
    decision = policies / "consent" / "decision.rego"
    decision.write_text(decision.read_text() + "\nthis is not rego {\n")
    env = cli_env(
        _unreachable_database(),
        data_dir=tmp_path,
        CONSENT_PORT=str(free_port()),
        CONSENT_POLICY_DIR=str(policies),
    )
    done = run_consent("serve", env=env)
    _one_line(done, 2, "consent serve: CONSENT_POLICY_DIR: refused: ", "decision.rego")


def test_a_rego_file_that_is_not_utf8_is_one_line_naming_it(tmp_path: Path) -> None:
    """A policy saved in Latin-1 (an umlaut in a comment): a traceback about some byte."""
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies)
    (policies / "consent" / "notes.rego").write_bytes(b"package consent.notes\n# Gr\xfc\xdfe\n")
    env = cli_env(
        _unreachable_database(),
        data_dir=tmp_path,
        CONSENT_PORT=str(free_port()),
        CONSENT_POLICY_DIR=str(policies),
    )
    done = run_consent("serve", env=env)
    _one_line(done, 2, "consent serve: CONSENT_POLICY_DIR: ", "notes.rego: not UTF-8")
