"""The hand-over on Zalo and Messenger: each channel's blueprint on a real Sanic server, replies
going to the fake platform APIs, staff working through the inbox API of the web app.

A citizen asks for a person (the real hand-over action runs), staff claim and reply (the reply
reaches the fake API through the channel's own client), the citizen's next message goes to the
inbox and not to the bot, the hand-back lets the bot answer again; a closed reply window stops
replies with a note to staff.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime, timedelta

import aiohttp
import pytest
from rasa.core.channels.channel import UserMessage
from sqlalchemy import update

from bot.channels.facebook import FacebookInput, hub_signature
from bot.channels.handover import StaffOutbox
from bot.channels.zalo import ZaloInput, zalo_signature
from procedures_db import handover
from procedures_db.db import get_engine
from procedures_db.handover_models import Handover
from procedures_db.settings import get_settings
from tests.fakes.graph_api import API_VERSION, FakeGraphApi
from tests.fakes.sanic_server import serve_blueprint
from tests.fakes.zalo_api import FakeZaloApi
from tests.handover_support import FakeRasa, run_handoff, schema_only_db, signed_in_staff

CODE = "1.001193"
ASK_PERSON = "cho tôi gặp cán bộ"
# Hours unknown: the desk is treated as open (the office-hours cases are in test_handover.py).
PROFILE = "public_administration_centre:\n  hotline: '0236 1022'\n"
APP_ID, OA_SECRET, APP_SECRET = "4318836229486014521", "oa-secret", "app-secret"
FB_SECRET, PAGE_TOKEN = "fb-secret", "page-token"


class HandoffBot:
    """Stands in for Rasa: the real hand-over action for a request, else an answer about CODE."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def __call__(self, message: UserMessage) -> None:
        self.texts.append(message.text)
        if message.text == ASK_PERSON:
            replies, _ = await run_handoff(message.sender_id, message.input_channel, message.text)
        else:
            replies = [{"text": f"Thủ tục {CODE}: trả lời cho '{message.text}'"}]
        for reply in replies:
            clean = {key: value for key, value in reply.items() if value}
            await message.output_channel.send_response(message.sender_id, clean)


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    url = schema_only_db(tmp_path)
    profile = tmp_path / "province.yml"
    profile.write_text(PROFILE, encoding="utf-8")
    monkeypatch.setenv("PROCEDURES_DB_URL", url)
    monkeypatch.setenv("PROVINCE_PROFILE", str(profile))
    monkeypatch.delenv("LOCK_STORE_URL", raising=False)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


@pytest.fixture
async def staff(db_url, tmp_path):
    rasa = FakeRasa()
    member = await signed_in_staff(db_url, tmp_path, await rasa.start())
    yield member
    await member.client.close()
    await rasa.server.close()


async def until(condition, what: str, timeout_s: float = 30.0) -> None:
    """Wait for the background outbox (it polls the store); fails with `what` if it never comes."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        await asyncio.sleep(0.05)


def age_last_message(db_url: str, sender: str, hours: float) -> None:
    """As if the citizen's last message was `hours` ago."""
    with get_engine(db_url).begin() as connection:
        connection.execute(
            update(Handover)
            .where(Handover.sender == sender)
            .values(last_citizen_at=datetime.utcnow() - timedelta(hours=hours))
        )


# --- the platforms -------------------------------------------------------------------------------


class ZaloPlatform:
    name, window_hours = "zalo", 48

    def __init__(self, fake: FakeZaloApi, channel: ZaloInput, url: str, http) -> None:
        self.fake, self.channel, self.url, self.http = fake, channel, url, http

    def texts_to(self, user: str) -> list[str]:
        return [text for to, text in self.fake.delivered if to == user]

    async def say(self, user: str, text: str) -> None:
        event = {
            "app_id": APP_ID,
            "sender": {"id": user},
            "recipient": {"id": "388613280878808645"},
            "event_name": "user_send_text",
            "message": {"msg_id": uuid.uuid4().hex, "text": text},
            "timestamp": str(int(time.time() * 1000)),
        }
        body = json.dumps(event, ensure_ascii=False).encode()
        signature = zalo_signature(APP_ID, body, event["timestamp"], OA_SECRET)
        headers = {"X-ZEvent-Signature": signature}
        async with self.http.post(self.url, data=body, headers=headers) as answer:
            assert answer.status == 200
        await self.channel.tasks.wait_idle()


class MessengerPlatform:
    name, window_hours = "facebook", 24

    def __init__(self, fake: FakeGraphApi, channel: FacebookInput, url: str, http) -> None:
        self.fake, self.channel, self.url, self.http = fake, channel, url, http

    def texts_to(self, user: str) -> list[str]:
        return self.fake.texts_to(user)

    async def say(self, user: str, text: str) -> None:
        now_ms = int(time.time() * 1000)
        event = {
            "sender": {"id": user},
            "recipient": {"id": "111222333"},
            "timestamp": now_ms,
            "message": {"mid": "m_" + uuid.uuid4().hex, "text": text},
        }
        entry = {"id": "111222333", "time": now_ms, "messaging": [event]}
        body = json.dumps({"object": "page", "entry": [entry]}, ensure_ascii=False).encode()
        headers = {"X-Hub-Signature-256": hub_signature(FB_SECRET, body)}
        async with self.http.post(self.url, data=body, headers=headers) as answer:
            assert answer.status == 200
        await self.channel.tasks.wait_idle()


@pytest.fixture(params=["zalo", "facebook"])
async def platform(request, db_url, tmp_path):
    bot = HandoffBot()
    if request.param == "zalo":
        fake = FakeZaloApi(APP_ID, APP_SECRET, access_token="access-0", refresh_token="refresh-0")
        base = await fake.start()
        channel = ZaloInput.from_credentials(
            {
                "app_id": APP_ID,
                "oa_secret_key": OA_SECRET,
                "app_secret_key": APP_SECRET,
                "access_token": "access-0",
                "refresh_token": "refresh-0",
                "token_file": str(tmp_path / "zalo_tokens.json"),
                "api_base": base,
                "oauth_base": base,
                "retry_base_delay_s": "0.01",
            }
        )
        prefix, kind = "/webhooks/zalo", ZaloPlatform
    else:
        fake = FakeGraphApi(PAGE_TOKEN)
        base = await fake.start()
        channel = FacebookInput.from_credentials(
            {
                "verify": "verify",
                "secret": FB_SECRET,
                "page-access-token": PAGE_TOKEN,
                "graph_base": base,
                "api_version": API_VERSION,
                "retry_base_delay_s": "0.01",
            }
        )
        prefix, kind = "/webhooks/facebook", MessengerPlatform
    try:
        async with (
            serve_blueprint(channel.blueprint(bot), prefix) as server,
            aiohttp.ClientSession() as http,
        ):
            platform = kind(fake, channel, f"{server}{prefix}/webhook", http)
            platform.bot = bot
            yield platform
    finally:
        await fake.stop()


async def test_hand_over_claim_reply_hold_and_hand_back(platform, staff, db_url):
    user = f"{uuid.uuid4().int % 10**16:016d}"
    await platform.say(user, ASK_PERSON)
    assert "Cán bộ sẽ trả lời bạn ngay tại đây" in platform.texts_to(user)[-1]

    status, listing = await staff.get("/staff/api/handovers")
    entry = next(item for item in listing["handovers"] if item["sender"] == user)
    assert (entry["channel"], entry["status"]) == (platform.name, "waiting")

    assert (await staff.post(f"/staff/api/handovers/{user}/claim"))[0] == 200
    status, _ = await staff.post(f"/staff/api/handovers/{user}/messages", {"text": "Chào bạn"})
    assert status == 201
    await until(lambda: "Chào bạn" in platform.texts_to(user), "staff reply delivered")
    assert handover.CLAIMED_NOTICE in platform.texts_to(user)

    # Held: the citizen's message reaches the inbox, the bot does not see it.
    await platform.say(user, "tôi nộp hồ sơ hôm qua rồi")
    assert platform.bot.texts == [ASK_PERSON]
    _, detail = await staff.get(f"/staff/api/handovers/{user}")
    assert detail["messages"][-1]["from"] == "citizen"
    assert detail["messages"][-1]["text"] == "tôi nộp hồ sơ hôm qua rồi"
    sent = [m for m in detail["messages"] if m["from"] == "staff"]
    assert sent[0]["staff"] == staff.username

    assert (await staff.post(f"/staff/api/handovers/{user}/release"))[0] == 200
    await until(
        lambda: handover.RETURNED_NOTICE in platform.texts_to(user), "hand-back notice delivered"
    )
    await platform.say(user, "lệ phí bao nhiêu")
    assert platform.bot.texts[-1] == "lệ phí bao nhiêu"
    assert platform.texts_to(user)[-1].startswith(f"Thủ tục {CODE}")


async def test_closed_reply_window_is_explained_to_staff(platform, staff, db_url):
    user = f"{uuid.uuid4().int % 10**16:016d}"
    await platform.say(user, ASK_PERSON)
    assert (await staff.post(f"/staff/api/handovers/{user}/claim"))[0] == 200
    await until(lambda: handover.CLAIMED_NOTICE in platform.texts_to(user), "claim notice sent")
    delivered_before = len(platform.texts_to(user))

    age_last_message(db_url, user, platform.window_hours + 1)
    status, body = await staff.post(f"/staff/api/handovers/{user}/messages", {"text": "Chào"})
    assert status == 409
    assert body["error"]["code"] == "reply_window_closed"
    assert f"{platform.window_hours} giờ" in body["error"]["message"]
    _, detail = await staff.get(f"/staff/api/handovers/{user}")
    assert detail["reply_window_open"] is False

    # The closing notice is not sent either: it is marked for staff instead.
    assert (await staff.post(f"/staff/api/handovers/{user}/close"))[0] == 200
    await until(
        lambda: (
            handover.messages(user, engine=get_engine(db_url))[-1].delivery
            == handover.WINDOW_CLOSED
        ),
        "closing notice marked",
        timeout_s=5,
    )
    assert len(platform.texts_to(user)) == delivered_before


async def test_platform_refusing_a_reply_is_shown_to_staff(platform, staff, db_url):
    user = f"{uuid.uuid4().int % 10**16:016d}"
    await platform.say(user, ASK_PERSON)
    assert (await staff.post(f"/staff/api/handovers/{user}/claim"))[0] == 200
    await until(lambda: handover.CLAIMED_NOTICE in platform.texts_to(user), "claim notice sent")
    path = "/v3.0/oa/message/cs" if platform.name == "zalo" else f"/{API_VERSION}/me/messages"
    platform.fake.fail_next(path, 503, times=10)
    await staff.post(f"/staff/api/handovers/{user}/messages", {"text": "Bạn chờ chút"})

    def failed() -> bool:
        return handover.messages(user, engine=get_engine(db_url))[-1].delivery == "failed"

    await until(failed, "failed delivery recorded")
    _, detail = await staff.get(f"/staff/api/handovers/{user}")
    assert "Nền tảng không nhận tin" in detail["messages"][-1]["delivery_note"]


async def test_outbox_stops_even_when_a_cancellation_is_lost(db_url):
    """Python 3.10's wait_for can swallow a cancellation; the server must still stop."""
    outbox = StaffOutbox("zalo", send_text=None, interval_s=0.01)
    calls = 0

    async def swallowing_send_pending() -> int:
        nonlocal calls
        calls += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return 0  # what wait_for does when its inner call finishes as it is cancelled
        return 0

    outbox.send_pending = swallowing_send_pending
    outbox.start()
    await until(lambda: calls == 1, "outbox polled")
    stopping = asyncio.ensure_future(outbox.stop())
    # A guard against hanging the suite; stop() itself returns as soon as the loop sees the flag.
    done, _ = await asyncio.wait({stopping}, timeout=60)
    assert stopping in done
    assert calls == 1
