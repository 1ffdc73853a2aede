"""Engines and sessions, created on first use (never at import time)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from procedures_db.models import Base
from procedures_db.settings import get_settings


def _ensure_sqlite_dir(url: str) -> None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != "sqlite:///:memory:":
        Path(url[len(prefix) :]).parent.mkdir(parents=True, exist_ok=True)


def get_engine(url: str | None = None) -> Engine:
    """The engine for `url` (default: the settings' database), one per URL per process."""
    return _engine_for(url or get_settings().database_url)


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    # Cached on the resolved URL, so a settings change (tests) gets its own engine.
    _ensure_sqlite_dir(url)
    if not url.startswith("sqlite"):
        return create_engine(url, future=True, pool_pre_ping=True)
    if url in ("sqlite://", "sqlite:///:memory:"):
        engine = create_engine(url, future=True)
    else:
        # A SQLite file: pooled connections (SQLAlchemy 1.4 opens a new one, and so runs the
        # pragmas again, for every session otherwise: measurable per chat message, see
        # BENCHMARKS.md "Cost per message"). Worker threads take turns on them.
        engine = create_engine(
            url,
            future=True,
            poolclass=QueuePool,
            connect_args={"check_same_thread": False},
        )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def create_schema(engine: Engine) -> None:
    """Bring the schema up to date with Alembic (creates tables on an empty database)."""
    from procedures_db.migrate import upgrade

    upgrade(engine)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    factory = sessionmaker(bind=engine or get_engine(), future=True, expire_on_commit=False)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


__all__ = ["Base", "create_schema", "get_engine", "session_scope"]
