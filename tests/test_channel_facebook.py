"""Messenger channel: its blueprint on a real Sanic server, replies going to a fake Graph API."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bot.channels.facebook import FacebookInput, hub_signature
from bot.channels.text_split import shorten
from procedures_db.settings import PROJECT_ROOT, get_settings
from tests.fakes.bot import FakeBot
from tests.fakes.graph_api import API_VERSION, MESSAGES_PATH, FakeGraphApi
from tests.fakes.sanic_server import serve_blueprint

APP_SECRET = "fb-app-secret-for-tests"
PAGE_TOKEN = "page-token-for-tests"
VERIFY = "verify-token-for-tests"
USER = "6543210987654321"


def messaging(text: str | None = "lệ phí đăng ký khai sinh", **message: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"mid": "m_" + uuid.uuid4().hex, **message}
    if text is not None:
        body["text"] = text
    return {
        "sender": {"id": USER},
        "recipient": {"id": "111222333"},
        "timestamp": int(time.time() * 1000),
        "message": body,
    }


def page_event(*events: dict[str, Any]) -> bytes:
    entry = {"id": "111222333", "time": int(time.time() * 1000), "messaging": list(events)}
    return json.dumps({"object": "page", "entry": [entry]}, ensure_ascii=False).encode()


@dataclass
class Messenger:
    channel: FacebookInput
    bot: FakeBot
    api: FakeGraphApi
    base: str
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return f"{self.base}/webhooks/facebook/webhook"

    async def post(self, body: bytes, signature: str | None = "sign") -> tuple[int, Any]:
        headers = {}
        if signature == "sign":
            signature = hub_signature(APP_SECRET, body)
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        async with self.http.post(self.url, data=body, headers=headers) as answer:
            return answer.status, await answer.json(content_type=None)

    async def send(self, body: bytes) -> tuple[int, Any]:
        result = await self.post(body)
        await self.channel.tasks.wait_idle()
        return result

    @property
    def texts(self) -> list[str]:
        return self.api.texts_to(USER)


@pytest.fixture(autouse=True)
def process_memory(monkeypatch):
    """Channel memory in this process unless a test asks for Redis (LOCK_STORE_URL)."""
    monkeypatch.delenv("LOCK_STORE_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
async def fake_graph():
    fake = FakeGraphApi(PAGE_TOKEN)
    fake.base_url = await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def messenger(fake_graph: FakeGraphApi):
    channel = FacebookInput.from_credentials(
        {
            "verify": VERIFY,
            "secret": APP_SECRET,
            "page-access-token": PAGE_TOKEN,
            "graph_base": fake_graph.base_url,
            "api_version": API_VERSION,
            "retry_base_delay_s": "0.01",
            "replay_window_s": "300",
        }
    )
    bot = FakeBot()
    async with (
        serve_blueprint(channel.blueprint(bot), "/webhooks/facebook") as base,
        aiohttp.ClientSession() as http,
    ):
        yield Messenger(channel, bot, fake_graph, base, http)


async def test_text_message_is_answered_through_the_send_api(messenger: Messenger):
    status, body = await messenger.send(page_event(messaging("thủ tục đăng ký kết hôn")))
    assert (status, body["accepted"]) == (200, 1)
    assert messenger.bot.texts == ["thủ tục đăng ký kết hôn"]
    assert messenger.bot.received[0].input_channel == "facebook"
    [request] = messenger.api.requests
    assert request.query["access_token"] == PAGE_TOKEN
    assert request.json == {
        "recipient": {"id": USER},
        "messaging_type": "RESPONSE",
        "message": {"text": "Bạn hỏi: thủ tục đăng ký kết hôn"},
    }


async def test_every_event_of_a_batch_is_answered(messenger: Messenger):
    await messenger.send(page_event(messaging("câu một"), messaging("câu hai")))
    assert sorted(messenger.bot.texts) == ["câu hai", "câu một"]
    assert sorted(messenger.texts) == ["Bạn hỏi: câu hai", "Bạn hỏi: câu một"]


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=" + "0" * 64,
        "sha256=forged",
        "wrong-secret",
        "sha1-only",
    ],
)
async def test_missing_or_forged_signature_gets_403(messenger: Messenger, signature):
    body = page_event(messaging())
    if signature == "wrong-secret":
        signature = hub_signature("guessed-secret", body)
    if signature == "sha1-only":
        # What Rasa's own connector accepts: the SHA-1 header is not enough here.
        sha1 = hmac.new(APP_SECRET.encode(), body, hashlib.sha1).hexdigest()
        async with messenger.http.post(
            messenger.url, data=body, headers={"X-Hub-Signature": f"sha1={sha1}"}
        ) as answer:
            assert answer.status == 403
    else:
        status, answer = await messenger.post(body, signature=signature)
        assert (status, answer["status"]) == (403, "rejected")
    await messenger.channel.tasks.wait_idle()
    assert messenger.bot.received == []
    assert messenger.api.requests == []


async def test_replayed_delivery_is_answered_once(messenger: Messenger):
    body = page_event(messaging("hồ sơ cần gì"))
    await messenger.send(body)
    status, answer = await messenger.send(body)
    assert (status, answer["accepted"], answer["ignored"]) == (200, 0, 1)
    assert messenger.bot.texts == ["hồ sơ cần gì"]
    assert len(messenger.texts) == 1


async def test_stale_event_is_ignored(messenger: Messenger):
    event = messaging("câu hỏi cũ")
    event["timestamp"] -= 301_000
    status, answer = await messenger.send(page_event(event))
    assert (status, answer["ignored"]) == (200, 1)
    assert messenger.bot.received == []


async def test_long_answer_is_split(messenger: Messenger):
    paragraph = "Thành phần hồ sơ gồm tờ khai và giấy tờ tùy thân.\n" * 90  # ~4,600 chars
    messenger.bot.reply = lambda text: [{"text": paragraph}]
    await messenger.send(page_event(messaging()))
    parts = messenger.texts
    assert len(parts) == 3
    assert all(len(part) <= 2000 and part.endswith("thân.") for part in parts)
    assert "\n".join(parts) == paragraph.strip()


async def test_server_error_then_success_delivers_once(messenger: Messenger):
    messenger.api.fail_next(MESSAGES_PATH, 500, times=1)
    await messenger.send(page_event(messaging("lệ phí")))
    assert len(messenger.api.requests) == 2
    assert messenger.texts == ["Bạn hỏi: lệ phí"]


async def test_client_error_is_logged_and_not_retried(messenger: Messenger, caplog):
    error = {"error": {"message": "(#100) No matching user found", "code": 100}}
    messenger.api.fail_next(MESSAGES_PATH, 400, error, times=3)
    with caplog.at_level(logging.ERROR, logger="bot.channels"):
        await messenger.send(page_event(messaging()))
    assert len(messenger.api.requests) == 1
    assert messenger.texts == []
    assert any("HTTP 400" in record.getMessage() for record in caplog.records)
    assert not any(PAGE_TOKEN in record.getMessage() for record in caplog.records)


async def test_sticker_gets_a_polite_text_only_note(messenger: Messenger):
    sticker = {"type": "image", "payload": {"url": "https://x/sticker.png", "sticker_id": 369}}
    await messenger.send(page_event(messaging(None, attachments=[sticker], sticker_id=369)))
    assert messenger.bot.received == []
    [note] = messenger.texts
    assert "chỉ đọc được tin nhắn dạng chữ" in note


async def test_echoes_and_receipts_are_ignored(messenger: Messenger):
    echo = messaging("tin của trang", is_echo=True)
    read = {"sender": {"id": USER}, "timestamp": int(time.time() * 1000), "read": {"watermark": 1}}
    status, answer = await messenger.send(page_event(echo, read))
    assert (status, answer["ignored"]) == (200, 2)
    assert messenger.bot.received == []
    assert messenger.api.requests == []


async def test_empty_bot_answer_gets_the_apology_with_the_hotline(
    messenger: Messenger, tmp_path, monkeypatch
):
    profile = tmp_path / "province.yml"
    profile.write_text("public_administration_centre:\n  hotline: '1900 1234'\n", "utf-8")
    monkeypatch.setenv("PROVINCE_PROFILE", str(profile))
    get_settings.cache_clear()
    messenger.bot.reply = lambda text: []
    await messenger.send(page_event(messaging()))
    get_settings.cache_clear()
    [apology] = messenger.texts
    assert apology.startswith("Xin lỗi") and "1900 1234" in apology


async def test_failing_bot_gets_an_apology(messenger: Messenger):
    messenger.bot.fail_with = RuntimeError("internal error")
    await messenger.send(page_event(messaging()))
    [apology] = messenger.texts
    assert apology.startswith("Xin lỗi")


async def test_quick_replies_are_capped_and_titles_shortened(messenger: Messenger):
    buttons = [
        {"title": f"Thủ tục đăng ký thường trú số {n}", "payload": f'/choose{{"n":{n}}}'}
        for n in range(15)
    ]
    messenger.bot.reply = lambda text: [{"text": "Bạn hỏi thủ tục nào?", "buttons": buttons}]
    await messenger.send(page_event(messaging()))
    [(_, message)] = messenger.api.delivered
    replies = message["quick_replies"]
    assert len(replies) == 13
    assert all(len(reply["title"]) <= 20 for reply in replies)
    assert replies[0] == {
        "content_type": "text",
        "title": "Thủ tục đăng ký…",
        "payload": '/choose{"n":0}',
    }


async def test_quick_reply_and_postback_payloads_reach_the_bot(messenger: Messenger):
    quick = messaging("Cấp lại", quick_reply={"payload": "/ask_fee"})
    postback = {
        "sender": {"id": USER},
        "timestamp": int(time.time() * 1000),
        "postback": {"mid": "m_pb1", "title": "Bắt đầu", "payload": "/greet"},
    }
    await messenger.send(page_event(quick, postback))
    assert sorted(messenger.bot.texts) == ["/ask_fee", "/greet"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b'{"object": "instagram", "entry": []}', 400),
        (b'{"object": "page", "entry": "x"}', 400),
        (b'{"object": "page", "x": "' + b"a" * 70_000 + b'"}', 413),
    ],
)
async def test_unusable_bodies_get_a_clear_client_error(messenger: Messenger, body, status):
    answer_status, answer = await messenger.post(body)
    assert (answer_status, answer["status"]) == (status, "rejected")
    assert messenger.bot.received == []


async def test_event_without_sender_does_not_lose_the_valid_one(messenger: Messenger):
    broken = messaging("không có người gửi")
    del broken["sender"]
    status, answer = await messenger.send(page_event(broken, messaging("câu hợp lệ")))
    assert (status, answer["malformed"], answer["accepted"]) == (200, 1, 1)
    assert messenger.bot.texts == ["câu hợp lệ"]


async def test_oddly_shaped_events_are_counted_not_crashed_on(messenger: Messenger):
    no_sender = messaging("người gửi là chuỗi")
    no_sender["sender"] = USER
    odd_quick_reply = messaging("câu vẫn đọc được", quick_reply="không phải object")
    body = json.dumps(
        {
            "object": "page",
            "entry": [
                {"id": "1", "messaging": 7},
                "not an entry",
                {"id": "1", "messaging": [no_sender, odd_quick_reply, "not an event"]},
            ],
        },
        ensure_ascii=False,
    ).encode()
    status, answer = await messenger.send(body)
    assert (status, answer["accepted"], answer["malformed"]) == (200, 1, 2)
    assert messenger.bot.texts == ["câu vẫn đọc được"]


async def test_webhook_verification(messenger: Messenger):
    params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
    async with messenger.http.get(messenger.url, params=params) as answer:
        assert (answer.status, await answer.text()) == (200, "1158201444")
    params["hub.verify_token"] = "wrong"
    async with messenger.http.get(messenger.url, params=params) as answer:
        assert answer.status == 403


def test_credentials_yml_registers_the_facebook_channel_from_environment(monkeypatch):
    from rasa.core.run import create_http_input_channels

    from bot.channels import CREDENTIAL_ENV_VARS

    for name in CREDENTIAL_ENV_VARS:
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("FACEBOOK_APP_SECRET", APP_SECRET)
    monkeypatch.setenv("FACEBOOK_PAGE_ACCESS_TOKEN", PAGE_TOKEN)
    channels = create_http_input_channels(None, str(PROJECT_ROOT / "credentials.yml"))
    [facebook] = [channel for channel in channels if isinstance(channel, FacebookInput)]
    assert facebook.url_prefix() == "facebook"
    assert (facebook.fb_secret, facebook.fb_access_token) == (APP_SECRET, PAGE_TOKEN)
    assert facebook.api.url == "https://graph.facebook.com/v19.0/me/messages"


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Khai sinh", "Khai sinh"),
        ("Đăng ký kết hôn có yếu tố nước ngoài", "Đăng ký kết hôn có…"),
        ("Chứngthựcbảnsaotừbảnchính", "Chứngthựcbảnsaotừbả…"),  # one long word: cut inside
        ("  Cấp   lại   căn cước  ", "Cấp lại căn cước"),
    ],
)
def test_quick_reply_titles_are_shortened_at_word_boundaries(title: str, expected: str):
    assert shorten(title, 20) == expected
    assert len(shorten(title, 20)) <= 20
