"""`consent serve`: granian workers, SIGHUP as a checked policy reload, a port that must be
free, and workers that stop with their main process.

granian's own SIGHUP handler respawns every worker. A worker loads the policy when it starts,
so with a broken policy on disk the new workers crash, granian sees a crash loop and the whole
service exits: the opposite of "a broken policy is refused while the old one keeps serving".
Here SIGHUP to the main process does what `consent policy reload` does instead: check the
bundle in CONSENT_POLICY_DIR, then ask every running worker (through PostgreSQL NOTIFY) to
load it. A worker that cannot load it keeps serving its current policy. No worker restarts.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import gc
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import Any, Final

import structlog

from consent.config import Settings
from consent.logging import GRANIAN_LOG_CONFIG

__all__ = [
    "INTEGRATOR_ELSEWHERE_ENV",
    "AddressInUse",
    "AddressUnusable",
    "IntegratorProcess",
    "MainProcessGone",
    "MainProcessWatch",
    "check_address_free",
    "die_with_main_process",
    "follow_main_process",
    "freeze_startup_heap",
    "serve",
]

_log = structlog.get_logger("consent.serve")
# Set by `serve` for its workers (not a CONSENT_ setting: the configuration never reads it).
_MAIN_PID_ENV: Final = "_CONSENT_SERVE_MAIN_PID"
# Set by `serve` for its workers when its own integrator process integrates the audit logs.
INTEGRATOR_ELSEWHERE_ENV: Final = "_CONSENT_SERVE_INTEGRATOR_PROCESS"
_PR_SET_PDEATHSIG: Final = 1
_MINUTE: Final = 60.0
_DEATH_SIGNAL: Final = signal.SIGUSR1


class MainProcessGone(Exception):
    """The main process of `consent serve` died while this worker was starting."""


class MainProcessWatch:
    """In a worker of `consent serve` (on Linux): stop when the main process dies.

    Killed outright (SIGKILL, the OOM killer), granian's main process cannot stop its workers;
    they would go on serving on the shared socket, integrating and signing audit logs, and
    holding the embedded PostgreSQL. The kernel tells each worker instead
    (PR_SET_PDEATHSIG), with SIGUSR1 rather than SIGTERM: granian's SIGTERM handler blocks,
    holding the GIL, until the worker serves, so a SIGTERM during start-up froze the worker
    for good (its start-up could never finish). So:

    - the main process dies while the worker starts: the start-up fails at its end
      (`started`, an on_startup hook), the app's lifespan releases what it holds (the embedded
      PostgreSQL among it) and the worker exits 1;
    - it dies once the worker serves: the worker sends itself SIGTERM, which granian turns
      into a graceful stop. "Serves" is counted from `_SETTLE_SECONDS` after start-up, once
      granian is surely past creating the worker that receives SIGTERM.
    """

    _SETTLE_SECONDS: Final = 1.0

    def __init__(self, main_pid: int) -> None:
        self.main_pid = main_pid
        self.serving = False

    def install(self) -> bool:
        """Ask for the signal; False where Linux refuses (then nothing is watched)."""
        signal.signal(_DEATH_SIGNAL, self._on_signal)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(_DEATH_SIGNAL), 0, 0, 0) != 0:
            _log.warning("serve.parent_death_signal_unavailable", errno=ctypes.get_errno())
            return False
        return True

    def main_gone(self) -> bool:
        """Whether this worker has been handed to another parent (a dead main process's
        children are). The signal alone does not tell: Linux also sends it when the thread
        that forked the worker ends in a main process that lives on."""
        return os.getppid() != self.main_pid

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        if self.serving and self.main_gone():
            self._stop()

    async def started(self) -> None:
        """The app's last start-up step: fail if the main process has gone meanwhile."""
        if self.main_gone():
            _log.warning("serve.main_process_gone", during="start-up")
            raise MainProcessGone("the main process of `consent serve` has gone; not serving")
        asyncio.get_running_loop().call_later(self._SETTLE_SECONDS, self._settled)

    def _settled(self) -> None:
        self.serving = True
        if self.main_gone():
            self._stop()

    @staticmethod
    def _stop() -> None:
        _log.warning("serve.main_process_gone", during="serving")
        os.kill(os.getpid(), signal.SIGTERM)


async def freeze_startup_heap() -> None:
    """A served worker's start-up step: what start-up built (modules, routes, the policy and
    its engines, caches) leaves the garbage collector's view, so that the full collections
    load triggers walk only what requests create. Measured at 32 connections: decisions p99
    42 -> 25 ms, throughput unchanged (bench/RESULTS.md). Not for tests, which start many apps
    in one process: frozen objects are never collected."""
    gc.collect()
    gc.freeze()


def follow_main_process() -> MainProcessWatch | None:
    """The watch of this worker's main process, installed; None outside `consent serve`'s
    workers or where Linux offers no parent-death signal."""
    main = os.environ.get(_MAIN_PID_ENV)
    if not main or not sys.platform.startswith("linux"):
        return None
    watch = MainProcessWatch(int(main))
    return watch if watch.install() else None


class SignalReload:
    """Runs one checked policy reload per SIGHUP, in a thread of the main process (a signal
    handler must return at once); a SIGHUP that arrives during a reload is folded into one
    more reload after it, so the last bundle written is the one checked."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.main_pid = os.getpid()
        self._lock = threading.Lock()
        self._running = False
        self._again = False

    def install(self) -> None:
        signal.signal(signal.SIGHUP, self.on_signal)

    def on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        if os.getpid() != self.main_pid:  # a forked worker inherited the handler
            return
        with self._lock:
            if self._running:
                self._again = True
                return
            self._running = True
        threading.Thread(target=self._loop, name="policy-reload", daemon=True).start()

    def _loop(self) -> None:
        while True:
            asyncio.run(self.reload())
            with self._lock:
                if not self._again:
                    self._running = False
                    return
                self._again = False

    async def reload(self) -> None:
        from consent.decisions.engine import PolicyLoadError
        from consent.decisions.policy import reload_everywhere

        _log.info("policy.reload.signal")
        try:
            bundle, acks = await reload_everywhere(self.settings)
        except PolicyLoadError as exc:
            _log.error("policy.reload.refused", error=str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - reported; the service keeps serving
            _log.error("policy.reload.failed", error=type(exc).__name__)
            return
        _log.info(
            "policy.reload.requested",
            revision=bundle.revision,
            serving=sum(1 for a in acks if a.ok and a.revision == bundle.revision),
            refused=sum(1 for a in acks if not a.ok),
            answered=len(acks),
        )


class IntegratorProcess:
    """The audit integrator of `consent serve`, in a process of its own
    (`consent audit integrate --loop --wait-ready --sign-interval 1`) instead of inside every
    worker: integration (Merkle hashing, leaf and node writes, signing) no longer shares the
    event loop that answers requests, and one process integrates however many workers serve.
    While it catches up a backlog (300,000 leaves after a burst of batch decisions), decisions
    at two connections had p99 20-21 ms with it in the worker and 10-15 ms with it here; under
    steady load, on two cores, its CPU costs about the same either way (bench/RESULTS.md).

    It stops with the service (SIGTERM, then SIGKILL after the grace period), dies with the
    main process (the kernel's parent-death signal), and is started again when it exits on its
    own, at most `MAX_RESTARTS` times a minute (then it is given up, and the log says so)."""

    MAX_RESTARTS: Final = 5

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = False
        self._restarts: list[float] = []
        self._previous_sigchld: Any = signal.SIG_DFL
        self._main_pid = os.getpid()

    def start(self) -> None:
        self._previous_sigchld = signal.signal(signal.SIGCHLD, self._on_child)
        self._spawn()

    def _spawn(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "consent",
                "audit",
                "integrate",
                "--loop",
                "--wait-ready",
                "--sign-interval",
                "1",
            ],
        )
        _log.info("audit.integrator_process.started", pid=self.proc.pid)

    def _on_child(self, _signum: int, _frame: FrameType | None) -> None:
        if os.getpid() != self._main_pid:  # a forked worker inherited the handler
            return
        proc = self.proc
        if proc is None or self._stopping or proc.poll() is None:
            return
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < _MINUTE] + [now]
        if len(self._restarts) > self.MAX_RESTARTS:
            _log.error("audit.integrator_process.given_up", exit_code=proc.returncode)
            self.proc = None
            return
        _log.warning("audit.integrator_process.exited", exit_code=proc.returncode)
        self._spawn()

    def stopping(self) -> None:
        """The service is stopping: the integrator's exit from now on is no crash."""
        self._stopping = True

    def stop(self) -> None:
        self._stopping = True
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=self.grace_seconds)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._previous_sigchld is not None:
            signal.signal(signal.SIGCHLD, self._previous_sigchld)


def die_with_main_process() -> bool:
    """In `consent serve`'s integrator process: ask the kernel for SIGTERM (a graceful stop of
    the loop) when the main process dies, so that it never integrates on with nothing to
    supervise it. False when the main process is gone already; True outside `consent serve`
    or where Linux offers no parent-death signal (nothing to watch)."""
    main = os.environ.get(_MAIN_PID_ENV)
    if not main or not sys.platform.startswith("linux"):
        return True
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        _log.warning("serve.parent_death_signal_unavailable", errno=ctypes.get_errno())
        return True
    return os.getppid() == int(main)


class AddressInUse(Exception):
    """Another process listens on the address."""


class AddressUnusable(Exception):
    """The address cannot be listened on here: a host name that does not resolve, an address
    of another machine, a port this user may not open."""


def check_address_free(host: str, port: int) -> None:
    """Raise AddressInUse if something already listens on (host, port), AddressUnusable if
    this machine cannot listen there at all.

    granian's workers bind with SO_REUSEPORT, so a second `consent serve` on a port in use
    would start without complaint and the kernel would share the connections between the two
    services (perhaps on two different databases). A bind without that option fails on a port
    that a socket listens on.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR, as servers set it: connections of a previous run lingering in
        # TIME_WAIT do not count; a listening socket still does (Linux).
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise AddressInUse(f"{host}:{port} is already in use") from None
            reason = exc.strerror or type(exc).__name__
            raise AddressUnusable(f"{host}:{port} ({reason})") from None


def _stop_restarts_on_interrupt(integrator: IntegratorProcess) -> None:
    """A granian start-up hook: SIGINT or SIGTERM to the main process (Ctrl-C reaches the
    whole process group, the integrator included) first tells the integrator's supervisor
    that the service is stopping, so that the integrator's exit is not taken for a crash."""
    main_pid = os.getpid()
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)

        def on_signal(number: int, frame: FrameType | None, previous: Any = previous) -> None:
            if os.getpid() == main_pid:
                integrator.stopping()
            if callable(previous):
                previous(number, frame)

        signal.signal(signum, on_signal)


def serve(settings: Settings, host: str, port: int, workers: int) -> None:
    """Run granian (raises AddressInUse first if the address is taken)."""
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels
    from granian.server import Server

    check_address_free(host, port)
    server = Server(
        "consent.asgi:app",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.uvloop,
        # granian's own log: warnings and errors only, e.g. the traceback of a worker that
        # failed to start (without it the service exits with no word of why).
        log_enabled=True,
        log_level=LogLevels.warning,
        log_dictconfig=GRANIAN_LOG_CONFIG if settings.log_json else None,
        workers_kill_timeout=math.ceil(settings.shutdown_grace_seconds),
    )
    # granian installs its signal handlers at startup, just before this hook runs and before
    # any worker is forked: replace its SIGHUP (respawn every worker) with the checked reload.
    server.on_startup(SignalReload(settings).install)
    os.environ[_MAIN_PID_ENV] = str(os.getpid())  # workers: see follow_main_process
    integrator = None
    if settings.audit_integrator:
        os.environ[INTEGRATOR_ELSEWHERE_ENV] = "1"  # workers leave integration to it
        integrator = IntegratorProcess(settings.shutdown_grace_seconds)
        integrator.start()
        watched = integrator
        server.on_startup(lambda: _stop_restarts_on_interrupt(watched))
    try:
        server.serve()
    finally:
        if integrator is not None:
            integrator.stop()
