"""scripts/retention.py against tracker tables written by Rasa's own SQLTrackerStore."""

from __future__ import annotations

import os
import time
import uuid

import pytest
import sqlalchemy as sa

from scripts.prod import ensure_postgres_database
from scripts.retention import delete_old_conversations, main
from tests.staff_support import sql_tracker_store

DAY = 86_400
NOW = time.time()


async def _save_conversations(url: str, ages_in_days: dict[str, list[float]]) -> None:
    """One conversation per sender, one user message per age (days before NOW)."""
    from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    store = sql_tracker_store(url)
    for sender, ages in ages_in_days.items():
        events = []
        for age in sorted(ages, reverse=True):
            at = NOW - age * DAY
            events += [
                UserUttered("lệ phí cấp hộ chiếu", timestamp=at),
                BotUttered("Lệ phí ...", timestamp=at + 1),
                ActionExecuted("action_listen", timestamp=at + 2),
            ]
        await store.save(DialogueStateTracker.from_events(sender, events))
    store.engine.dispose()


def _senders(url: str) -> set[str]:
    engine = sa.create_engine(url, future=True)
    with engine.connect() as connection:
        found = set(connection.execute(sa.text("SELECT DISTINCT sender_id FROM events")).scalars())
    engine.dispose()
    return found


async def _check_retention(url: str) -> None:
    await _save_conversations(
        url,
        {
            "old": [400, 200],
            "resumed": [400, 3],  # started long ago, active recently: kept whole
            "recent": [1],
            "edge": [29.9],
        },
    )
    dry = delete_old_conversations(url, 30, now=NOW, dry_run=True)
    assert (dry.conversations, dry.events) == (1, 6)
    assert _senders(url) == {"old", "resumed", "recent", "edge"}

    report = delete_old_conversations(url, 30, now=NOW)
    assert (report.conversations, report.events) == (1, 6)
    assert _senders(url) == {"resumed", "recent", "edge"}
    engine = sa.create_engine(url, future=True)
    with engine.connect() as connection:
        resumed = connection.execute(
            sa.text("SELECT count(*) FROM events WHERE sender_id = 'resumed'")
        ).scalar_one()
    engine.dispose()
    assert resumed == 6

    assert delete_old_conversations(url, 2, now=NOW).conversations == 2
    assert _senders(url) == {"recent"}


async def test_retention_sqlite(tmp_path) -> None:
    await _check_retention(f"sqlite:///{tmp_path / 'tracker.sqlite3'}")


@pytest.mark.postgres
async def test_retention_postgresql() -> None:
    name = f"tthc_test_retention_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    ensure_postgres_database(url)
    try:
        await _check_retention(url)
    finally:
        admin = sa.create_engine(
            "postgresql://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_retention_cli(tmp_path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    assert main(["--days", "30", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "Deleted 0 conversations (0 events) idle for more than 30 days" in out
    assert main(["--days", "0", "--url", url]) == 1
    assert "--days must be positive" in capsys.readouterr().err
