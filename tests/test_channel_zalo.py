"""Zalo OA channel: its blueprint on a real Sanic server, replies going to a fake Zalo API."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bot.channels.delivery import RetryPolicy
from bot.channels.text_split import CHOICE_HEADER, split_text
from bot.channels.zalo import ZaloApi, ZaloConfig, ZaloInput, ZaloTokens, zalo_signature
from procedures_db.settings import PROJECT_ROOT, get_settings
from tests.fakes.base import DISCONNECT
from tests.fakes.bot import FakeBot
from tests.fakes.sanic_server import serve_blueprint
from tests.fakes.zalo_api import MESSAGE_PATH, TOKEN_PATH, FakeZaloApi

APP_ID = "4318836229486014521"
OA_SECRET = "oa-secret-for-tests"
APP_SECRET = "app-secret-for-tests"
USER = "2512523625412515"


def zalo_event(
    text: str | None = "lệ phí làm căn cước",
    *,
    name: str = "user_send_text",
    msg_id: str | None = None,
    age_s: float = 0.0,
    user: str = USER,
) -> dict[str, Any]:
    message: dict[str, Any] = {"msg_id": msg_id or uuid.uuid4().hex}
    if text is not None:
        message["text"] = text
    return {
        "app_id": APP_ID,
        "sender": {"id": user},
        "user_id_by_app": "552177279717587730",
        "recipient": {"id": "388613280878808645"},
        "event_name": name,
        "message": message,
        "timestamp": str(int((time.time() - age_s) * 1000)),
    }


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()


def sign(body: bytes, secret: str = OA_SECRET) -> str:
    return zalo_signature(APP_ID, body, json.loads(body)["timestamp"], secret)


@dataclass
class Zalo:
    channel: ZaloInput
    bot: FakeBot
    api: FakeZaloApi
    url: str
    http: aiohttp.ClientSession

    async def post(
        self, body: bytes, signature: str | None = "sign", **headers: str
    ) -> tuple[int, Any]:
        if signature == "sign":
            signature = sign(body)
        if signature is not None:
            headers["X-ZEvent-Signature"] = signature
        async with self.http.post(self.url, data=body, headers=headers) as answer:
            return answer.status, await answer.json(content_type=None)

    async def send(self, event: dict[str, Any]) -> tuple[int, Any]:
        """Deliver a correctly signed event and wait until it is fully processed."""
        result = await self.post(encode(event))
        await self.channel.tasks.wait_idle()
        return result


@pytest.fixture(autouse=True)
def process_memory(monkeypatch):
    """Channel memory in this process unless a test asks for Redis (LOCK_STORE_URL)."""
    monkeypatch.delenv("LOCK_STORE_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
async def fake_zalo():
    fake = FakeZaloApi(APP_ID, APP_SECRET, access_token="access-0", refresh_token="refresh-0")
    fake.base_url = await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def credentials(fake_zalo: FakeZaloApi, tmp_path) -> dict[str, Any]:
    # Shaped as credentials.yml gives them (strings, from ${ENV} substitution).
    return {
        "app_id": APP_ID,
        "oa_secret_key": OA_SECRET,
        "app_secret_key": APP_SECRET,
        "access_token": "access-0",
        "refresh_token": "refresh-0",
        "token_file": str(tmp_path / "zalo_tokens.json"),
        "api_base": fake_zalo.base_url,
        "oauth_base": fake_zalo.base_url,
        "retry_base_delay_s": "0.01",
        "send_timeout_s": "5",
        "replay_window_s": "300",
    }


@pytest.fixture
async def zalo(credentials: dict[str, Any], fake_zalo: FakeZaloApi):
    channel = ZaloInput.from_credentials(credentials)
    bot = FakeBot()
    async with (
        serve_blueprint(channel.blueprint(bot), "/webhooks/zalo") as base,
        aiohttp.ClientSession() as http,
    ):
        yield Zalo(channel, bot, fake_zalo, f"{base}/webhooks/zalo/webhook", http)


@pytest.fixture
def hotline(tmp_path, monkeypatch) -> str:
    profile = tmp_path / "province.yml"
    profile.write_text("public_administration_centre:\n  hotline: '0236 1022'\n", "utf-8")
    monkeypatch.setenv("PROVINCE_PROFILE", str(profile))
    get_settings.cache_clear()
    yield "0236 1022"
    get_settings.cache_clear()


async def test_text_message_is_answered_through_the_oa_api(zalo: Zalo):
    status, body = await zalo.send(zalo_event("thủ tục cấp lại căn cước"))
    assert (status, body["status"]) == (200, "accepted")
    assert zalo.bot.texts == ["thủ tục cấp lại căn cước"]
    assert zalo.bot.received[0].input_channel == "zalo"
    assert zalo.api.delivered == [(USER, "Bạn hỏi: thủ tục cấp lại căn cước")]
    sent = zalo.api.to(MESSAGE_PATH)[0]
    assert sent.headers["access_token"] == "access-0"
    assert sent.json == {
        "recipient": {"user_id": USER},
        "message": {"text": "Bạn hỏi: thủ tục cấp lại căn cước"},
    }


async def test_webhook_answers_before_the_bot_finishes(zalo: Zalo):
    zalo.bot.gate = asyncio.Event()
    status, _ = await asyncio.wait_for(zalo.post(encode(zalo_event("xin chào"))), timeout=2)
    assert status == 200
    assert zalo.api.delivered == []  # the bot is still thinking; the webhook did not wait
    zalo.bot.gate.set()
    await zalo.channel.tasks.wait_idle()
    assert zalo.api.delivered == [(USER, "Bạn hỏi: xin chào")]


@pytest.mark.parametrize(
    ("signature", "status"),
    [
        (None, 401),
        ("", 401),
        ("mac=" + "0" * 64, 403),
        ("not-a-signature", 403),
        ("wrong-secret", 403),
    ],
)
async def test_missing_or_forged_signature_never_reaches_the_bot(
    zalo: Zalo, signature: str | None, status: int
):
    body = encode(zalo_event())
    if signature == "wrong-secret":
        signature = sign(body, secret="guessed-secret")
    answer_status, answer = await zalo.post(body, signature=signature)
    await zalo.channel.tasks.wait_idle()
    assert answer_status == status
    assert answer["status"] == "rejected"
    assert zalo.bot.received == []
    assert zalo.api.requests == []


async def test_tampered_body_with_a_valid_signature_is_refused(zalo: Zalo):
    event = zalo_event("câu hỏi thật")
    signature = sign(encode(event))
    event["message"]["text"] = "câu hỏi bị sửa"
    status, _ = await zalo.post(encode(event), signature=signature)
    assert status == 403
    assert zalo.bot.received == []


async def test_replayed_event_is_answered_once(zalo: Zalo):
    body = encode(zalo_event("thời gian giải quyết"))
    first = await zalo.post(body)
    second = await zalo.post(body)
    await zalo.channel.tasks.wait_idle()
    assert first == (200, {"status": "accepted"})
    assert second == (200, {"status": "ignored", "reason": "duplicate"})
    assert zalo.bot.texts == ["thời gian giải quyết"]
    assert len(zalo.api.delivered) == 1


async def test_redelivery_with_a_new_timestamp_is_answered_once(zalo: Zalo):
    # Same message id, newly signed: a platform re-delivery rather than a byte-for-byte replay.
    await zalo.send(zalo_event("hồ sơ gồm những gì", msg_id="msg-42"))
    status, body = await zalo.send(zalo_event("hồ sơ gồm những gì", msg_id="msg-42", age_s=1))
    assert (status, body["reason"]) == (200, "duplicate")
    assert zalo.bot.texts == ["hồ sơ gồm những gì"]
    assert len(zalo.api.delivered) == 1


async def test_event_older_than_the_replay_window_is_ignored(zalo: Zalo):
    status, body = await zalo.send(zalo_event("câu hỏi cũ", age_s=301))
    assert (status, body["reason"]) == (200, "stale")
    assert zalo.bot.received == []
    assert zalo.api.requests == []


async def test_long_answer_is_split_at_sentence_boundaries(zalo: Zalo):
    sentence = "Công dân nộp hồ sơ tại Trung tâm Phục vụ hành chính công cấp tỉnh. "
    answer = (sentence * 70).strip()  # about 4,700 characters
    zalo.bot.reply = lambda text: [{"text": answer}]
    await zalo.send(zalo_event())
    parts = [text for _, text in zalo.api.delivered]
    assert len(parts) == 3
    assert all(len(part) <= 2000 and part.endswith("tỉnh.") for part in parts)
    assert " ".join(parts) == answer


async def test_server_error_then_success_delivers_once(zalo: Zalo):
    zalo.api.fail_next(MESSAGE_PATH, 500, times=1)
    await zalo.send(zalo_event("lệ phí"))
    assert len(zalo.api.to(MESSAGE_PATH)) == 2
    assert zalo.api.delivered == [(USER, "Bạn hỏi: lệ phí")]


async def test_network_errors_are_retried_with_backoff(zalo: Zalo):
    zalo.api.fail_next(MESSAGE_PATH, DISCONNECT, times=2)
    await zalo.send(zalo_event("lệ phí"))
    assert len(zalo.api.to(MESSAGE_PATH)) == 3
    assert zalo.api.delivered == [(USER, "Bạn hỏi: lệ phí")]


async def test_retries_are_bounded(zalo: Zalo, caplog):
    zalo.api.fail_next(MESSAGE_PATH, 503, times=10)
    with caplog.at_level(logging.ERROR, logger="bot.channels"):
        await zalo.send(zalo_event("lệ phí"))
    assert len(zalo.api.to(MESSAGE_PATH)) == RetryPolicy().attempts
    assert any("after 4 attempt(s): HTTP 503" in r.getMessage() for r in caplog.records)


async def test_client_error_is_logged_and_not_retried(zalo: Zalo, caplog):
    zalo.api.fail_next(MESSAGE_PATH, 400, {"error": "bad request"}, times=3)
    with caplog.at_level(logging.ERROR, logger="bot.channels"):
        await zalo.send(zalo_event("lệ phí"))
    assert len(zalo.api.to(MESSAGE_PATH)) == 1
    assert zalo.api.delivered == []
    assert any("HTTP 400" in record.getMessage() for record in caplog.records)


async def test_sticker_gets_a_polite_text_only_note(zalo: Zalo):
    event = zalo_event(None, name="user_send_sticker")
    event["message"]["attachments"] = [{"type": "sticker", "payload": {"id": "abc"}}]
    status, _ = await zalo.send(event)
    assert status == 200
    assert zalo.bot.received == []
    [(user, text)] = zalo.api.delivered
    assert user == USER
    assert "chỉ đọc được tin nhắn dạng chữ" in text


async def test_own_echo_and_non_message_events_are_ignored(zalo: Zalo):
    echo = zalo_event("tin nhắn của OA", name="oa_send_text")
    follow = zalo_event(None, name="follow")
    for event in (echo, follow):
        status, body = await zalo.send(event)
        assert (status, body["status"]) == (200, "ignored")
    assert zalo.bot.received == []
    assert zalo.api.requests == []


async def test_empty_bot_answer_gets_the_apology_with_the_hotline(zalo: Zalo, hotline: str):
    zalo.bot.reply = lambda text: []
    await zalo.send(zalo_event())
    [(_, text)] = zalo.api.delivered
    assert text.startswith("Xin lỗi")
    assert hotline in text


async def test_failing_bot_gets_the_apology_pointing_to_the_national_portal(
    zalo: Zalo, tmp_path, monkeypatch
):
    monkeypatch.setenv("PROVINCE_PROFILE", str(tmp_path / "absent.yml"))
    get_settings.cache_clear()
    zalo.bot.fail_with = ConnectionError("action server down")
    await zalo.send(zalo_event())
    get_settings.cache_clear()
    [(_, text)] = zalo.api.delivered
    assert "dichvucong.gov.vn" in text


async def test_restart_command_is_silent_without_an_apology(zalo: Zalo):
    zalo.bot.reply = lambda text: []
    await zalo.send(zalo_event("/restart"))
    assert zalo.bot.texts == ["/restart"]
    assert zalo.api.requests == []


async def test_buttons_become_a_numbered_list_answered_by_number(zalo: Zalo):
    buttons = [
        {"title": "Cấp đổi căn cước", "payload": '/ask_procedure_info{"procedure_code":"1.1"}'},
        {"title": "Cấp lại căn cước", "payload": '/ask_procedure_info{"procedure_code":"1.2"}'},
    ]
    question = {"text": "Bạn hỏi thủ tục nào?", "buttons": buttons}
    zalo.bot.reply = lambda text: [question] if text == "căn cước" else [{"text": "Vâng."}]
    await zalo.send(zalo_event("căn cước"))
    [(_, text)] = zalo.api.delivered
    assert text == (
        f"Bạn hỏi thủ tục nào?\n\n{CHOICE_HEADER}\n1. Cấp đổi căn cước\n2. Cấp lại căn cước"
    )
    await zalo.send(zalo_event("2"))
    await zalo.send(zalo_event("2"))  # the list was answered; a second "2" is plain text
    assert zalo.bot.texts == ["căn cước", buttons[1]["payload"], "2"]


async def test_a_list_the_bot_already_numbered_is_not_repeated(zalo: Zalo):
    text = "Bạn hỏi về thủ tục nào?\n1. Đăng ký khai sinh (mã 1.001193)\n2. Đăng ký lại khai sinh"
    buttons = [
        {"title": "Đăng ký khai sinh", "payload": '/choose_procedure{"procedure_code":"1.001193"}'},
        {"title": "Đăng ký lại khai sinh", "payload": '/choose_procedure{"procedure_code":"2"}'},
    ]
    zalo.bot.reply = lambda said: (
        [{"text": text, "buttons": buttons}] if said == "khai sinh" else []
    )
    await zalo.send(zalo_event("khai sinh"))
    await zalo.send(zalo_event("1"))
    assert zalo.api.delivered[0] == (USER, text)
    assert zalo.bot.texts[1] == buttons[0]["payload"]


async def test_expired_token_is_refreshed_rotated_and_persisted(zalo: Zalo, credentials):
    token_file = zalo.channel.config.token_file
    zalo.api.expire_access_token()
    await zalo.send(zalo_event("lần một"))
    assert zalo.api.delivered == [(USER, "Bạn hỏi: lần một")]
    [refresh] = zalo.api.to(TOKEN_PATH)
    assert refresh.headers["secret_key"] == APP_SECRET
    assert refresh.form == {
        "refresh_token": "refresh-0",
        "app_id": APP_ID,
        "grant_type": "refresh_token",
    }
    stored = json.loads(token_file.read_text())
    assert (stored["access_token"], stored["refresh_token"]) == ("access-1", "refresh-1")

    # A restarted process reads the file, not the (now spent) seed refresh token.
    restarted = ZaloInput.from_credentials(credentials)
    zalo.api.expire_access_token()
    assert await restarted.api.send_text(USER, "lần hai")
    assert zalo.api.to(TOKEN_PATH)[1].form["refresh_token"] == "refresh-1"
    stored = json.loads(token_file.read_text())
    assert (stored["access_token"], stored["refresh_token"]) == ("access-2", "refresh-2")
    assert zalo.api.delivered[-1] == (USER, "lần hai")
    await restarted.sender.close()


async def test_concurrent_expiries_refresh_once(zalo: Zalo):
    zalo.api.expire_access_token()
    results = await asyncio.gather(
        *(zalo.channel.api.send_text(USER, f"tin {n}") for n in range(4))
    )
    assert all(results)
    assert len(zalo.api.to(TOKEN_PATH)) == 1
    assert sorted(text for _, text in zalo.api.delivered) == [f"tin {n}" for n in range(4)]


async def test_replica_with_a_stale_token_adopts_the_one_another_replica_stored(
    zalo: Zalo, credentials
):
    replica = ZaloInput.from_credentials(credentials)  # same token file, like prod replicas
    assert await replica.api.send_text(USER, "làm nóng")  # caches access-0
    zalo.api.expire_access_token()
    assert await zalo.channel.api.send_text(USER, "bản sao một")  # refreshes: access-1
    assert await replica.api.send_text(USER, "bản sao hai")  # refused, reads the file
    assert len(zalo.api.to(TOKEN_PATH)) == 1  # the spent refresh token was never reused
    assert zalo.api.delivered[-2:] == [(USER, "bản sao một"), (USER, "bản sao hai")]
    await replica.close()


@pytest.fixture
def redis_memory(monkeypatch):
    monkeypatch.setenv("LOCK_STORE_URL", "redis://127.0.0.1:6379/0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_replicas_sharing_redis_answer_a_redelivery_once(
    zalo: Zalo, credentials, redis_memory
):
    replicas = [ZaloInput.from_credentials(credentials) for _ in range(2)]
    bot = FakeBot()
    body = encode(zalo_event("câu hỏi gửi hai lần"))
    async with (
        serve_blueprint(replicas[0].blueprint(bot), "/webhooks/zalo") as first,
        serve_blueprint(replicas[1].blueprint(bot), "/webhooks/zalo") as second,
    ):
        for base in (first, second):
            url = f"{base}/webhooks/zalo/webhook"
            async with zalo.http.post(url, data=body, headers={"X-ZEvent-Signature": sign(body)}):
                pass
        for replica in replicas:
            await replica.tasks.wait_idle()
    assert bot.texts == ["câu hỏi gửi hai lần"]
    assert len(zalo.api.delivered) == 1


async def test_unreachable_redis_falls_back_to_local_memory(zalo: Zalo, credentials, monkeypatch):
    monkeypatch.setenv("LOCK_STORE_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    channel = ZaloInput.from_credentials(credentials)
    get_settings.cache_clear()
    event = zalo_event("vẫn trả lời khi Redis hỏng", msg_id="msg-redis-down")
    assert await channel.gate.refusal("msg-redis-down", float(event["timestamp"])) is None
    assert await channel.gate.refusal("msg-redis-down", float(event["timestamp"])) == "duplicate"
    await channel.close()


async def test_crash_while_saving_tokens_keeps_the_previous_refresh_token(tmp_path, monkeypatch):
    config = ZaloConfig.from_credentials(
        {"app_id": APP_ID, "oa_secret_key": OA_SECRET, "token_file": str(tmp_path / "t.json")}
    )
    store = ZaloApi(config, sender=None).store
    store.save(ZaloTokens("access-1", "refresh-1"))

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.save(ZaloTokens("access-2", "refresh-2"))
    assert store.load() == ZaloTokens("access-1", "refresh-1")
    assert [path.name for path in tmp_path.iterdir()] == ["t.json"]


async def test_refresh_failure_is_logged_and_the_message_not_sent(zalo: Zalo, caplog):
    zalo.api.expire_access_token()
    zalo.api.refresh_token = "someone-else-refreshed"
    with caplog.at_level(logging.ERROR, logger="bot.channels"):
        await zalo.send(zalo_event())
    assert zalo.api.delivered == []
    assert any("refresh failed" in record.getMessage() for record in caplog.records)
    assert not zalo.channel.config.token_file.exists()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (b'{"event_name": "user_send_text", "x": "' + b"a" * 70_000 + b'"}', 413),
    ],
)
async def test_unusable_bodies_get_a_clear_client_error(zalo: Zalo, body: bytes, status: int):
    answer_status, answer = await zalo.post(body, signature="mac=" + "0" * 64)
    assert (answer_status, answer["status"]) == (status, "rejected")
    assert zalo.bot.received == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda event: event.pop("event_name"), "missing event_name"),
        (lambda event: event.pop("sender"), "missing sender.id"),
        (lambda event: event["message"].pop("text"), "missing message.text"),
        (lambda event: event.update(timestamp="nan"), "missing or invalid timestamp"),
        (lambda event: event.update(sender="2512523625412515"), "missing sender.id"),
        (lambda event: event.update(message=["lệ phí"]), "missing message.text"),
    ],
)
async def test_signed_events_missing_fields_get_400(zalo: Zalo, change, reason):
    event = zalo_event()
    change(event)
    status, body = await zalo.send(event)
    assert (status, body["reason"]) == (400, reason)
    assert zalo.bot.received == []


async def test_a_bad_event_does_not_block_the_next_valid_one(zalo: Zalo):
    await zalo.post(b"{broken", signature="mac=00")
    await zalo.send(zalo_event("câu hỏi hợp lệ"))
    assert zalo.api.delivered == [(USER, "Bạn hỏi: câu hỏi hợp lệ")]


async def test_unconfigured_channel_refuses_webhooks(fake_zalo: FakeZaloApi):
    channel = ZaloInput.from_credentials({"app_id": "", "oa_secret_key": ""})
    bot = FakeBot()
    body = encode(zalo_event())
    async with (
        serve_blueprint(channel.blueprint(bot), "/webhooks/zalo") as base,
        aiohttp.ClientSession() as http,
        http.post(
            f"{base}/webhooks/zalo/webhook", data=body, headers={"X-ZEvent-Signature": sign(body)}
        ) as answer,
    ):
        assert answer.status == 503
    assert bot.received == []


def test_credentials_yml_registers_the_zalo_channel_from_environment(monkeypatch):
    from rasa.core.run import create_http_input_channels

    from bot.channels import CREDENTIAL_ENV_VARS

    for name in CREDENTIAL_ENV_VARS:
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("ZALO_APP_ID", APP_ID)
    monkeypatch.setenv("ZALO_OA_SECRET_KEY", OA_SECRET)
    channels = create_http_input_channels(None, str(PROJECT_ROOT / "credentials.yml"))
    [zalo] = [channel for channel in channels if isinstance(channel, ZaloInput)]
    assert zalo.url_prefix() == "zalo"
    assert (zalo.config.app_id, zalo.config.oa_secret_key) == (APP_ID, OA_SECRET)
    assert zalo.config.app_secret_key == ""  # unset: the channel would refuse to refresh
    assert zalo.config.token_file == PROJECT_ROOT / "var" / "zalo_tokens.json"
    assert zalo.config.api_base == "https://openapi.zalo.me"


def test_every_secret_in_credentials_yml_has_an_empty_default():
    # scripts/stack.py defaults CREDENTIAL_ENV_VARS to "": a variable missing from that list
    # would make Rasa refuse to start on a machine without that channel's secrets.
    from bot.channels import CREDENTIAL_ENV_VARS

    lines = (PROJECT_ROOT / "credentials.yml").read_text(encoding="utf-8").splitlines()
    values = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    assert set(re.findall(r"\$\{(\w+)\}", values)) == set(CREDENTIAL_ENV_VARS)


class RestBridge:
    """`on_new_message` handing the turn to a real Rasa server through its REST channel."""

    def __init__(self, rasa_url: str, http: aiohttp.ClientSession) -> None:
        self.url = f"{rasa_url}/webhooks/rest/webhook"
        self.http = http
        self.texts: list[str] = []

    async def __call__(self, message) -> None:
        self.texts.append(message.text)
        payload = {"sender": message.sender_id, "message": message.text}
        async with self.http.post(self.url, json=payload, timeout=90) as answer:
            responses = await answer.json()
        for response in responses:
            response.pop("recipient_id", None)
            await message.output_channel.send_response(message.sender_id, response)


@pytest.mark.rasa
async def test_real_rasa_server_and_trained_model_through_the_zalo_channel(
    running_stack, credentials, fake_zalo: FakeZaloApi
):
    async with aiohttp.ClientSession() as http:
        # The real server read credentials.yml: both channels are mounted, closed without secrets.
        for name in ("zalo", "facebook"):
            async with http.post(f"{running_stack.rasa_url}/webhooks/{name}/webhook") as answer:
                assert answer.status == 503, name

        channel = ZaloInput.from_credentials(credentials)
        bridge = RestBridge(running_stack.rasa_url, http)
        user = f"zalo-{uuid.uuid4().hex[:12]}"
        async with serve_blueprint(channel.blueprint(bridge), "/webhooks/zalo") as base:
            zalo = Zalo(channel, FakeBot(), fake_zalo, f"{base}/webhooks/zalo/webhook", http)

            async def turn(text: str) -> list[str]:
                before = len(fake_zalo.delivered)
                await zalo.send(zalo_event(text, user=user))
                replies = fake_zalo.delivered[before:]
                assert replies and {to for to, _ in replies} == {user}, replies
                return [reply for _, reply in replies]

            assert any("5 ngày làm việc" in text for text in await turn("đổi bằng lái mất bao lâu"))
            # Which certificate is unclear (after a licence, "cấp lại giấy phép" is the licence's
            # reissue): several procedures, a numbered list.
            [choices] = await turn("cấp lại giấy chứng nhận")
            assert re.search(r"^2\. ", choices, re.MULTILINE)  # the buttons, numbered by Zalo
            answer = "\n".join(await turn("2"))
        await channel.close()
    assert bridge.texts[-1].startswith("/choose_procedure")
    second_code = json.loads(bridge.texts[-1].removeprefix("/choose_procedure"))["procedure_code"]
    assert f"Mã TTHC: {second_code}" in answer
    assert all(len(text) <= 2000 for _, text in fake_zalo.delivered)
    assert not any(text.startswith("Xin lỗi, hệ thống") for _, text in fake_zalo.delivered)


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("ngắn", 2000, ["ngắn"]),
        ("   ", 2000, []),
        ("a" * 25, 10, ["a" * 10, "a" * 10, "a" * 5]),  # no boundary at all: hard cuts
        ("Dòng một dài.\nDòng hai. Câu ba", 20, ["Dòng một dài.", "Dòng hai. Câu ba"]),
        ("Câu một rồi. Câu hai nữa. Ba", 20, ["Câu một rồi.", "Câu hai nữa. Ba"]),
    ],
)
def test_split_text_prefers_natural_boundaries(text: str, limit: int, expected: list[str]):
    assert split_text(text, limit) == expected
