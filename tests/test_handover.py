"""Hand-over to hotline staff: the store's rules, the staff inbox API (session, CSRF), the
widget's token and updates, the hand-over action within and outside office hours."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update

from procedures_db import handover
from procedures_db.db import get_engine
from procedures_db.handover_models import Handover
from procedures_db.settings import get_settings
from tests.handover_support import (
    MONDAY_10,
    PROFILE,
    SUNDAY_10,
    FakeRasa,
    run_handoff,
    schema_only_db,
    signed_in_staff,
    web_client,
)
from tests.staff_support import bot, save_conversation, user

NOW = datetime(2026, 12, 1, 3, 0)


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    url = schema_only_db(tmp_path)
    profile = tmp_path / "province.yml"
    profile.write_text(PROFILE, encoding="utf-8")
    monkeypatch.setenv("PROCEDURES_DB_URL", url)
    monkeypatch.setenv("PROVINCE_PROFILE", str(profile))
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


@pytest.fixture
def engine(db_url):
    return get_engine(db_url)


@pytest.fixture
async def rasa():
    fake = FakeRasa()
    fake.url = await fake.start()
    yield fake
    await fake.server.close()


@pytest.fixture
async def staff(db_url, tmp_path, rasa):
    member = await signed_in_staff(db_url, tmp_path, rasa.url)
    yield member
    await member.client.close()


@pytest.fixture
async def citizen_client(db_url, tmp_path, rasa):
    client = await web_client(db_url, tmp_path, rasa.url)
    yield client
    await client.close()


def waiting(engine, sender: str, channel: str = "widget", **kwargs) -> handover.HandoverState:
    return handover.request_handover(
        sender,
        channel,
        procedure_code=kwargs.pop("code", "1.001193"),
        offer_callback=kwargs.pop("offer_callback", False),
        now=kwargs.pop("now", NOW),
        engine=engine,
    )


# --- the store ------------------------------------------------------------------------------------


def test_request_is_held_and_asking_again_changes_nothing(engine):
    first = waiting(engine, "web-a")
    again = waiting(engine, "web-a", now=NOW + timedelta(minutes=5))
    assert first.status == again.status == "waiting"
    assert again.waiting_since == NOW
    assert handover.record_citizen_message("web-a", "còn đó không?", now=NOW, engine=engine)
    assert handover.record_citizen_message("web-other", "xin chào", now=NOW, engine=engine) is None


def test_two_staff_claiming_at_once_one_wins(engine):
    waiting(engine, "web-race")
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def claim(username: str) -> None:
        barrier.wait()
        try:
            handover.claim("web-race", username, now=NOW, engine=engine)
            outcomes[username] = "won"
        except handover.HandoverError as error:
            outcomes[username] = error.code

    threads = [threading.Thread(target=claim, args=(name,)) for name in ("hoa", "binh")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["already_claimed", "won"]
    winner = next(name for name, outcome in outcomes.items() if outcome == "won")
    assert handover.get_state("web-race", engine=engine).claimed_by == winner


def test_reply_needs_the_claim_and_the_bot_answers_after_the_hand_back(engine):
    waiting(engine, "web-b")
    with pytest.raises(handover.HandoverError) as refused:
        handover.add_staff_reply("web-b", "hoa", "Chào bạn", now=NOW, engine=engine)
    assert refused.value.code == "not_yours"
    handover.claim("web-b", "hoa", now=NOW, engine=engine)
    handover.add_staff_reply("web-b", "hoa", "Chào bạn", now=NOW, engine=engine)
    state = handover.end_handover("web-b", "hoa", to_bot=True, now=NOW, engine=engine)
    assert state.status == "returned" and not state.held
    assert state.procedure_code == "1.001193"
    assert handover.record_citizen_message("web-b", "lệ phí?", now=NOW, engine=engine) is None
    actions = [(action, who) for action, who, _at in handover.audit_trail("web-b", engine=engine)]
    assert actions == [("request", None), ("claim", "hoa"), ("reply", "hoa"), ("return", "hoa")]


def test_closed_zalo_reply_window_is_refused_with_a_note(engine):
    waiting(engine, "zalo-1", channel="zalo")
    handover.claim("zalo-1", "hoa", now=NOW, engine=engine)
    later = NOW + timedelta(hours=49)
    with pytest.raises(handover.HandoverError) as refused:
        handover.add_staff_reply("zalo-1", "hoa", "Chào bạn", now=later, engine=engine)
    assert refused.value.code == "reply_window_closed"
    assert "48 giờ" in refused.value.message
    handover.record_citizen_message("zalo-1", "tôi vẫn ở đây", now=later, engine=engine)
    sent = handover.add_staff_reply("zalo-1", "hoa", "Chào bạn", now=later, engine=engine)
    assert sent.delivery == "pending"


def test_callback_consent_then_number_masked_and_deleted_by_retention(engine):
    waiting(engine, "web-c", offer_callback=True)
    turn = handover.record_citizen_message("web-c", "0912345678", now=NOW, engine=engine)
    assert turn.reply is None  # no consent yet: the number is not taken as a call-back number
    assert handover.get_state("web-c", engine=engine).callback_phone is None
    turn = handover.record_citizen_message("web-c", handover.CALLBACK_YES, now=NOW, engine=engine)
    assert turn.reply == handover.ASK_PHONE
    assert handover.record_citizen_message("web-c", "abc", now=NOW, engine=engine).reply == (
        handover.PHONE_INVALID
    )
    turn = handover.record_citizen_message("web-c", "số tôi 0912 345 678", now=NOW, engine=engine)
    assert "•••••••678" in turn.reply and "0912" not in turn.reply
    assert handover.get_state("web-c", engine=engine).callback_phone == "0912345678"
    report = handover.purge(now=NOW + timedelta(days=31), days=180, callback_days=30, engine=engine)
    assert report.callback_numbers == 1
    assert handover.get_state("web-c", engine=engine).callback_phone is None


def test_declining_the_call_back(engine):
    waiting(engine, "web-d", offer_callback=True)
    turn = handover.record_citizen_message("web-d", handover.CALLBACK_NO, now=NOW, engine=engine)
    assert turn.reply == handover.CALLBACK_DECLINED
    assert handover.get_state("web-d", engine=engine).callback_state == "declined"


def test_outgoing_messages_are_taken_once(engine):
    waiting(engine, "fb-1", channel="facebook")
    handover.claim("fb-1", "hoa", now=NOW, engine=engine)  # the claim notice is one message
    first = handover.take_outgoing("facebook", now=NOW, engine=engine)
    second = handover.take_outgoing("facebook", now=NOW, engine=engine)
    assert [m.text for m in first] == [handover.CLAIMED_NOTICE]
    assert second == []
    # A replica that died mid-send: another takes the message again after a while.
    retried = handover.take_outgoing("facebook", now=NOW + timedelta(minutes=2), engine=engine)
    assert [m.id for m in retried] == [first[0].id]


# --- the staff API -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/staff/api/session"),
        ("GET", "/staff/api/handovers"),
        ("GET", "/staff/api/handovers/web-x"),
        ("POST", "/staff/api/handovers/web-x/claim"),
        ("POST", "/staff/api/handovers/web-x/messages"),
        ("POST", "/staff/api/handovers/web-x/close"),
    ],
)
async def test_no_session_gets_401(citizen_client, engine, method, path):
    waiting(engine, "web-x")
    response = await citizen_client.request(method, path, json={"text": "x"})
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "not_signed_in"
    assert handover.get_state("web-x", engine=engine).status == "waiting"


@pytest.mark.parametrize("token", [None, "wrong-token"])
async def test_wrong_or_missing_csrf_token_gets_403(staff, engine, token):
    waiting(engine, "web-y")
    status, body = await staff.post("/staff/api/handovers/web-y/claim", csrf=token)
    assert status == 403 and body["error"]["code"] == "csrf"
    assert handover.get_state("web-y", engine=engine).status == "waiting"


async def test_two_staff_claiming_through_the_api_one_wins(staff, db_url, tmp_path, rasa, engine):
    other = await signed_in_staff(db_url, tmp_path, rasa.url)
    try:
        waiting(engine, "web-z")
        path = "/staff/api/handovers/web-z/claim"
        results = await asyncio.gather(staff.post(path), other.post(path))
    finally:
        await other.client.close()
    assert sorted(status for status, _ in results) == [200, 409]
    winner = staff if results[0][0] == 200 else other
    assert handover.get_state("web-z", engine=engine).claimed_by == winner.username


async def test_widget_conversation_through_the_inbox(staff, citizen_client, rasa, engine):
    # The citizen's first message gets the conversation token.
    response = await citizen_client.post("/api/chat", json={"sender": "web-e", "message": "chào"})
    first = await response.json()
    token = first["token"]
    assert first["messages"] == [{"text": "Trợ lý: chào"}]
    waiting(engine, "web-e")  # what the action does when the citizen asks for a person

    status, listing = await staff.get("/staff/api/handovers")
    assert status == 200
    entry = next(item for item in listing["handovers"] if item["sender"] == "web-e")
    assert entry["channel"] == "widget" and entry["status"] == "waiting"
    assert entry["claimed_by"] is None and entry["waiting_since"].endswith("Z")

    # Held: the message reaches the inbox (masked for staff), not the bot.
    response = await citizen_client.post(
        "/api/chat",
        json={"sender": "web-e", "token": token, "message": "số tôi là 0912345678"},
    )
    assert (await response.json())["messages"] == []
    assert rasa.texts == ["chào"]
    _, listing = await staff.get("/staff/api/handovers")
    entry = next(item for item in listing["handovers"] if item["sender"] == "web-e")
    assert entry["last_message"] == "số tôi là [số điện thoại]"
    status, detail = await staff.get("/staff/api/handovers/web-e")
    assert detail["status"] == "waiting"
    assert detail["messages"][-1]["text"] == "số tôi là [số điện thoại]"

    assert (await staff.post("/staff/api/handovers/web-e/claim"))[0] == 200
    status, _ = await staff.post("/staff/api/handovers/web-e/messages", {"text": "Chào bạn"})
    assert status == 201
    updates = await citizen_client.get(f"/api/chat/updates?sender=web-e&token={token}")
    body = await updates.json()
    assert [(m["from"], m["text"]) for m in body["messages"]] == [
        ("bot", handover.CLAIMED_NOTICE),
        ("staff", "Chào bạn"),
    ]
    assert body["held"] is True
    last = body["messages"][-1]["id"]
    assert (await staff.post("/staff/api/handovers/web-e/release"))[0] == 200
    _, detail = await staff.get("/staff/api/handovers/web-e")
    assert [(a["action"], a["staff"]) for a in detail["audit"]] == [
        ("request", None),
        ("claim", staff.username),
        ("reply", staff.username),
        ("return", staff.username),
    ]
    assert all(a["at"].endswith("Z") for a in detail["audit"])
    later = await citizen_client.get(f"/api/chat/updates?sender=web-e&token={token}&after={last}")
    assert [m["text"] for m in (await later.json())["messages"]] == [handover.RETURNED_NOTICE]

    response = await citizen_client.post(
        "/api/chat", json={"sender": "web-e", "token": token, "message": "lệ phí bao nhiêu"}
    )
    assert (await response.json())["messages"] == [{"text": "Trợ lý: lệ phí bao nhiêu"}]


async def test_reading_or_writing_another_senders_conversation_gets_403(citizen_client, rasa):
    response = await citizen_client.post("/api/chat", json={"sender": "web-f", "message": "chào"})
    token = (await response.json())["token"]
    for query in ("sender=web-f", "sender=web-f&token=guess", f"sender=web-g&token={token}"):
        response = await citizen_client.get(f"/api/chat/updates?{query}")
        assert response.status == 403, query
    for body in ({}, {"token": "guess"}):
        response = await citizen_client.post(
            "/api/chat", json={"sender": "web-f", "message": "chen ngang", **body}
        )
        assert response.status == 403
        assert "Mã cuộc trò chuyện không hợp lệ" in (await response.json())["message"]
    assert rasa.texts == ["chào"]


async def test_staff_pick_up_a_conversation_from_the_unanswered_list(staff, engine, tmp_path):
    status, _ = await staff.get("/staff/api/handovers/web-nobody")
    assert status == 404
    started = time.time() - 60
    await save_conversation(
        f"sqlite:///{tmp_path / 'tracker.sqlite3'}",
        "web-h",
        [user("gọi 0912345678 giúp tôi", "nlu_fallback", started), bot("Xin lỗi", started + 1)],
    )
    page = await (await staff.client.get("/staff/unanswered")).text()
    assert 'href="/staff/inbox?sender=web-h"' in page
    response = await staff.client.get("/staff/inbox?sender=web-h")
    assert response.status == 200 and "/staff/static/inbox.js" in await response.text()

    status, detail = await staff.get("/staff/api/handovers/web-h")
    assert (status, detail["status"]) == (200, "none")
    assert [(m["from"], m["text"]) for m in detail["messages"]] == [
        ("citizen", "gọi [số điện thoại] giúp tôi"),
        ("bot", "Xin lỗi"),
    ]
    status, claimed = await staff.post("/staff/api/handovers/web-h/claim")
    assert (status, claimed["status"], claimed["channel"]) == (200, "claimed", "widget")
    assert claimed["claimed_by"] == staff.username
    assert handover.record_citizen_message("web-h", "vâng", now=NOW, engine=engine) is not None


async def test_the_inbox_page_needs_sign_in(citizen_client):
    response = await citizen_client.get("/staff/inbox", allow_redirects=False)
    assert response.status == 303


# --- the action -----------------------------------------------------------------------------------


async def test_within_office_hours_a_person_will_answer_here(db_url, engine, monkeypatch):
    monkeypatch.setattr("actions.human_handoff.now_utc", lambda: MONDAY_10)
    messages, _ = await run_handoff("zalo-9", "zalo", "cho tôi gặp cán bộ", code="1.001193")
    assert "Cán bộ sẽ trả lời bạn ngay tại đây" in messages[0]["text"]
    assert "0236 1022" in messages[0]["text"]
    assert not messages[0]["buttons"]
    state = handover.get_state("zalo-9", engine=engine)
    assert (state.channel, state.status, state.procedure_code) == ("zalo", "waiting", "1.001193")
    assert state.callback_state is None


async def test_outside_office_hours_the_call_back_offer(db_url, engine, monkeypatch):
    monkeypatch.setattr("actions.human_handoff.now_utc", lambda: SUNDAY_10)
    messages, _ = await run_handoff("web-i", "rest", "cho tôi gặp người thật")
    text = messages[0]["text"]
    assert "ngoài giờ làm việc" in text
    assert "thứ Hai – thứ Sáu, 07:30–11:30 và 13:30–17:00" in text
    assert "từ 07:30 ngày mai" in text
    assert "để lại số điện thoại" in text and "xoá sau 30 ngày" in text
    assert [b["payload"] for b in messages[0]["buttons"]] == [
        handover.CALLBACK_YES,
        handover.CALLBACK_NO,
    ]
    state = handover.get_state("web-i", engine=engine)
    assert (state.channel, state.status, state.callback_state) == ("widget", "waiting", "offered")


async def test_store_down_gives_the_hotline_instead(tmp_path, monkeypatch):
    profile = tmp_path / "province.yml"
    profile.write_text(PROFILE, encoding="utf-8")
    monkeypatch.setenv("PROVINCE_PROFILE", str(profile))
    monkeypatch.setenv("PROCEDURES_DB_URL", f"sqlite:///{tmp_path / 'no-schema.sqlite3'}")
    get_settings.cache_clear()
    try:
        messages, _ = await run_handoff("web-j", "rest", "gặp cán bộ")
    finally:
        get_settings.cache_clear()
    assert "Đường dây nóng: 0236 1022" in messages[0]["text"]


def test_old_hand_overs_are_purged(engine):
    waiting(engine, "web-old")
    handover.claim("web-old", "hoa", now=NOW, engine=engine)
    handover.end_handover("web-old", "hoa", to_bot=False, now=NOW, engine=engine)
    with engine.begin() as connection:
        connection.execute(update(Handover).values(ended_at=NOW))
    report = handover.purge(
        now=NOW + timedelta(days=181), days=180, callback_days=30, engine=engine
    )
    assert report.handovers == 1 and report.messages == 2
    assert handover.get_state("web-old", engine=engine) is None


def test_retention_script_deletes_old_call_back_numbers(engine, db_url, capsys):
    from scripts.retention import purge_handovers

    long_ago = datetime.utcnow() - timedelta(days=31)
    waiting(engine, "web-k", offer_callback=True, now=long_ago)
    handover.record_citizen_message("web-k", "có", now=long_ago, engine=engine)
    handover.record_citizen_message("web-k", "0912345678", now=long_ago, engine=engine)
    purge_handovers(db_url, days=180, callback_days=30)
    assert "Deleted 1 call-back numbers" in capsys.readouterr().out
    state = handover.get_state("web-k", engine=engine)
    assert (state.callback_phone, state.callback_state) == (None, "deleted")


# --- the hold check's cache (bot/channels/handover.HoldCache) ------------------------------------

HOLD_IN_OTHER_PROCESS = """
import sys
from datetime import datetime
from procedures_db import handover
from procedures_db.db import get_engine
engine = get_engine(sys.argv[1])
if sys.argv[2] == "request":
    handover.request_handover(sys.argv[3], "widget", procedure_code=None,
                              offer_callback=False, now=datetime.utcnow(), engine=engine)
else:
    handover.claim(sys.argv[3], "staff", now=datetime.utcnow(), engine=engine)
    handover.end_handover(sys.argv[3], "staff", to_bot=sys.argv[2] == "return",
                          now=datetime.utcnow(), engine=engine)
"""


def _in_other_process(db_url: str, action: str, sender: str) -> None:
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-c", HOLD_IN_OTHER_PROCESS, db_url, action, sender], check=True
    )


async def test_hold_cache_sees_holds_set_and_released_elsewhere(db_url, engine, monkeypatch):
    from bot.channels import handover as channel_handover

    monkeypatch.setenv("TTHC_RASA_PATCHES", "all")
    monkeypatch.setattr(channel_handover, "_CACHES", {})
    queries: list[str] = []
    real = channel_handover._call

    async def counted(function, *args, **kwargs):
        queries.append(function.__name__)
        return await real(function, *args, **kwargs)

    monkeypatch.setattr(channel_handover, "_call", counted)
    held_turn = channel_handover.held_turn
    cache = channel_handover.hold_cache(db_url)
    assert cache is not None

    # Nothing held: after the first read, no query per message.
    assert await held_turn("citizen-a", "xin chào") is None
    assert await held_turn("citizen-a", "lệ phí?") is None
    assert await held_turn("citizen-b", "xin chào") is None
    assert queries == []

    # Another process (the action server) asks for a person: the next message is held.
    _in_other_process(db_url, "request", "citizen-a")
    assert await held_turn("citizen-a", "cho tôi gặp cán bộ") is not None
    assert await held_turn("citizen-a", "alo") is not None
    assert await held_turn("citizen-b", "xin chào") is None  # others still answered
    assert [m.author for m in handover.messages("citizen-a", engine=engine)].count("citizen") == 2

    # Released in another process (handed back, or closed): the bot answers the next message.
    _in_other_process(db_url, "return", "citizen-a")
    assert await held_turn("citizen-a", "cảm ơn") is None
    _in_other_process(db_url, "request", "citizen-a")
    assert await held_turn("citizen-a", "lại cần cán bộ") is not None
    _in_other_process(db_url, "close", "citizen-a")
    assert await held_turn("citizen-a", "xong rồi") is None

    # In this process, on another connection (the web server's staff actions in one process).
    handover.request_handover(
        "citizen-b",
        "widget",
        procedure_code=None,
        offer_callback=False,
        now=datetime.utcnow(),
        engine=engine,
    )
    assert await held_turn("citizen-b", "alo") is not None
    handover.claim("citizen-b", "staff", now=datetime.utcnow(), engine=engine)
    handover.end_handover("citizen-b", "staff", to_bot=True, now=datetime.utcnow(), engine=engine)
    assert await held_turn("citizen-b", "alo") is None
    queued = len(queries)
    assert await held_turn("citizen-b", "còn gì nữa") is None
    assert len(queries) == queued  # unchanged again: no query


async def test_hold_check_without_the_cache_asks_every_time(db_url, engine, monkeypatch):
    from bot.channels import handover as channel_handover

    monkeypatch.setenv("TTHC_RASA_PATCHES", "validator")
    assert channel_handover.hold_cache(db_url) is None
    assert channel_handover.hold_cache("postgresql://u@h/db") is None
    monkeypatch.setenv("TTHC_RASA_PATCHES", "all")
    assert channel_handover.hold_cache("postgresql://u@h/db") is None
    _in_other_process(db_url, "request", "citizen-c")
    monkeypatch.setenv("TTHC_RASA_PATCHES", "validator")
    assert await channel_handover.held_turn("citizen-c", "alo") is not None
