"""The service as a new user runs it: real processes, real signals, real logs."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from consent.crypto.keys import load_keyring
from tests.support.cli import cli_env, free_port, process_running, run_consent

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def _env(**extra: str) -> dict[str, str]:
    return cli_env(None, None, None, **extra)


_consent = run_consent


def _admin_key(name: str, env: dict[str, str]) -> str:
    """A new tenant's admin API key, from `consent tenant create` (its last line of output)."""
    created = _consent("tenant", "create", name, env=env)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip().splitlines()[-1]


def _key_material(keys_dir: Path) -> list[str]:
    """Every secret in the keys directory, as it could appear in text (base64, hex, PEM)."""
    found: list[str] = []
    for path in keys_dir.rglob("*"):
        if not path.is_file() or path.name == "current" or path.name.startswith("."):
            continue
        text = path.read_text().strip()
        if text.startswith("-----BEGIN"):
            body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
            found.append(body[:40])
            raw = base64.b64decode(body)
        else:
            found.append(text)
            raw = base64.b64decode(text)
        found += [raw.hex()[:32], base64.urlsafe_b64encode(raw).decode()[:40]]
    return found


def test_no_key_material_in_logs(database_dsn: str, db: object, tmp_path: Path) -> None:
    env = _env(
        CONSENT_DATABASE_URL=database_dsn,
        CONSENT_DATA_DIR=str(tmp_path),
        CONSENT_LOG_LEVEL="debug",
    )
    created = _consent("tenant", "create", "Log Check", env=env)
    assert created.returncode == 0, created.stderr
    admin_key = created.stdout.strip().splitlines()[-1]
    assert admin_key.startswith("csk_")
    rotated = _consent("keys", "rotate", env=env)
    assert rotated.returncode == 0, rotated.stderr
    secrets = _key_material(tmp_path / "keys")
    assert len(secrets) >= 9  # two KEKs, the lookup key and the signing key
    logs = created.stderr + rotated.stdout + rotated.stderr
    for secret in secrets:
        assert secret not in logs
    log_lines = [line for line in created.stderr.splitlines() if line.startswith("{")]
    assert all(admin_key not in line for line in log_lines)
    assert created.stdout.count(admin_key) == 1


def test_a_command_logs_to_stderr_and_gives_its_results_on_stdout(tmp_path: Path) -> None:
    """`consent tenant create | tail -n 1` must be the key: the command's log lines (here the
    embedded database's) go to stderr, not between its results."""
    env = _env(CONSENT_DATA_DIR=str(tmp_path / "data"), CONSENT_LOG_LEVEL="debug")
    created = _consent("tenant", "create", "Pipe", env=env)
    assert created.returncode == 0, created.stderr
    results = created.stdout.splitlines()
    assert results[-1].startswith("csk_")
    assert not [line for line in results if line.startswith("{")], results
    logged = [json.loads(line) for line in created.stderr.splitlines() if line.startswith("{")]
    assert "embedded_postgres.joined" in [line["event"] for line in logged]


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _serve(env: dict[str, str], out: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """`consent serve` in a session of its own (see `_kill_group`), output to `out`."""
    return subprocess.Popen(
        [sys.executable, "-m", "consent", "serve"],
        env=env,
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill a `consent serve` started with start_new_session and all of its workers (killing
    the main process alone leaves the workers serving, and integrating and signing audit logs
    with their own keys, under the tests that come after)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _wait_ready(base: str, proc: subprocess.Popen[bytes], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = ""
            if proc.stdout is not None:  # its output, when piped; closed so nothing leaks
                with proc.stdout:
                    said = proc.stdout.read().decode(errors="replace")[-3000:]
            pytest.fail(f"the service exited during start-up ({proc.returncode}):\n{said}")
        try:
            if _get(base + "/health/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail("the service did not become ready")


def test_zero_config_serve_and_graceful_shutdown(tmp_path: Path) -> None:
    """`consent serve` with no configuration: embedded PostgreSQL, keys, migrations; SIGTERM
    lets an in-flight request finish and stops the embedded database."""
    port = free_port()
    env = _env(CONSENT_DATA_DIR=str(tmp_path / "data"), CONSENT_PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    proc = _serve(env, subprocess.PIPE)
    try:
        _wait_ready(base, proc)
        assert (tmp_path / "data" / "keys" / "signing.ed25519").exists()
        assert (tmp_path / "data" / "pgdata" / "PG_VERSION").exists()
        key = _admin_key("Shop", env)
        status, _ = _get(base + "/v1/tenant", {"Authorization": f"Bearer {key}"})
        assert status == 200

        body = b'{"name": "in-flight", "kind": "website"}'
        head = (
            "POST /v1/properties HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head + body[:10])
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            sock.sendall(body[10:])
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 201"), response[:200]
        assert proc.wait(timeout=60) == 0
    finally:
        _kill_group(proc)
    assert proc.stdout is not None
    with proc.stdout:
        output = proc.stdout.read().decode()
    assert "service.stopped" in output
    postmaster = tmp_path / "data" / "pgdata" / "postmaster.pid"
    assert not postmaster.exists(), "the embedded PostgreSQL should be stopped"


def _all_children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _is_integrator(pid: int) -> bool:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"audit" in args and b"integrate" in args


def _children(pid: int) -> set[int]:
    """The workers of `consent serve` `pid` (its children but the audit integrator)."""
    return {c for c in _all_children(pid) if not _is_integrator(c)}


def _integrators(pid: int) -> set[int]:
    return {c for c in _all_children(pid) if _is_integrator(c)}


def _wait_for(what: str, log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if what in log.read_text():
            return
        time.sleep(0.2)
    pytest.fail(f"{what!r} never appeared in the service's log:\n{log.read_text()[-3000:]}")


@pytest.mark.parametrize("embedded", [False, True], ids=["database-url", "embedded"])
def test_sighup_reloads_the_policy_and_a_broken_one_keeps_the_old_serving(
    database_dsn: str, db: object, tmp_path: Path, embedded: bool
) -> None:
    """`kill -HUP <main pid>` (what `systemctl reload` sends) is a checked reload, like
    `consent policy reload`: a broken bundle is refused and every worker keeps serving, a good
    one is served by every worker, and no worker restarts. (granian's own SIGHUP respawned the
    workers, which then crashed on the broken bundle and took the service down.)

    Embedded: two workers start the one embedded PostgreSQL together (the second's `create
    database` used to fail, so `CONSENT_WORKERS=2` without a database URL exited at once), and
    the main process's reload joins and leaves that server without stopping it."""
    from consent.decisions.policy import check_policy

    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies)
    port, log = free_port(), tmp_path / "service.log"
    env = _env(
        CONSENT_DATA_DIR=str(tmp_path / "data"),
        CONSENT_POLICY_DIR=str(policies),
        CONSENT_PORT=str(port),
        CONSENT_WORKERS="2",
        **({} if embedded else {"CONSENT_DATABASE_URL": database_dsn}),
    )
    base = f"http://127.0.0.1:{port}"
    auth: dict[str, str] = {}

    def revision() -> str:
        status, body = _get(base + "/v1/policy", auth)
        assert status == 200, body
        served: str = json.loads(body)["revision"]
        return served

    with log.open("wb") as out:
        proc = _serve(env, out)
    try:
        _wait_ready(base, proc)
        auth["Authorization"] = f"Bearer {_admin_key('Reloads', env)}"
        before, workers = revision(), _children(proc.pid)
        assert len(workers) == 2

        rego = policies / "consent" / "decision.rego"
        good = rego.read_text()
        rego.write_text(good + "\nthis is not rego {\n")
        proc.send_signal(signal.SIGHUP)
        _wait_for("policy.reload.refused", log)
        assert proc.poll() is None, "the service exited"
        assert {revision() for _ in range(6)} == {before}

        rego.write_text(good + "\n# an editorial change\n")
        after = check_policy(policies).revision
        assert after != before
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while log.read_text().count(f'"revision":"{after}","event":"policy.reloaded"') < 2:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        assert {revision() for _ in range(6)} == {after}
        assert _children(proc.pid) == workers, "no worker may restart"
        assert _get(base + "/health/ready")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists()
    finally:
        _kill_group(proc)


def test_after_a_crash_the_next_clean_stop_stops_the_embedded_database(tmp_path: Path) -> None:
    """`consent serve` killed outright (SIGKILL, the OOM killer) cannot let go of the embedded
    PostgreSQL; the next run takes over that server, and its clean stop must stop it (it used to
    stay running for good, still counting the dead worker as a user)."""
    port = free_port()
    env = _env(CONSENT_DATA_DIR=str(tmp_path / "data"), CONSENT_PORT=str(port))
    base, postmaster = f"http://127.0.0.1:{port}", tmp_path / "data" / "pgdata" / "postmaster.pid"

    crashed = _serve(env)
    try:
        _wait_ready(base, crashed)
        os.killpg(crashed.pid, signal.SIGKILL)
        crashed.wait(timeout=30)
        assert postmaster.exists(), "the server outlives a crash (nothing could stop it)"
        again = _serve(env)
        try:
            _wait_ready(base, again)
            again.send_signal(signal.SIGTERM)
            assert again.wait(timeout=60) == 0
        finally:
            _kill_group(again)
        deadline = time.monotonic() + 30
        while postmaster.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not postmaster.exists(), "the embedded PostgreSQL should be stopped"
    finally:
        if postmaster.exists():  # leave no server behind, even when the test fails
            pid = int(postmaster.read_text().split()[0])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)


# An init that reaps late: it adopts the orphans of what it starts (PR_SET_CHILD_SUBREAPER, so
# the embedded PostgreSQL, whose pg_ctl exits, becomes its child) and reaps them only from
# `argv[2]` seconds after a SIGUSR1. It starts `consent serve` (in a session of its own,
# output to the file `argv[1]`) and prints its pid.
_LATE_REAPER = """
import ctypes, os, signal, subprocess, sys, time
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:
    sys.exit("PR_SET_CHILD_SUBREAPER refused")
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
with open(sys.argv[1], "ab") as out:
    serve = subprocess.Popen([sys.executable, "-m", "consent", "serve"], stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
print(serve.pid, flush=True)
signal.sigwait({signal.SIGUSR1})
time.sleep(float(sys.argv[2]))
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
"""


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (0: the state, "Z" for dead but
    not yet reaped; 1: the parent's pid); [] when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_CHILD_SUBREAPER, /proc")
def test_a_restart_while_the_killed_embedded_database_is_not_yet_reaped(tmp_path: Path) -> None:
    """kill -9 of `consent serve` and of its embedded PostgreSQL, then a start at once, with the
    key ring of the first (the check of the key binding starts the embedded server): the killed
    server stays a zombie until init reaps it (seconds with some inits), and its pid, still
    there, made the embedded-postgres library take it for a running server. serve then tried
    its dead socket for 60 s and exited 1 with a traceback. It must wait for the reaping, start
    the server again (which recovers) and serve."""
    port = free_port()
    env = _env(CONSENT_DATA_DIR=str(tmp_path / "data"), CONSENT_PORT=str(port))
    base, pgdata = f"http://127.0.0.1:{port}", tmp_path / "data" / "pgdata"
    log = tmp_path / "service.log"
    reaper = subprocess.Popen(
        [sys.executable, "-c", _LATE_REAPER, str(log), "5"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    again: subprocess.Popen[bytes] | None = None
    try:
        assert reaper.stdout is not None
        crashed = int(reaper.stdout.readline())
        deadline = time.monotonic() + 90
        while _get_or_none(base + "/health/ready") != 200:
            assert reaper.poll() is None, log.read_text()[-3000:]
            assert _stat(crashed)[:1] not in ([], ["Z"]), log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
        assert int(_stat(postmaster)[1]) == reaper.pid, "not adopted by the late reaper"
        assert list((tmp_path / "data" / "keys").iterdir()), "the first start made no keys"

        os.killpg(crashed, signal.SIGKILL)
        os.kill(postmaster, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _stat(postmaster)[:1] != ["Z"]:
            assert time.monotonic() < deadline, f"postmaster: {_stat(postmaster)[:2]}"
            time.sleep(0.05)
        reaper.send_signal(signal.SIGUSR1)  # reaps in 5 s: serve finds the zombie

        with log.open("ab") as out:
            again = _serve(env, out)
        _wait_ready(base, again)
        assert not _stat(postmaster), "served before the killed server was reaped?"
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=60) == 0, log.read_text()[-3000:]
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    finally:
        if again is not None:
            _kill_group(again)
        _kill_group(reaper)
        if reaper.stdout is not None:
            reaper.stdout.close()
        if (pgdata / "postmaster.pid").exists():  # leave no server behind
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int((pgdata / "postmaster.pid").read_text().split()[0]), signal.SIGINT)


def _get_or_none(url: str) -> int | None:
    try:
        return _get(url)[0]
    except OSError:
        return None


@pytest.mark.parametrize("moment", ["start-up", "serving"])
def test_workers_stop_when_the_main_process_is_killed(tmp_path: Path, moment: str) -> None:
    """`kill -9` of the main process alone: its workers stop instead of serving on (and
    holding the embedded PostgreSQL) with nothing to supervise them, whether they were still
    starting (their start-up fails at its end and releases what it holds) or serving (a
    graceful stop). A SIGTERM during start-up used to freeze a worker for good."""
    port = free_port()
    env = _env(CONSENT_DATA_DIR=str(tmp_path / "data"), CONSENT_PORT=str(port), CONSENT_WORKERS="2")
    base, postmaster = f"http://127.0.0.1:{port}", tmp_path / "data" / "pgdata" / "postmaster.pid"
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        proc = _serve(env, out)
    try:
        deadline = time.monotonic() + 60
        if moment == "start-up":  # both workers forked; a new data directory takes seconds
            while len(_children(proc.pid)) < 2:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        else:
            _wait_ready(base, proc)
            while log.read_text().count('"event":"service.started"') < 2:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            time.sleep(1.5)  # past MainProcessWatch's settling time
        workers = _children(proc.pid)
        assert len(workers) == 2
        integrators = _integrators(proc.pid)
        assert len(integrators) == 1
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 30
        while any(process_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        outlived = [pid for pid in workers if process_running(pid)]
        assert not outlived, "the workers outlived the main process"
        while any(process_running(pid) for pid in integrators) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(process_running(pid) for pid in integrators), "the integrator outlived it"
        while postmaster.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not postmaster.exists(), "the last worker to go should stop the embedded database"
        assert log.read_text().count(f'"during":"{moment}"') == 2, log.read_text()[-3000:]
    finally:
        _kill_group(proc)


def test_a_second_service_on_a_port_in_use_is_refused(
    database_dsn: str, db: object, tmp_path: Path
) -> None:
    """granian binds with SO_REUSEPORT: a second `consent serve` on the same port used to start
    quietly, and the kernel shared the connections between the two (two databases, perhaps).
    (`db`: an empty database, so no key binding of an earlier test refuses this key ring.)"""
    port = free_port()
    env = _env(
        CONSENT_DATABASE_URL=database_dsn,
        CONSENT_DATA_DIR=str(tmp_path / "data"),
        CONSENT_PORT=str(port),
    )
    proc = _serve(env)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", proc)
        second = _consent("serve", env={**env, "CONSENT_DATA_DIR": str(tmp_path / "other")})
        assert second.returncode == 1
        assert f"127.0.0.1:{port} is already in use" in second.stderr
        assert not (tmp_path / "other").exists()  # refused before touching anything
        assert _get(f"http://127.0.0.1:{port}/health/live")[0] == 200
    finally:
        _kill_group(proc)


def _tree_size(base: str, auth: dict[str, str]) -> int:
    status, body = _get(base + "/v1/audit/checkpoint", auth)
    return int(body.decode().splitlines()[1]) if status == 200 else 0


def _wait_tree_size(base: str, auth: dict[str, str], size: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while _tree_size(base, auth) < size:
        assert time.monotonic() < deadline, f"the audit log never reached {size} signed leaves"
        time.sleep(0.2)


def test_the_audit_integrator_is_a_process_of_its_own(
    database_dsn: str, db: object, tmp_path: Path
) -> None:
    """`consent serve` integrates and signs the audit logs in one process beside its workers
    (not on the event loop that answers requests), starts it again when it dies, and stops it
    with the service."""
    port, log = free_port(), tmp_path / "service.log"
    env = _env(
        CONSENT_DATABASE_URL=database_dsn,
        CONSENT_DATA_DIR=str(tmp_path / "data"),
        CONSENT_PORT=str(port),
        CONSENT_WORKERS="2",
    )
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = _serve(env, out)
    try:
        _wait_ready(base, proc)
        auth = {"Authorization": f"Bearer {_admin_key('Integrated', env)}"}
        _wait_tree_size(base, auth, 1)  # the tenant's first leaf (its policy), signed
        assert len(_children(proc.pid)) == 2
        (first,) = _integrators(proc.pid)

        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not (_integrators(proc.pid) - {first}):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        _wait_for("audit.integrator_process.exited", log)
        request = urllib.request.Request(  # noqa: S310
            base + "/v1/tenant/settings",
            data=b'{"store_network_evidence": true}',
            headers={**auth, "Content-Type": "application/json"},
            method="PUT",
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            assert response.status == 200
        _wait_tree_size(base, auth, 2)  # integrated and signed by the new one
        (second,) = _integrators(proc.pid)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not process_running(second), "the integrator outlived the service"
    finally:
        _kill_group(proc)


@pytest.mark.parametrize("size", ["0", "-5"])
def test_keys_rotate_refuses_a_batch_size_below_one(
    database_dsn: str, db: object, tmp_path: Path, size: str
) -> None:
    """`--batch-size 0` re-wrapped nothing yet reported success after making a new KEK
    current (a negative size failed with a traceback after that): refused before anything."""
    env = _env(CONSENT_DATABASE_URL=database_dsn, CONSENT_DATA_DIR=str(tmp_path))
    _admin_key("Rotate Check", env)
    before = sorted(p.name for p in (tmp_path / "keys").rglob("*"))
    rotated = _consent("keys", "rotate", "--batch-size", size, env=env)
    assert rotated.returncode == 2, rotated.stderr
    assert "--batch-size" in rotated.stderr
    assert "Traceback" not in rotated.stderr
    assert sorted(p.name for p in (tmp_path / "keys").rglob("*")) == before


def test_an_unreachable_database_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """A wrong CONSENT_DATABASE_URL (or PostgreSQL down): every command that needs the database
    says so in one line and exits 1."""
    env = _env(
        CONSENT_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/consent",
        CONSENT_DATA_DIR=str(tmp_path),
        CONSENT_PORT=str(free_port()),
    )
    for args in (
        ("migrate",),
        ("tenant", "create", "Acme"),
        ("tenant", "list"),
        ("audit", "verify"),
        ("serve",),
    ):
        done = _consent(*args, env=env)
        assert done.returncode == 1, (args, done.stderr)
        assert "Traceback" not in done.stderr, args
        command = " ".join(args[:2])  # the whole command (`consent tenant create`)
        assert f"consent {command}: cannot reach the database" in done.stderr, args


def test_keys_rotate_with_the_database_down_changes_no_key(tmp_path: Path) -> None:
    """A rotation that cannot reach the database must not make a new key-encryption key current
    (the data keys would stay under the old one while the files say otherwise)."""
    env = _env(
        CONSENT_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/consent",
        CONSENT_DATA_DIR=str(tmp_path),
    )
    keys = tmp_path / "keys"
    first = _consent("keys", "rotate", env=env)  # development, no keys yet: none are made
    assert first.returncode == 1, first.stderr
    assert not keys.exists(), "keys generated for a database that could not be asked"
    load_keyring(keys)
    before = sorted(p.name for p in keys.iterdir())
    done = _consent("keys", "rotate", env=env)
    assert done.returncode == 1, done.stderr
    assert "consent keys rotate: cannot reach the database" in done.stderr
    assert "is current" not in done.stdout + done.stderr
    assert sorted(p.name for p in keys.iterdir()) == before


@pytest.mark.parametrize("args", [("--port", "70000"), ("--port", "0"), ("--workers", "0")])
def test_serve_refuses_an_impossible_port_or_worker_count(
    tmp_path: Path, args: tuple[str, str]
) -> None:
    """A usage error (exit 2, naming the option), not a traceback or a silent default."""
    env = _env(
        CONSENT_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/consent",
        CONSENT_DATA_DIR=str(tmp_path),
    )
    done = _consent("serve", *args, env=env)
    assert done.returncode == 2, done.stderr
    assert args[0] in done.stderr
    assert "Traceback" not in done.stderr


def test_keys_rotate_without_keys_says_what_is_missing_and_nothing_more(tmp_path: Path) -> None:
    """No key-encryption key in the keys directory: nothing was started, so the message must
    not speak of keys "after this one" not being re-wrapped."""
    env = _env(
        CONSENT_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/consent",
        CONSENT_DATA_DIR=str(tmp_path),
        CONSENT_KEYS_DIR=str(tmp_path / "empty"),
    )
    (tmp_path / "empty").mkdir()
    done = _consent("keys", "rotate", "--rewrap-only", env=env)
    assert done.returncode == 1, done.stderr
    assert "consent keys rotate: no key-encryption key in " in done.stderr
    assert "re-wrapped" not in done.stderr


async def test_keys_rotate_progress_into_a_log_is_one_line(
    catalog: Any, db: Any, keyring: Any, keys_dir: Path, database_dsn: str, tmp_path: Path
) -> None:
    """Under cron stderr is a file: the re-wrap progress is its final count on a line of its
    own, not a redraw per batch joined by carriage returns."""
    for i in range(3):
        await catalog.consent(
            identifier={"type": "customer_id", "value": f"R-{i}"},
            choices=[{"purpose": "ads", "choice": "granted"}],
        )
    keys = tmp_path / "keys"
    shutil.copytree(keys_dir, keys)  # the session's key ring stays as it is
    env = _env(
        CONSENT_DATABASE_URL=database_dsn,
        CONSENT_DATA_DIR=str(tmp_path / "data"),
        CONSENT_KEYS_DIR=str(keys),
    )
    rotated = subprocess.run(  # bytes: text mode would turn each "\r" into a newline
        [sys.executable, "-m", "consent", "keys", "rotate", "--batch-size", "1"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    err = rotated.stderr.decode()
    assert rotated.returncode == 0, err
    assert "\r" not in err
    assert "re-wrapped: 3/3\n" in err  # progress: stderr; the result: stdout
    assert "3 data keys re-wrapped under " in rotated.stdout.decode()
