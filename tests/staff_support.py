"""Helpers for the API and staff tests: app settings, staff accounts, sign-in, tracker events."""

from __future__ import annotations

import dataclasses
import re
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from procedures_db.db import get_engine
from procedures_db.settings import Settings, load_settings
from webapp.auth import create_account

PASSWORD = "mật khẩu đủ dài 2026"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def app_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for an in-process app: the given database, an empty tracker store, no API limit."""
    values = {
        "database_url": database_url,
        "tracker_db_url": f"sqlite:///{tmp_path / 'tracker.sqlite3'}",
        "api_rate_limit_per_minute": 0,
        **overrides,
    }
    return dataclasses.replace(load_settings(), **values)


def new_staff_account(database_url: str) -> str:
    """A fresh account (unique name, so tests sharing the database do not collide)."""
    return create_account(
        f"staff-{uuid.uuid4().hex[:10]}", PASSWORD, engine=get_engine(database_url)
    )


def csrf_token(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "no CSRF field in the page"
    return match.group(1)


async def sign_in(client, username: str, password: str = PASSWORD, next_path: str = "/staff"):
    """Load the sign-in form (for its CSRF token and cookie), then post it."""
    form = await client.get("/staff/login")
    token = csrf_token(await form.text())
    return await client.post(
        "/staff/login",
        data={"username": username, "password": password, "csrf_token": token, "next": next_path},
        allow_redirects=False,
    )


def user(text: str, intent: str, timestamp: float):
    from rasa.shared.core.events import UserUttered

    parse = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": []}
    return UserUttered(text, intent=parse["intent"], parse_data=parse, timestamp=timestamp)


def bot(text: str, timestamp: float, buttons: list[dict[str, str]] | None = None):
    from rasa.shared.core.events import BotUttered

    return BotUttered(text, data={"buttons": buttons} if buttons else {}, timestamp=timestamp)


def slot(name: str, value: Any, timestamp: float):
    from rasa.shared.core.events import SlotSet

    return SlotSet(name, value, timestamp=timestamp)


def sql_tracker_store(url: str):
    """Rasa's own SQLTrackerStore on the database at `url` (SQLite or PostgreSQL)."""
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain

    parsed = make_url(url)
    return SQLTrackerStore(
        Domain.empty(),
        dialect=parsed.drivername.split("+")[0],
        host=parsed.host,
        port=parsed.port,
        db=parsed.database,
        username=parsed.username,
    )


async def save_conversation(url: str, sender_id: str, events: list) -> None:
    """Store events with Rasa's own SQLTrackerStore, exactly as the running bot does."""
    from rasa.shared.core.trackers import DialogueStateTracker

    store = sql_tracker_store(url)
    try:
        await store.save(DialogueStateTracker.from_events(sender_id, events))
    finally:
        store.engine.dispose()
