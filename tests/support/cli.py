"""Running the `consent` command as a user does: its own process, in the repository."""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import sys
from pathlib import Path

__all__ = [
    "ROOT",
    "as_an_unprivileged_user",
    "cli_env",
    "free_port",
    "process_running",
    "run_consent",
]

ROOT = Path(__file__).resolve().parents[2]
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


def cli_env(
    database_dsn: str | None = None,
    keys_dir: Path | None = None,
    data_dir: Path | None = None,
    **extra: str,
) -> dict[str, str]:
    """This process's environment without its CONSENT_* settings, pointed at the test's
    database, keys and data directory (those given), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENT_")}
    if database_dsn is not None:
        env["CONSENT_DATABASE_URL"] = database_dsn
    if keys_dir is not None:
        env["CONSENT_KEYS_DIR"] = str(keys_dir)
    if data_dir is not None:
        env["CONSENT_DATA_DIR"] = str(data_dir)
    return {**env, **extra}


def run_consent(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m consent ARGS`, its output captured as text; never raises on its exit status."""
    return subprocess.run(
        [sys.executable, "-m", "consent", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def as_an_unprivileged_user() -> None:
    """A `preexec_fn`: in the child, file permissions apply even when the tests run as root
    (which may read and write any file): drop the capabilities that override them. Only for
    children that touch no file of another user (the embedded PostgreSQL's socket is one)."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def process_running(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
