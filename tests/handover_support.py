"""Helpers of the hand-over tests: a schema-only database, a fake Rasa REST channel, a staff
client that signs in and sends the CSRF header, and running the real hand-over action."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from procedures_db.db import create_schema, get_engine
from tests.staff_support import app_settings, new_staff_account, sign_in
from webapp.app import create_app

# A Monday 10:00 and a Sunday 10:00 in Viet Nam (UTC+7).
MONDAY_10 = datetime(2026, 11, 30, 3, 0, tzinfo=timezone.utc)
SUNDAY_10 = datetime(2026, 12, 6, 3, 0, tzinfo=timezone.utc)
PROFILE = """
province_name: Tỉnh Thử Nghiệm
public_administration_centre:
  hotline: "0236 1022"
staff_chat_hours:
  days: [1, 2, 3, 4, 5]
  periods: ["07:30-11:30", "13:30-17:00"]
"""


def schema_only_db(folder: Path) -> str:
    url = f"sqlite:///{folder / 'procedures.sqlite3'}"
    create_schema(get_engine(url))
    return url


class FakeRasa:
    """Rasa's REST channel: records each message, answers 'Trợ lý: <message>'."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []

    async def webhook(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.received.append(data)
        return web.json_response([{"text": f"Trợ lý: {data['message']}"}])

    @property
    def texts(self) -> list[str]:
        return [item["message"] for item in self.received]

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/webhooks/rest/webhook", self.webhook)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return str(self.server.make_url("")).rstrip("/")


class Staff:
    """A signed-in staff member's client of the inbox API."""

    def __init__(self, client: TestClient, username: str, csrf: str) -> None:
        self.client, self.username, self.csrf = client, username, csrf

    async def get(self, path: str) -> tuple[int, Any]:
        response = await self.client.get(path)
        return response.status, await response.json()

    async def post(self, path: str, body: Any = None, csrf: str | None = "session"):
        headers = {"X-CSRF-Token": self.csrf if csrf == "session" else csrf} if csrf else {}
        response = await self.client.post(path, json=body or {}, headers=headers)
        return response.status, await response.json()


async def web_client(database_url: str, tmp_path: Path, rasa_url: str) -> TestClient:
    settings = app_settings(database_url, tmp_path, rasa_url=rasa_url)
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    return client


async def signed_in_staff(database_url: str, tmp_path: Path, rasa_url: str) -> Staff:
    client = await web_client(database_url, tmp_path, rasa_url)
    username = new_staff_account(database_url)
    response = await sign_in(client, username)
    assert response.status == 303
    session = await (await client.get("/staff/api/session")).json()
    assert session["username"] == username
    return Staff(client, username, session["csrf_token"])


def tracker(sender: str, channel: str, text: str, slots: dict[str, Any] | None = None) -> Tracker:
    """A tracker as the action server receives it after the citizen's message."""
    latest = {"text": text, "intent": {"name": "ask_human", "confidence": 0.95}, "entities": []}
    events = [{"event": "user", "text": text, "input_channel": channel, "parse_data": latest}]
    return Tracker(sender, slots or {}, latest, events, False, None, {}, "action_listen")


async def run_handoff(sender: str, channel: str, text: str, code: str | None = None):
    from actions.human_handoff import ActionHumanHandoff

    dispatcher = CollectingDispatcher()
    slots = {"procedure_code": code} if code else {}
    events = await ActionHumanHandoff().run(dispatcher, tracker(sender, channel, text, slots), {})
    return dispatcher.messages, events
