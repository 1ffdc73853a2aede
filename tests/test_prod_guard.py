"""The production guard without a Rasa server: limits, apology, buffering, log masking."""

from __future__ import annotations

import asyncio
import logging

import pytest
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

from bot.channels.gate import TurnGate
from bot.production import guard as guard_module
from bot.production import logmask
from bot.production.guard import (
    RATE_LIMITED_REPLY,
    TOO_LONG_REPLY,
    SenderRateLimiter,
    apology_text,
    guard,
    record_failure,
)
from procedures_db.settings import get_settings


@pytest.fixture
def profile(tmp_path, monkeypatch):
    path = tmp_path / "province.yml"
    monkeypatch.setenv("PROVINCE_PROFILE", str(path))
    get_settings.cache_clear()
    apology_text.cache_clear()
    yield path
    get_settings.cache_clear()
    apology_text.cache_clear()


def _message(text: str, sender: str = "citizen-1") -> tuple[UserMessage, CollectingOutputChannel]:
    output = CollectingOutputChannel()
    return UserMessage(text, output, sender), output


def _bot(replies: list[str], failure: str | None = None, error: Exception | None = None):
    async def on_new_message(message: UserMessage) -> None:
        for reply in replies:
            await message.output_channel.send_response(message.sender_id, {"text": reply})
        if failure:
            record_failure(failure)
        if error:
            raise error

    return on_new_message


def _texts(output: CollectingOutputChannel) -> list[str]:
    return [m["text"] for m in output.messages]


def test_apology_names_the_hotline_or_the_portal(profile) -> None:
    profile.write_text("public_administration_centre:\n  hotline: '1022'\n", encoding="utf-8")
    assert "đường dây nóng 1022" in apology_text()
    apology_text.cache_clear()
    profile.write_text("province_name: null\n", encoding="utf-8")
    assert "https://dichvucong.gov.vn" in apology_text()


async def test_replies_pass_through_unchanged(profile) -> None:
    message, output = _message("lệ phí bao nhiêu")
    await guard(_bot(["Lệ phí: 50.000 đồng", "Bạn cần gì thêm?"]), SenderRateLimiter(0))(message)
    assert _texts(output) == ["Lệ phí: 50.000 đồng", "Bạn cần gì thêm?"]


@pytest.mark.parametrize(
    ("bot", "expected_before_apology"),
    [
        (_bot([]), []),  # silence
        (_bot(["Thủ tục: ..."], failure="action"), ["Thủ tục: ..."]),  # partial answer kept
        (_bot(["Xin chào!"], failure="store"), []),  # answer without history dropped
        (_bot(["..."], error=RuntimeError("boom")), ["..."]),
    ],
)
async def test_failed_or_silent_turn_ends_with_the_apology(
    profile, bot, expected_before_apology
) -> None:
    message, output = _message("lệ phí bao nhiêu")
    await guard(bot, SenderRateLimiter(0))(message)
    assert _texts(output) == [*expected_before_apology, apology_text()]


async def test_restart_needs_no_reply(profile) -> None:
    message, output = _message("/restart")
    await guard(_bot([]), SenderRateLimiter(0))(message)
    assert output.messages == []


async def test_limits_answer_politely_without_calling_the_bot(profile) -> None:
    calls = []

    async def bot(message: UserMessage) -> None:
        calls.append(message.text)
        await message.output_channel.send_response(message.sender_id, {"text": "ok"})

    guarded = guard(bot, SenderRateLimiter(2))
    replies = []
    for _ in range(3):
        message, output = _message("xin chào")
        await guarded(message)
        replies += _texts(output)
    assert replies == ["ok", "ok", RATE_LIMITED_REPLY]
    other, output = _message("xin chào", sender="citizen-2")
    await guarded(other)
    assert _texts(output) == ["ok"]

    long_message, output = _message("a" * 2001, sender="citizen-3")
    await guarded(long_message)
    assert _texts(output) == [TOO_LONG_REPLY]
    assert len(calls) == 3


@pytest.mark.parametrize(("slots", "most_at_once"), [(2, 2), (0, 6)])
async def test_turn_gate_admits_turns_in_arrival_order(profile, slots, most_at_once) -> None:
    running, started, peak = set(), [], []

    async def bot(message: UserMessage) -> None:
        running.add(message.sender_id)
        started.append(message.sender_id)
        peak.append(len(running))
        await asyncio.sleep(0.01)
        running.discard(message.sender_id)
        await message.output_channel.send_response(message.sender_id, {"text": "ok"})

    guarded = guard(bot, SenderRateLimiter(0), gate=TurnGate(slots))
    messages = [_message("lệ phí bao nhiêu", sender=f"citizen-{i}") for i in range(6)]
    await asyncio.gather(*(guarded(message) for message, _ in messages))
    assert max(peak) == most_at_once
    assert started == [f"citizen-{i}" for i in range(6)]
    assert all(_texts(output) == ["ok"] for _, output in messages)


async def test_zalo_and_messenger_turns_pass_the_same_gate(profile, monkeypatch) -> None:
    from bot.channels import delivery

    class Collecting(delivery.CountingOutput):
        async def send_text_message(self, recipient_id: str, text: str, **kwargs) -> None:
            self.produced += 1

    running, peak = set(), []

    async def bot(message: UserMessage) -> None:
        running.add(message.sender_id)
        peak.append(len(running))
        await asyncio.sleep(0.01)
        running.discard(message.sender_id)
        await message.output_channel.send_text_message(message.sender_id, "ok")

    gate = TurnGate(1)
    monkeypatch.setattr(delivery, "process_gate", lambda: gate)
    outputs = [Collecting() for _ in range(4)]
    await asyncio.gather(
        *(
            delivery.answer_user(bot, output, UserMessage("phí bao nhiêu", output, f"zalo-{i}"))
            for i, output in enumerate(outputs)
        )
    )
    assert max(peak) == 1
    assert [o.produced for o in outputs] == [1, 1, 1, 1]


async def test_rate_limit_falls_back_to_local_counting_when_redis_fails() -> None:
    from scripts.stack import free_port

    limiter = SenderRateLimiter(1, f"redis://127.0.0.1:{free_port()}/1")  # nothing listens
    assert await limiter.allow("a") is True
    assert await limiter.allow("a") is False


def test_action_failure_log_marks_the_turn() -> None:
    failures: list[str] = []
    token = guard_module._FAILURES.set(failures)
    try:
        guard_module.install_action_failure_hook()
        logging.getLogger("rasa.core.processor").error(
            "Encountered an exception while running action 'action_answer_procedure'."
        )
    finally:
        guard_module._FAILURES.reset(token)
    assert failures == [guard_module.ACTION_FAILURE]


def test_log_records_are_masked(caplog) -> None:
    previous = logging.getLogRecordFactory()
    logmask.install()
    try:
        with caplog.at_level(logging.INFO):
            logging.getLogger("tthc.test").info(
                "message of %s: CCCD %s, mail %s", "0912345678", "012345678901", "an@example.vn"
            )
    finally:
        logging.setLogRecordFactory(previous)
    text = caplog.records[-1].getMessage()
    assert "0912345678" not in text and "012345678901" not in text and "an@example.vn" not in text
    assert "[số điện thoại]" in text and "[số CCCD/CMND]" in text and "[email]" in text


def test_production_profile_refuses_to_run_without_token_or_lock_store(monkeypatch) -> None:
    from scripts.prod import ProdStack

    for name in ("RASA_API_TOKEN", "LOCK_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="RASA_API_TOKEN"):
            ProdStack(replica_ports=[1]).check_settings()
        with pytest.raises(RuntimeError, match="LOCK_STORE_URL"):
            ProdStack(replica_ports=[1], env={"RASA_API_TOKEN": "x"}).check_settings()
        ProdStack(
            replica_ports=[1], env={"RASA_API_TOKEN": "x", "LOCK_STORE_URL": "redis://h/1"}
        ).check_settings()
    finally:
        get_settings.cache_clear()
