"""The hand-over in the Zalo and Messenger channels (inside each Rasa replica).

- `held_turn`: before the bot sees a citizen's message, the shared hand-over store is asked
  whether staff hold the conversation; if so the message is kept for them and the bot stays
  silent. The store is the procedures database, so every replica sees the same hold and it
  survives restarts.
- `HoldCache`: on SQLite, which conversations are held is read again only when the database
  changed (`PRAGMA data_version`), so most messages skip the query.
- `StaffOutbox`: staff replies (and the hand-over notices) wait in the store; each replica
  polls for its channel's, takes each message with a conditional update (one replica sends it)
  and sends it through the channel's own API client (retries, splitting, token refresh),
  unless the platform's reply window has closed.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url

from bot.production import rasa_patches
from procedures_db import handover
from procedures_db.db import get_engine
from procedures_db.handover_models import Handover
from procedures_db.settings import get_settings

logger = logging.getLogger(__name__)

STORE_TIMEOUT_S = 2.0
POLL_INTERVAL_S = 0.5
STOP_TIMEOUT_S = 5.0
SendText = Callable[[str, str], Awaitable[bool]]


def _store_configured() -> bool:
    return handover.store_available(get_settings().database_url)


async def _call(function, *args, **kwargs):
    kwargs.setdefault("engine", get_engine())
    return await asyncio.wait_for(asyncio.to_thread(function, *args, **kwargs), STORE_TIMEOUT_S)


class HoldCache:
    """The senders staff hold, for a SQLite hand-over store: read again only when the database
    changed since the last read.

    `PRAGMA data_version` on the cache's own connection (which never writes) changes whenever
    any other connection commits: the action server asking for a person, the web server's staff
    actions, this process's own pooled connections. It costs microseconds; the query it spares
    (a pooled connection in a worker thread) was most of the hand-over check. `fresh` runs in
    the event loop and never waits (a busy database or a reload under way: not fresh); then,
    and on any error, the caller asks the store as before."""

    HELD_SQL = str(
        select(Handover.sender)
        .where(Handover.status.in_(handover.HELD))
        .compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    )

    def __init__(self, path: str) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._version: int | None = None
        self._held: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def _data_version(self) -> int:
        if self._connection is None:
            self._connection = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=0
            )
        return self._connection.execute("PRAGMA data_version").fetchone()[0]

    def fresh(self) -> bool:
        """Whether the held senders read last are still the database's (no commit since)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            return self._version is not None and self._data_version() == self._version
        except sqlite3.Error:
            self.close()
            return False
        finally:
            self._lock.release()

    def reload(self) -> bool:
        """Read the held senders again (in a worker thread: a query); False on error."""
        with self._lock:
            try:
                version = self._data_version()  # before the read: a commit in between is seen
                rows = self._connection.execute(self.HELD_SQL).fetchall()
            except sqlite3.Error:
                self.close()
                return False
            self._held = frozenset(row[0] for row in rows)
            self._version = version
            return True

    def held(self, sender: str) -> bool:
        return sender in self._held

    def invalidate(self) -> None:
        self._version = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection, self._version = None, None


_CACHES: dict[str, HoldCache] = {}


def hold_cache(database_url: str) -> HoldCache | None:
    """The cache for a SQLite file store; None for PostgreSQL (asked on every message)."""
    if not rasa_patches.enabled("holds"):
        return None
    cache = _CACHES.get(database_url)
    if cache is None:
        url = make_url(database_url)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        cache = _CACHES[database_url] = HoldCache(url.database)
    return cache


async def held_turn(sender: str, text: str) -> handover.CitizenTurn | None:
    """The hold's answer when staff hold the conversation; None when the bot answers (also
    when the store fails: a bot answer beats silence; logged)."""
    if not _store_configured():
        return None
    try:
        cache = hold_cache(get_settings().database_url)
        if cache is not None:
            if not cache.fresh():
                await asyncio.wait_for(asyncio.to_thread(cache.reload), STORE_TIMEOUT_S)
            if cache.fresh() and not cache.held(sender):
                return None
        turn = await _call(handover.record_citizen_message, sender, text, now=datetime.utcnow())
        if turn is not None and cache is not None:
            cache.invalidate()  # our own write (seen by data_version too)
        return turn
    except Exception:
        logger.exception("Hand-over store unavailable; the bot answers %s", sender)
        return None


class StaffOutbox:
    """Sends staff replies for one channel; start() with the server, stop() before it stops."""

    def __init__(self, channel: str, send_text: SendText, interval_s: float = POLL_INTERVAL_S):
        self.channel = channel
        self.send_text = send_text
        self.interval_s = interval_s
        self._task: asyncio.Task | None = None
        self._failing = False
        self._stopping = False

    def start(self) -> None:
        if self._task is None and _store_configured():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is None:
            return
        # The flag as well as the cancel: Python 3.10's wait_for can swallow a cancellation that
        # arrives as its inner call finishes, and the loop would then run on (a hung shutdown).
        self._stopping = True
        self._task.cancel()
        await asyncio.wait({self._task}, timeout=STOP_TIMEOUT_S)
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.send_pending()
                if self._failing:
                    logger.warning("%s outbox: hand-over store is back", self.channel)
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not self._failing:
                    logger.error("%s outbox: hand-over store unavailable: %s", self.channel, error)
                self._failing = True
            await asyncio.sleep(self.interval_s)

    async def send_pending(self) -> int:
        """Send what waits for this channel; returns how many messages were handled."""
        messages = await _call(handover.take_outgoing, self.channel, now=datetime.utcnow())
        for message in messages:
            await self._deliver(message)
        return len(messages)

    async def _deliver(self, message: handover.Message) -> None:
        now = datetime.utcnow()
        open_ = await _call(handover.window_still_open, message.sender, now=now)
        if not open_:
            outcome, note = handover.WINDOW_CLOSED, handover.window_note(self.channel)
        elif await self.send_text(message.sender, message.text):
            outcome, note = handover.SENT, None
        else:
            outcome = handover.FAILED
            note = "Nền tảng không nhận tin (đã thử lại nhiều lần); xem nhật ký Rasa."
        await _call(handover.mark_delivery, message.id, outcome, note)
