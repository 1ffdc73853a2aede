"""Tracker and lock stores that survive their database being down at start or during work, and
keep no personal data.

Every event is stored with its text masked (`procedures_db.privacy.mask_value`: ID numbers, phone
numbers, e-mail addresses), whatever channel it came from. The turn being handled still sees the
original text (NLU, a typed pick, a procedure code); only what reaches the database is masked.

Rasa's own SQLTrackerStore, when PostgreSQL is down, logs "Could not create tables" at start and
then, wrapped in Rasa's FailSafeTrackerStore, answers from an empty in-memory conversation. These
subclasses retry with backoff, log each outage once when it starts and once when it ends (naming
the store, never the password), reconnect by themselves, and mark the current turn failed so the
guarded channel answers with an apology.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from rasa.core.lock_store import RedisLockStore
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
from rasa.shared.core.events import Event, SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY
from rasa.utils.endpoints import EndpointConfig
from redis.exceptions import RedisError

from bot.production import rasa_patches
from bot.production.guard import STORE_FAILURE, record_failure, turn_failed
from procedures_db.privacy import mask_value

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Waits between attempts within one message: short, so the apology still comes within 2 s.
RETRY_DELAYS_S = (0.1, 0.4)


class Outage:
    """Logs when a dependency becomes unavailable and when it is back, not on every message."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.since: float | None = None

    def failed(self, error: Exception) -> None:
        record_failure(STORE_FAILURE)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if self.since is None:
            self.since = time.monotonic()
            logger.error(
                "%s unavailable (%s): citizens get an apology until it is back; "
                "retrying on every message",
                self.name,
                reason,
            )
        else:
            logger.debug("%s still unavailable: %s", self.name, reason)

    def succeeded(self) -> None:
        if self.since is not None:
            logger.warning("%s is back after %.0f s", self.name, time.monotonic() - self.since)
            self.since = None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Write-ahead log, synced at checkpoints rather than at every commit: a commit costs no
    # fsync, so no disk wait inside Rasa's event loop per message (BENCHMARKS.md, "Cost per
    # message"). The database stays consistent on a crash; a power cut may lose the last turns.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def tracker_engine(url: sa.engine.URL) -> sa.engine.Engine:
    """The tracker store's engine: pooled connections, each store keeping its own.

    PostgreSQL: Rasa's pool settings with pre-ping (without it every pooled connection is dead
    after a database restart). A SQLite file: one kept connection (SQLAlchemy 1.4 opens a new one
    for every session otherwise) in WAL mode; Rasa uses it from its event loop thread only.
    """
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return sa.create_engine(url, pool_pre_ping=True, **create_engine_kwargs(url))
    if not rasa_patches.enabled("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(
        url,
        poolclass=sa.pool.QueuePool,
        pool_size=1,
        max_overflow=4,
        connect_args={"check_same_thread": False},
    )
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class StoredCounts:
    """How many events of its current session the store held when a tracker was retrieved, kept
    for that tracker object's next save only (Rasa counts them again with a query at every save;
    the lock store keeps other turns of the conversation out in between)."""

    LIMIT = 10_000  # retrieves never followed by a save (Rasa's HTTP API) must not pile up

    def __init__(self) -> None:
        self._counts: dict[str, tuple[weakref.ref, int]] = {}

    def note(self, tracker: DialogueStateTracker, count: int) -> None:
        if not rasa_patches.enabled("save"):
            return
        if len(self._counts) >= self.LIMIT:
            self._counts.clear()
        self._counts[tracker.sender_id] = (weakref.ref(tracker), count)

    def take(self, tracker: DialogueStateTracker) -> int | None:
        reference, count = self._counts.pop(tracker.sender_id, (None, None))
        return count if reference is not None and reference() is tracker else None


class EventStatements:
    """Rasa's `SQLTrackerStore._event_query` as Core statements built once per store, selecting
    only the `data` column (all `_retrieve` reads), with the sender as a bound parameter.

    Rasa builds the ORM query (a subquery, filters, ORM entities for every column) again on every
    turn; these are compiled once (SQLAlchemy's statement cache) and prepared once per
    connection (the driver's). Same rows, same order: the events after the latest session start
    (all of them when there is none), or all sessions' events, by id."""

    def __init__(self, table: sa.Table) -> None:
        sender = sa.bindparam("sender_id")
        session_start = (
            sa.select(sa.func.max(table.c.timestamp).label("session_start"))
            .where(table.c.sender_id == sender, table.c.type_name == SessionStarted.type_name)
            .subquery()
        )
        everything = sa.select(table.c.data).where(table.c.sender_id == sender)
        self.all_sessions = everything.order_by(table.c.id)
        latest = everything.where(
            sa.or_(
                table.c.timestamp >= session_start.c.session_start,
                session_start.c.session_start.is_(None),
            )
        ).order_by(table.c.id)
        self.latest_session = latest
        self.latest_session_count = sa.select(sa.func.count()).select_from(latest.subquery())

    def data(self, session: Any, sender_id: str, all_sessions: bool) -> list[str]:
        """The events' stored JSON, in order."""
        statement = self.all_sessions if all_sessions else self.latest_session
        return session.execute(statement, {"sender_id": sender_id}).scalars().all()

    def count(self, session: Any, sender_id: str) -> int:
        """How many events of the latest session are stored."""
        return session.execute(self.latest_session_count, {"sender_id": sender_id}).scalar_one()


class ResilientSQLTrackerStore(SQLTrackerStore):
    """SQLTrackerStore with pooled connections (`tracker_engine`), retries, lazy schema
    creation, outage logging, personal data masked before it is written and a cheaper save."""

    def __init__(self, domain: Any = None, **kwargs: Any) -> None:
        # Every Rasa server of this project creates this store: the place to patch Rasa.
        rasa_patches.install()
        super().__init__(domain=domain, **kwargs)
        url = self.engine.url
        self.engine.dispose()
        self.engine = tracker_engine(url)
        self.sessionmaker = sa.orm.sessionmaker(bind=self.engine)
        # No user name in the text: "user@host" would be masked as an e-mail address in the logs.
        self.outage = Outage(
            f"Tracker store {url.get_backend_name()} at {url.host}:{url.port}/{url.database}"
        )
        self._stored_counts = StoredCounts()
        self._statements = EventStatements(self.SQLEvent.__table__)
        self._schema_ready = False
        try:
            self._ensure_schema()
        except sa.exc.SQLAlchemyError as error:
            self.outage.failed(error)

    def _ensure_schema(self) -> None:
        if not self._schema_ready:
            self.Base.metadata.create_all(self.engine)
            self._schema_ready = True

    async def _with_retries(self, operation: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            try:
                self._ensure_schema()
                result = await operation()
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as error:
                if attempt == len(RETRY_DELAYS_S) or turn_failed(STORE_FAILURE):
                    self.outage.failed(error)
                    raise
                await asyncio.sleep(RETRY_DELAYS_S[attempt])
                attempt += 1
            else:
                self.outage.succeeded()
                return result

    def _additional_events(self, session: Any, tracker: Any) -> Iterator[Event]:
        for event in super()._additional_events(session, tracker):
            yield Event.from_parameters(mask_value(event.as_dict()))

    async def _retrieve(self, sender_id: str, fetch_events_from_all_sessions: bool) -> Any:
        """Rasa's `_retrieve`, noting how many events of the current session are stored; the
        events read with a statement built once (`EventStatements`)."""
        with self.session_scope() as session:
            if rasa_patches.enabled("statements"):
                rows = self._statements.data(session, sender_id, fetch_events_from_all_sessions)
            else:
                query = self._event_query(session, sender_id, fetch_events_from_all_sessions)
                rows = [row.data for row in query.all()]
            events = [json.loads(data) for data in rows]
        if not (self.domain and events):
            return None
        tracker = DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
        if not fetch_events_from_all_sessions:
            self._stored_counts.note(tracker, len(events))
        return tracker

    def _save(self, tracker: DialogueStateTracker) -> None:
        """Rasa's `save` (events the store does not hold yet, appended), with each event's data
        masked once and the rows inserted in one statement. The count of stored events comes
        from this turn's retrieve when the same tracker is saved, else from the database."""
        with self.session_scope() as session:
            stored = self._stored_counts.take(tracker)
            if stored is None and rasa_patches.enabled("statements"):
                stored = self._statements.count(session, tracker.sender_id)
            elif stored is None:
                stored = self._event_query(session, tracker.sender_id, False).count()
            rows = []
            for event in itertools.islice(tracker.events, stored, len(tracker.events)):
                data = mask_value(event.as_dict())
                rows.append(
                    {
                        "sender_id": tracker.sender_id,
                        "type_name": event.type_name,
                        "timestamp": data.get("timestamp"),
                        "intent_name": data.get("parse_data", {})
                        .get("intent", {})
                        .get(INTENT_NAME_KEY),
                        "action_name": data.get("name"),
                        "data": json.dumps(data),
                    }
                )
            if rows:
                session.execute(sa.insert(self.SQLEvent.__table__), rows)
            session.commit()

    async def retrieve(self, sender_id: str) -> Any:
        parent = super()
        return await self._with_retries(lambda: parent.retrieve(sender_id))

    async def retrieve_full_tracker(self, sender_id: str) -> Any:
        parent = super()
        return await self._with_retries(lambda: parent.retrieve_full_tracker(sender_id))

    async def save(self, tracker: Any) -> None:
        if not rasa_patches.enabled("save"):
            parent = super()
            await self._with_retries(lambda: parent.save(tracker))
            return
        await self.stream_events(tracker)

        async def save_once() -> None:
            self._save(tracker)

        await self._with_retries(save_once)

    async def keys(self) -> Any:
        parent = super()
        return await self._with_retries(parent.keys)


class ResilientRedisLockStore(RedisLockStore):
    """RedisLockStore that retries once (redis-py reconnects) and logs outages once."""

    def __init__(self, endpoint_config: EndpointConfig) -> None:
        super().__init__(host=endpoint_config.url, **endpoint_config.kwargs)
        kwargs = endpoint_config.kwargs
        where = f"{endpoint_config.url}:{kwargs.get('port', 6379)}/{kwargs.get('db', 1)}"
        self.outage = Outage(f"Lock store redis://{where}")

    def _with_retry(self, operation: Callable[[], T]) -> T:
        try:
            result = operation()
        except RedisError:
            time.sleep(RETRY_DELAYS_S[0])  # Rasa calls the lock store synchronously
            try:
                result = operation()
            except RedisError as error:
                self.outage.failed(error)
                raise
        self.outage.succeeded()
        return result

    def get_lock(self, conversation_id: str) -> Any:
        parent = super()
        return self._with_retry(lambda: parent.get_lock(conversation_id))

    def delete_lock(self, conversation_id: str) -> None:
        parent = super()
        self._with_retry(lambda: parent.delete_lock(conversation_id))

    def save_lock(self, lock: Any) -> None:
        parent = super()
        self._with_retry(lambda: parent.save_lock(lock))
