"""Helpers for the API and staff tests: app settings, staff accounts, sign-in, tracker events."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import uuid
from pathlib import Path
from typing import Any

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


# Rasa's SQLTrackerStore table (rasa/core/tracker_store.py, SQLEvent).
EVENTS_DDL = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, sender_id VARCHAR(255) NOT NULL, type_name VARCHAR(255) NOT NULL,
    timestamp FLOAT, intent_name VARCHAR(255), action_name VARCHAR(255), data TEXT
)
"""


def user(text: str, intent: str, timestamp: float) -> dict[str, Any]:
    return {
        "event": "user",
        "timestamp": timestamp,
        "text": text,
        "parse_data": {"intent": {"name": intent, "confidence": 0.9}, "entities": []},
    }


def bot(text: str, timestamp: float, buttons: list[dict[str, str]] | None = None):
    return {"event": "bot", "timestamp": timestamp, "text": text, "data": {"buttons": buttons}}


def slot(name: str, value: Any, timestamp: float) -> dict[str, Any]:
    return {"event": "slot", "timestamp": timestamp, "name": name, "value": value}


def write_tracker_events(url: str, sender_id: str, events: list[dict[str, Any]]) -> None:
    """Store events the way Rasa's SQL tracker store does."""
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        connection.execute(EVENTS_DDL)
        connection.executemany(
            "INSERT INTO events (sender_id, type_name, timestamp, intent_name, action_name, data)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    sender_id,
                    event["event"],
                    event["timestamp"],
                    (event.get("parse_data") or {}).get("intent", {}).get("name"),
                    event.get("name") if event["event"] == "action" else None,
                    json.dumps(event, ensure_ascii=False),
                )
                for event in events
            ],
        )
