"""PostgreSQL notifications while a process serves: one connection of the pool listens on every
channel the process follows (a policy reload, an API key's revocation), and is taken again a
second after it is lost.

A notification sent while no connection listened is lost: each channel's `listening` callback
runs every time a connection starts listening, told whether it is again (after a lost
connection), so that the channel can catch up (reload the policy, forget every cached key).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final

import structlog

from consent.db.database import Database
from consent.db.grouped import DB_UNAVAILABLE

__all__ = ["Listener"]

_RETRY_SECONDS: Final = 1.0
_log = structlog.get_logger(__name__)

Notified = Callable[[str], None]
"""Called with a notification's payload."""
Listening = Callable[[bool], None]
"""Called when a connection starts listening: True when again, after a lost one."""


class Listener:
    """Follows channels (`on`, before `start`) until `aclose`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._channels: dict[str, tuple[Notified, Listening | None]] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        """Set while a connection listens on every channel."""

    def on(self, channel: str, notified: Notified, listening: Listening | None = None) -> None:
        """Follow `channel`: `notified(payload)` on each of its notifications."""
        if self._task is not None:
            raise RuntimeError("a listener's channels are set before it starts")
        self._channels[channel] = (notified, listening)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="notification-listener"
            )

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        again = False
        while True:
            try:
                await self._listen_once(again)
            except DB_UNAVAILABLE as exc:
                _log.debug("db.listener_disconnected", error=type(exc).__name__)
            self.listening.clear()
            again = True
            await asyncio.sleep(_RETRY_SECONDS)

    async def _listen_once(self, again: bool) -> None:
        """Hold one connection listening until it closes."""
        closed = asyncio.Event()

        def on_close(_conn: object) -> None:
            closed.set()

        def callback(notified: Notified) -> Callable[[object, int, str, object], None]:
            return lambda _conn, _pid, _channel, payload: notified(str(payload))

        callbacks = {channel: callback(n) for channel, (n, _) in self._channels.items()}
        async with self.db.pool.acquire() as conn:
            conn.add_termination_listener(on_close)
            try:
                for channel, on_notify in callbacks.items():
                    await conn.add_listener(channel, on_notify)
                for _, listening in self._channels.values():
                    if listening is not None:
                        listening(again)
                self.listening.set()
                while not closed.is_set() and not conn.is_closed():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(_RETRY_SECONDS):
                            await closed.wait()
            finally:
                self.listening.clear()
                if not conn.is_closed():
                    for channel, on_notify in callbacks.items():
                        await conn.remove_listener(channel, on_notify)
                conn.remove_termination_listener(on_close)
