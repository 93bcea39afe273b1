"""The Dockerfile as a reviewer reads it, and its health check as Docker runs it (no Docker
engine is needed for either)."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def _instructions() -> list[str]:
    """Each instruction of the Dockerfile on one line (continuations joined, comments out)."""
    lines = [
        line
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if not line.lstrip().startswith("#")
    ]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [" ".join(line.split()) for line in joined.splitlines() if line.strip()]


def _runtime_stage() -> list[str]:
    instructions = _instructions()
    last_from = max(i for i, line in enumerate(instructions) if line.startswith("FROM "))
    return instructions[last_from:]


class _Live(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health/live" else 404)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def live_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Live)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _health_check(port: int) -> int:
    (check,) = [line for line in _runtime_stage() if line.startswith("HEALTHCHECK ")]
    command = check.split(" CMD ", 1)[1]
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "CONSENT_PORT": str(port),
    }
    return subprocess.run(
        ["/bin/sh", "-c", command], env=env, timeout=30, check=False, capture_output=True
    ).returncode


def test_the_health_check_asks_the_port_the_service_listens_on(live_port: int) -> None:
    """It asked port 8000 whatever CONSENT_PORT said: a container serving on another port was
    marked unhealthy (and restarted by an orchestrator) for good."""
    assert _health_check(live_port) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert _health_check(closed) != 0


def test_a_change_to_the_code_reuses_the_installed_dependencies() -> None:
    """The runtime image installed the wheel with its dependencies in one layer, so every
    change of the code downloaded and installed every dependency again. They are installed
    first, from the dependency list alone; the wheel after them, without dependencies."""
    stage = _runtime_stage()
    wheel_copy = next(i for i, line in enumerate(stage) if "/dist/" in line)
    requirements = next(i for i, line in enumerate(stage) if "pip install" in line)
    assert requirements < wheel_copy
    assert "-r " in stage[requirements]
    wheel_install = next(
        line for line in stage[wheel_copy:] if "pip install" in line and ".whl" in line
    )
    assert "--no-deps" in wheel_install


def test_the_service_runs_unprivileged_with_an_init_and_no_secrets() -> None:
    stage = _runtime_stage()
    users = [line for line in stage if line.startswith("USER ")]
    assert users, "runs as root"
    assert users[-1].split()[1].split(":")[0] not in {"0", "root"}
    entry = next(line for line in stage if line.startswith("ENTRYPOINT "))
    assert "tini" in entry
    for line in _instructions():
        if line.startswith(("ENV ", "ARG ")):
            assert "KEK=" not in line
            assert "DATABASE_URL=" not in line
        if line.startswith(("COPY ", "ADD ")):
            assert ".consent" not in line
            assert "secrets" not in line


def _ignored() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def test_the_build_context_sends_no_keys_database_or_history() -> None:
    """`docker build .` sends the context to the engine (a remote one, a CI builder): the
    development keys and embedded database (.consent/), secrets/, .venv and .git stay out."""
    ignored = _ignored()
    for private in (".consent", "secrets", ".venv", ".git"):
        assert private in ignored, private
    copied = [
        line.split()[1]
        for line in _instructions()
        if line.startswith("COPY ") and "--from=" not in line
    ]
    assert copied  # pyproject.toml, README.md, consent, migrations, policies
    for source in copied:
        assert source.strip("./") not in ignored, source
        assert (ROOT / source).exists(), source
