"""Custom actions against the real procedures database, one conversation turn at a time.

`Chat` plays the Rasa side: it routes each intent the way data/rules does, runs the action with
a real `Tracker` and `CollectingDispatcher`, and keeps the slots the actions set.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import lookup
from actions.disambiguation import choose_payload, offer
from actions.fallback import ActionDeny, ActionFallback, ActionOutOfScope, only_unsure_of_current
from actions.feedback import ActionFeedback
from actions.human_handoff import ActionHumanHandoff
from actions.procedure_answers import ActionAnswerProcedure, Target, context_of, facts_for
from actions.questions import Fact
from actions.smalltalk import ActionAffirm, ActionGreet, ActionThank
from procedures_db.queries import get_procedure
from procedures_db.resolver import Candidate
from procedures_db.settings import PROJECT_ROOT, get_settings
from scripts.eval_bot import reply_of

DOMAIN = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
ACTIONS = {
    a.name(): a
    for a in (
        ActionAnswerProcedure(),
        ActionFallback(),
        ActionOutOfScope(),
        ActionDeny(),
        ActionHumanHandoff(),
        ActionFeedback(),
        ActionGreet(),
        ActionThank(),
        ActionAffirm(),
    )
}
LICENCE = "3.000347"  # Đổi giấy phép lái xe


def rule_routes() -> dict[str, str]:
    """intent -> action of every one-turn rule in data/rules."""
    routes = {}
    for path in sorted((PROJECT_ROOT / "data" / "rules").glob("*.yml")):
        for rule in yaml.safe_load(path.read_text(encoding="utf-8"))["rules"]:
            intent, action = rule["steps"][0]["intent"], rule["steps"][1]["action"]
            routes[intent] = action
    return routes


ROUTES = rule_routes()


def fragment(text: str, piece: str) -> dict[str, Any]:
    start = text.index(piece)
    return {"entity": "procedure", "value": piece, "start": start, "end": start + len(piece)}


class Chat:
    """One citizen's conversation: slots carried from turn to turn."""

    def __init__(self, slots: dict[str, Any] | None = None) -> None:
        self.slots: dict[str, Any] = {"fallback_count": 0.0, **(slots or {})}
        self.messages: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []  # as Rasa sends them: the slots set so far

    async def say(
        self, text: str, intent: str, *, pieces: tuple[str, ...] = (), **entities: str
    ) -> str:
        """One turn. `pieces`: `procedure` entity fragments, located in the text as the NLU
        would report them; keyword arguments: whole entities by name."""
        action_name = ROUTES[intent]
        if action_name.startswith("utter_"):
            self.messages = [{"text": DOMAIN["responses"][action_name][0]["text"]}]
            return self.messages[0]["text"]
        latest = {
            "text": text,
            "intent": {"name": intent, "confidence": 0.9},
            "entities": [{"entity": name, "value": value} for name, value in entities.items()]
            + [fragment(text, piece) for piece in pieces],
        }
        tracker = Tracker(
            "citizen", dict(self.slots), latest, list(self.events), False, None, {}, "action_listen"
        )
        dispatcher = CollectingDispatcher()
        events = await ACTIONS[action_name].run(dispatcher, tracker, DOMAIN)
        for event in events:
            if event["event"] == "slot":
                assert event["name"] in DOMAIN["slots"], f"slot {event['name']} not in domain.yml"
                self.slots[event["name"]] = event["value"]
                self.events.append(event)
        # A response named by the action is rendered by Rasa from the domain.
        self.messages = [
            {**m, "text": DOMAIN["responses"][m["response"]][0]["text"]} if m.get("response") else m
            for m in dispatcher.messages
        ]
        assert self.messages, f"{action_name} sent nothing for {text!r}"
        return "\n".join(m.get("text") or "" for m in self.messages)

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return [b for m in self.messages for b in m.get("buttons") or []]


def use_profile(path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("PROVINCE_PROFILE", str(path))
    get_settings.cache_clear()
    return path


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Every test reads the environment it set up, and leaves no cached settings behind."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def empty_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A province that published nothing but the national portal (the default profile)."""
    return use_profile(tmp_path / "empty.yml", "province_name: null\n", monkeypatch)


@pytest.fixture
def profile_with_hotline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_profile(
        tmp_path / "province.yml",
        "province_name: Tỉnh Thử\n"
        "online_portal_url: https://dichvucong.thu.gov.vn\n"
        "public_administration_centre:\n"
        "  name: Trung tâm Phục vụ hành chính công tỉnh Thử\n"
        "  address: 1 Đường Một, TP Thử\n"
        "  opening_hours: 7h30-17h00 thứ Hai đến thứ Sáu\n"
        "  hotline: 1900 0000\n"
        "commune_one_stop: Bộ phận Một cửa UBND xã, phường\n",
        monkeypatch,
    )


def test_every_question_intent_has_a_rule() -> None:
    for intent in (
        "ask_procedure_info",
        "ask_online_level",
        "ask_processing_time",
        "ask_submission_place",
        "ask_fee",
        "ask_documents",
        "ask_steps",
        "ask_requirements",
        "choose_procedure",
    ):
        assert ROUTES[intent] == "action_answer_procedure"
    assert ROUTES["nlu_fallback"] == "action_fallback"
    assert ROUTES["ask_human"] == "action_human_handoff"


async def test_processing_time_per_method(use_full_db: str) -> None:
    reply = await Chat().say(
        "đổi giấy phép lái xe mất bao lâu", "ask_processing_time", procedure="đổi giấy phép lái xe"
    )
    assert "Mã TTHC: 3.000347" in reply
    assert "Đổi giấy phép lái xe" in reply
    # Both methods take the same time: said once.
    assert "Thời gian giải quyết: 5 ngày làm việc\n" in reply
    assert "dichvucong.gov.vn" in reply  # source link


async def test_fee_shows_the_amount_never_free(use_full_db: str) -> None:
    reply = await Chat().say("đổi bằng lái hết bao nhiêu tiền", "ask_fee", procedure_code=LICENCE)
    assert "Mã TTHC: 3.000347" in reply
    assert "135.000 đồng/lần" in reply
    assert "miễn phí" not in reply.lower()


async def test_documents_numbered_with_quantities(use_full_db: str) -> None:
    chat = Chat()
    reply = await chat.say("đổi gplx cần giấy tờ gì", "ask_documents", procedure_code=LICENCE)
    assert "1. Đề nghị đổi giấy phép lái xe" in reply
    assert "(1 bản chính)" in reply
    assert "2 giấy tờ cho trường hợp riêng" in reply  # the passport, the confiscated licence
    more, helpful, wrong = chat.buttons
    assert (more["title"], helpful["title"], wrong["title"]) == (
        "Xem đầy đủ hồ sơ", "Hữu ích", "Chưa đúng"
    )  # fmt: skip
    full = await chat.say(more["payload"], "ask_documents", procedure_code=LICENCE)
    assert "Trường hợp riêng:" in full and "(1 bản sao)" in full
    assert "Xem đầy đủ hồ sơ" not in full


async def test_feedback_buttons_under_an_answer_are_thanked(
    use_full_db: str, profile_with_hotline: Path
) -> None:
    chat = Chat()
    await chat.say("đổi bằng lái mất bao lâu", "ask_processing_time", procedure_code=LICENCE)
    helpful, wrong = chat.buttons
    assert helpful["payload"] == '/feedback{"procedure_code":"3.000347","rating":"helpful"}'
    assert wrong["payload"] == '/feedback{"procedure_code":"3.000347","rating":"wrong"}'
    thanks = await chat.say(wrong["payload"], "feedback", procedure_code=LICENCE, rating="wrong")
    assert "ghi lại để cán bộ kiểm tra" in thanks and "1900 0000" in thanks
    assert await chat.say("hữu ích", "feedback", rating="helpful") == "Cảm ơn bạn đã góp ý!"


async def test_documents_start_with_papers_not_notes(use_full_db: str) -> None:
    reply = await Chat().say("đăng ký khai sinh cần giấy tờ gì", "ask_documents",
                             procedure_code="1.001193")  # fmt: skip
    lines = reply.splitlines()
    assert lines[1] == "Thành phần hồ sơ:"
    assert lines[2].startswith("1. Tờ khai đăng ký khai sinh")
    assert any("Giấy chứng sinh" in line for line in lines[2:6])
    assert "Trường hợp trẻ em bị bỏ rơi" not in reply  # a special case, behind the button
    assert "25 lưu ý" in reply and len(lines) <= 12


async def test_submission_place_from_record_and_profile(
    use_full_db: str, profile_with_hotline: Path
) -> None:
    reply = await Chat().say(
        "đổi bằng lái nộp ở đâu", "ask_submission_place", procedure_code=LICENCE
    )
    assert "Công an cấp Xã" in reply  # implementing agencies of the record
    assert "Bộ phận Một cửa UBND xã, phường" not in reply  # a ministry-level procedure
    assert "Nộp trực tuyến: https://dichvucong.thu.gov.vn" in reply


async def test_submission_place_of_a_commune_procedure(
    use_full_db: str, profile_with_hotline: Path
) -> None:
    reply = await Chat().say(
        "đăng ký khai sinh nộp ở đâu", "ask_submission_place", procedure_code="1.001193"
    )
    assert "Mã TTHC: 1.001193" in reply
    assert "Bộ phận Một cửa UBND xã, phường" in reply


async def test_online_level_in_plain_words(use_full_db: str) -> None:
    reply = await Chat().say(
        "đổi bằng lái có làm online được không, mức độ mấy",
        "ask_online_level",
        procedure_code=LICENCE,
    )
    assert "Mã TTHC: 3.000347" in reply
    assert "trực tuyến" in reply
    assert "mức độ 4 ≈ toàn trình, mức độ 3 ≈ một phần" in reply
    assert "https://dichvucong.gov.vn" in reply


async def test_steps_summarised(use_full_db: str) -> None:
    reply = await Chat().say("các bước đổi bằng lái", "ask_steps", procedure_code=LICENCE)
    assert "Các bước thực hiện:" in reply
    assert "Nộp hồ sơ" in reply
    assert len(reply) < 2000


async def test_missing_value_gives_the_hotline(
    use_full_db: str, profile_with_hotline: Path
) -> None:
    # The portal publishes no requirements for 3.000347 ("Không có thông tin").
    chat = Chat()
    reply = await chat.say("điều kiện đổi bằng lái", "ask_requirements", procedure_code=LICENCE)
    assert "Mã TTHC: 3.000347" in reply
    assert "chưa có thông tin về yêu cầu, điều kiện" in reply
    assert "1900 0000" in reply
    # What the record does hold follows in a second message, under which the buttons are.
    first, then = chat.messages
    assert "1900 0000" in first["text"] and "Thời gian giải quyết" in then["text"]
    assert then["buttons"] and not first.get("buttons")


async def test_missing_value_without_hotline_gives_the_national_portal(use_full_db: str) -> None:
    reply = await Chat().say("điều kiện đổi bằng lái", "ask_requirements", procedure_code=LICENCE)
    assert "chưa có thông tin về yêu cầu, điều kiện" in reply
    assert "Cổng Dịch vụ công quốc gia: https://dichvucong.gov.vn" in reply


async def test_procedure_info_overview(use_full_db: str) -> None:
    reply = await Chat().say(
        "thủ tục đổi giấy phép lái xe", "ask_procedure_info", procedure_code=LICENCE
    )
    assert "Mã TTHC: 3.000347" in reply
    assert "5 ngày làm việc" in reply
    assert "Sát hạch, cấp giấy phép lái xe" in reply  # field


async def test_follow_ups_stay_on_the_procedure(use_full_db: str) -> None:
    chat = Chat()
    first = await chat.say(
        "đổi giấy phép lái xe mất mấy ngày", "ask_processing_time", procedure="đổi giấy phép lái xe"
    )
    assert "Mã TTHC: 3.000347" in first
    assert chat.slots["procedure_code"] == LICENCE
    fee = await chat.say("còn lệ phí thì sao?", "ask_fee")
    assert "Mã TTHC: 3.000347" in fee and "135.000" in fee
    place = await chat.say("nộp ở đâu vậy?", "ask_submission_place")
    assert "Mã TTHC: 3.000347" in place and "Nơi nộp hồ sơ" in place
    online = await chat.say("có làm online được không", "ask_online_level")
    assert "Mã TTHC: 3.000347" in online and "Nộp trực tuyến" in online


async def test_naming_another_procedure_switches(use_full_db: str) -> None:
    chat = Chat()
    await chat.say("đổi bằng lái mất bao lâu", "ask_processing_time", procedure_code=LICENCE)
    reply = await chat.say(
        "thế còn đăng ký kết hôn cần giấy tờ gì", "ask_documents", procedure="đăng ký kết hôn"
    )
    assert "Mã TTHC: 1.000894" in reply
    assert chat.slots["procedure_code"] == "1.000894"
    again = await chat.say("lệ phí bao nhiêu", "ask_fee")
    assert "Mã TTHC: 1.000894" in again


def test_the_context_holds_the_earlier_procedures_of_the_session() -> None:
    def slot(code: str | None) -> dict[str, Any]:
        return {"event": "slot", "name": "procedure_code", "value": code}

    events = [slot("9.999999"), {"event": "session_started"}, slot(LICENCE), slot(None)]
    events += [slot("1.000894"), slot(LICENCE), slot("1.001193")]
    tracker = Tracker(
        "citizen", {"procedure_code": "1.001193"}, {}, events, False, None, {}, "action_listen"
    )
    context = context_of(tracker, "quay lại vụ kết hôn")
    assert context.current == "1.001193"
    # Latest first, each once; nothing from before the session started.
    assert context.earlier == (LICENCE, "1.000894")


def test_after_asking_which_one_the_list_is_what_the_conversation_is_about() -> None:
    slots = {
        "procedure_code": "1.001193",
        "procedure_candidates": [
            {"code": "1.014061", "name": "a"},
            {"code": "1.014064", "name": "b"},
        ],
        "pending_facts": ["overview"],
    }
    tracker = Tracker("citizen", slots, {}, [], False, None, {}, "action_listen")
    context = context_of(tracker, "bao lâu thì có")
    assert context.current is None
    assert context.offered == ("1.014061", "1.014064")
    assert context.earlier == ("1.001193",)
    # Alternatives offered beside an answer: the answered procedure stays current.
    answered = Tracker("citizen", {**slots, "pending_facts": None}, {}, [], False, None, {}, "")
    assert context_of(answered, "bao lâu thì có").current == "1.001193"


def test_after_a_list_the_asked_fact_is_read_as_in_any_later_turn() -> None:
    # The NLU's intent names a conversation's first question; a later turn's fact is the
    # learned model's, also when the bot has only listed candidates so far.
    slots = {"procedure_candidates": [{"code": "1.014061", "name": "a"}], "pending_facts": []}
    latest = {"text": "mang theo những gì", "intent": {"name": "ask_fee"}}
    listed = Tracker("citizen", slots, latest, [], False, None, {}, "action_listen")
    assert facts_for(listed, Target(hits=[]))[0] is Fact.DOCUMENTS
    first = Tracker("citizen", {}, latest, [], False, None, {}, "action_listen")
    assert facts_for(first, Target(hits=[]))[0] is Fact.FEE


def named_codes(chat: Chat) -> set[str]:
    """The codes the bot's last reply answered or offered (read as the bot evaluation reads)."""
    return set(reply_of(chat.messages).named)


@pytest.mark.parametrize(
    ("turns", "previous"),
    [
        (
            [
                ("đăng ký khai sinh cần giấy tờ gì", "ask_documents"),
                ("con cccd cho me thi sao", "ask_documents"),
            ],
            "1.001193",
        ),
        ([("xin phiếu lý lịch tư pháp số 2 để đi xuất khẩu lao động", "ask_procedure_info")], None),
    ],
)
async def test_a_follow_up_after_a_list_stays_with_the_list(
    turns: list[tuple[str, str]], previous: str | None, use_full_db: str
) -> None:
    chat = Chat()
    for text, intent in turns:
        await chat.say(text, intent)
    listed = named_codes(chat)
    assert listed and previous not in listed
    reply = await chat.say("bao lâu thì có", "ask_processing_time")
    # Answered or asked again (the time compared), about those listed: never the previous one.
    assert named_codes(chat) and named_codes(chat) <= listed, reply
    assert "Thời gian" in reply


@pytest.mark.parametrize(
    ("first", "correction", "meant"),
    [
        # Before, the card stayed among the three offered.
        ("cấp lại căn cước mất bao lâu", "không phải, ý em là cấp lại giấy khai sinh", None),
        (
            "đổi bằng lái hết hạn thế nào",
            "à nhầm, bằng cũ e đánh rơi mất r, h làm lại cần gì",
            "3.000348",
        ),
    ],
)
async def test_a_correction_never_gets_the_procedure_it_rejects(
    first: str, correction: str, meant: str | None, use_full_db: str
) -> None:
    chat = Chat()
    await chat.say(first, "ask_processing_time")
    rejected = chat.slots["procedure_code"]
    await chat.say(correction, "nlu_fallback")
    assert named_codes(chat) and rejected not in named_codes(chat)
    assert meant is None or chat.slots["procedure_code"] == meant


async def test_a_correction_read_as_a_denial_is_still_answered(use_full_db: str) -> None:
    chat = Chat()
    await chat.say("cấp lại căn cước mất bao lâu", "ask_processing_time")
    await chat.say("ko, cấp lại hộ chiếu cơ", "deny")
    assert named_codes(chat) and "1.014064" not in named_codes(chat)
    assert any(code in named_codes(chat) for code in ("1.001456", "2.001195", "1.001471"))
    reply = await chat.say("không cần nữa", "deny")
    assert reply == DOMAIN["responses"]["utter_deny"][0]["text"]


async def test_a_correction_of_the_question_keeps_the_procedure(use_full_db: str) -> None:
    chat = Chat()
    await chat.say("cấp lại căn cước mất bao lâu", "ask_processing_time")
    reply = await chat.say("không phải, ý em là hỏi lệ phí cơ", "ask_fee")
    assert "Mã TTHC: 1.014064" in reply and "70.000" in reply


async def test_a_word_the_list_lacks_brings_no_other_field_into_it(use_full_db: str) -> None:
    chat = Chat()
    await chat.say("ad ơi cho e hỏi làm hộ chiếu cho con 5 tuổi cần gì ạ", "ask_documents")
    listed = named_codes(chat)
    assert len(listed) >= 2
    # Before, "Đăng ký lại kết hôn" joined the list ("bố mẹ"), then was answered first.
    await chat.say("thế bố mẹ có phải đi cùng ko", "ask_fee")
    assert named_codes(chat) <= listed
    await chat.say("mấy ngày thì có", "ask_processing_time")
    assert named_codes(chat) <= listed


async def test_going_back_to_an_earlier_procedure(use_full_db: str) -> None:
    chat = Chat()
    await chat.say("đổi bằng lái mất bao lâu", "ask_processing_time", procedure_code=LICENCE)
    await chat.say("thế còn đăng ký kết hôn cần giấy tờ gì", "ask_documents")
    assert chat.slots["procedure_code"] == "1.000894"
    reply = await chat.say("quay lại chuyện đổi bằng lái, lệ phí bao nhiêu", "ask_fee")
    assert "Mã TTHC: 3.000347" in reply


async def test_entity_fragments_are_read_as_one_name(use_full_db: str) -> None:
    text = "khai báo tạm vắng mất bao lâu"
    reply = await Chat().say(text, "ask_processing_time", pieces=("khai", "tạm vắng"))
    assert "Mã TTHC: 1.003677" in reply  # Khai báo tạm vắng
    assert "1 ngày làm việc" in reply


async def test_words_outside_the_entity_still_count(use_full_db: str) -> None:
    # The entity kept "đăng ký thường trú"; the citizen asked about "Xóa đăng ký thường trú".
    text = "xóa đăng ký thường trú mất mấy ngày"
    reply = await Chat().say(text, "ask_processing_time", procedure="đăng ký thường trú")
    assert "Mã TTHC: 1.003197" in reply


async def test_a_full_description_picks_the_one_name_that_contains_it(use_full_db: str) -> None:
    # Several permits for "công trình cấp III, cấp IV"; only one is for a new building ("mới").
    text = "cấp giấy phép xây dựng mới công trình cấp III cấp IV mất bao lâu"
    reply = await Chat().say(text, "ask_processing_time", procedure="cấp giấy phép xây dựng")
    # Answered, or offered alone for confirmation with its processing time: either way the
    # first procedure the reply names is the new-building permit.
    assert re.findall(r"(?:Mã TTHC: |mã )(\d\.\d{6})", reply)[:1] == ["1.013225"], reply
    assert "Thời gian giải quyết" in reply


async def test_an_answer_is_one_message(use_full_db: str) -> None:
    chat = Chat()
    await chat.say("đổi bằng lái hết bao nhiêu, nộp ở đâu", "ask_fee", procedure_code=LICENCE)
    assert len(chat.messages) == 1
    assert "\n\n" not in chat.messages[0]["text"]  # the REST channel splits at blank lines


async def test_switch_with_the_same_question(use_full_db: str) -> None:
    chat = Chat()
    await chat.say("đổi bằng lái hết bao nhiêu tiền", "ask_fee", procedure_code=LICENCE)
    reply = await chat.say("thế còn đăng ký tạm trú?", "ask_procedure_info")
    assert "Mã TTHC: 1.004194" in reply
    assert "Phí, lệ phí" in reply and "7.000" in reply


async def test_switch_by_code_in_the_text(use_full_db: str) -> None:
    chat = Chat({"procedure_code": LICENCE})
    reply = await chat.say("thủ tục 1.001193 mất bao lâu", "ask_processing_time")
    assert "Mã TTHC: 1.001193" in reply


async def disambiguate(chat: Chat) -> str:
    # "giấy phép" alone names many procedures (driving, building, …): the bot asks among them.
    reply = await chat.say(
        "xin giấy phép mất bao lâu", "ask_processing_time", procedure="giấy phép"
    )
    assert 2 <= len(chat.buttons) <= 4
    assert "\n1. " not in reply  # buttons, not numbered text too (Zalo numbers the buttons)
    assert "Mã TTHC" not in reply
    return reply


def hits(*codes: str) -> list[SimpleNamespace]:
    """Ranked candidates as the resolver hands them to `offer` (names from the records)."""
    return [
        SimpleNamespace(code=code, name=get_procedure(code).name, score=1.0 - i / 100)
        for i, code in enumerate(codes)
    ]


async def test_close_candidates_that_agree_are_answered_once(use_full_db: str) -> None:
    dispatcher = CollectingDispatcher()
    ids = ("1.014061", "1.014062", "1.014063", "1.014064")  # the four căn cước procedures
    events = await offer(dispatcher, hits(*ids), ["time"])
    [message] = dispatcher.messages
    lines = message["text"].splitlines()
    shown = ids[:3]  # at most three: one phone screen
    assert lines[0] == "Thời gian giải quyết: 7 ngày làm việc — như nhau cho cả 3 thủ tục:"
    assert all(f"(mã {code})" in message["text"] for code in shown)
    assert "1.014064" not in message["text"]
    assert not any(line.startswith("1.") for line in lines)  # buttons, not numbers too
    assert [b["payload"] for b in message["buttons"]] == [choose_payload(c) for c in shown]
    assert events[1]["value"] == ["time"]  # the question waits for the pick


async def test_close_candidates_that_differ_get_one_line_each(use_full_db: str) -> None:
    dispatcher = CollectingDispatcher()
    await offer(dispatcher, hits("1.005126", "1.013225"), ["fee"])
    lines = dispatcher.messages[0]["text"].splitlines()
    assert lines[0] == "Phí, lệ phí của các thủ tục gần với câu hỏi của bạn:"
    assert lines[1].endswith("(mã 1.005126): Miễn phí")
    assert lines[2].endswith("(mã 1.013225): Theo quy định của Hội đồng nhân dân cấp tỉnh")


async def test_one_weak_candidate_is_asked_about_with_its_answer(use_full_db: str) -> None:
    dispatcher = CollectingDispatcher()
    await offer(dispatcher, hits("1.013076"), ["time"])
    lines = dispatcher.messages[0]["text"].splitlines()
    assert lines[0].startswith("Có phải bạn hỏi về thủ tục") and "(mã 1.013076)?" in lines[0]
    # The record has several times (per vehicle kind and method): all of them, as the bot says.
    assert lines[1].startswith("Thời gian giải quyết: Trực tuyến, Trực tiếp: 2 ngày làm việc;")


async def test_a_fact_that_cannot_be_compared_gives_the_plain_list(use_full_db: str) -> None:
    dispatcher = CollectingDispatcher()
    await offer(dispatcher, hits("1.014061", "1.014062", "1.014063", "1.014064", "1.004222"),
                ["documents"])  # fmt: skip
    text = dispatcher.messages[0]["text"]
    assert text.startswith("Có một số thủ tục gần với câu hỏi của bạn.")
    assert len(dispatcher.messages[0]["buttons"]) == 3  # at most three


async def test_disambiguation_then_button(use_full_db: str) -> None:
    chat = Chat()
    await disambiguate(chat)
    payload = chat.buttons[1]["payload"]
    code = json.loads(payload.removeprefix("/choose_procedure"))["procedure_code"]
    assert payload == choose_payload(code)
    assert all(len(b["title"]) <= 60 for b in chat.buttons)
    reply = await chat.say(payload, "choose_procedure", procedure_code=code)
    assert f"Mã TTHC: {code}" in reply
    assert "Thời gian giải quyết" in reply  # the original question, not an overview
    assert chat.slots["procedure_candidates"] is None


@pytest.mark.parametrize(
    ("typed", "intent", "index"),
    [("2", "nlu_fallback", 1), ("số 1", "choose_procedure", 0), ("cái thứ hai", "nlu_fallback", 1)],
)
async def test_disambiguation_then_typed_number(
    use_full_db: str, typed: str, intent: str, index: int
) -> None:
    chat = Chat()
    await disambiguate(chat)
    code = chat.slots["procedure_candidates"][index]["code"]
    reply = await chat.say(typed, intent)
    assert f"Mã TTHC: {code}" in reply
    assert "Thời gian giải quyết" in reply


async def test_disambiguation_then_typed_name(use_full_db: str) -> None:
    chat = Chat()
    await disambiguate(chat)
    wanted = chat.slots["procedure_candidates"][-1]
    reply = await chat.say(wanted["name"], "ask_procedure_info")
    assert f"Mã TTHC: {wanted['code']}" in reply
    assert "Thời gian giải quyết" in reply


async def test_several_questions_in_one_message(use_full_db: str) -> None:
    reply = await Chat().say(
        "đổi giấy phép lái xe làm ở đâu, mất bao lâu, bao nhiêu tiền?",
        "ask_submission_place",
        procedure="đổi giấy phép lái xe",
    )
    assert reply.count("Mã TTHC: 3.000347") == 1
    assert "Nơi nộp hồ sơ" in reply
    assert "5 ngày làm việc" in reply
    assert "135.000" in reply


async def test_question_without_procedure_asks_which_then_answers_it(use_full_db: str) -> None:
    chat = Chat()
    ask = await chat.say("lệ phí bao nhiêu vậy", "ask_fee")
    assert "thủ tục nào" in ask
    reply = await chat.say(
        "đổi giấy phép lái xe", "ask_procedure_info", procedure="đổi giấy phép lái xe"
    )
    assert "Mã TTHC: 3.000347" in reply and "135.000" in reply


async def test_nothing_found_says_so(use_full_db: str, profile_with_hotline: Path) -> None:
    reply = await Chat().say("qwzx vbnm plokij lệ phí", "ask_fee", procedure="qwzx vbnm plokij")
    assert "chưa tìm thấy thủ tục" in reply
    assert "1900 0000" in reply


async def test_fallback_twice_then_hotline(use_full_db: str, profile_with_hotline: Path) -> None:
    chat = Chat()
    first = await chat.say("ừm cái đó á", "nlu_fallback")
    assert "nói lại" in first and "1900 0000" not in first
    second = await chat.say("hmm", "nlu_fallback")
    assert "1900 0000" in second
    # The second failure in a row offers a person (the hand-over, intent ask_human).
    assert chat.buttons == [{"title": "Gặp cán bộ", "payload": "/ask_human"}]
    assert chat.slots["fallback_count"] == 0


async def test_fallback_still_answers_a_follow_up(use_full_db: str) -> None:
    chat = Chat({"procedure_code": LICENCE})
    reply = await chat.say("con phi thi sao", "nlu_fallback")
    assert "Mã TTHC: 3.000347" in reply and "135.000" in reply


async def test_out_of_scope_says_what_the_bot_does() -> None:
    reply = await Chat().say("hôm nay thời tiết thế nào", "out_of_scope")
    assert "thủ tục hành chính" in reply and "lệ phí" in reply


async def test_out_of_scope_still_answers_a_clear_procedure(use_full_db: str) -> None:
    """The classifier may call a story out of scope; the resolver is asked first."""
    reply = await Chat().say("đổi giấy phép lái xe mất bao lâu", "out_of_scope")
    assert "Mã TTHC: 3.000347" in reply


def test_out_of_scope_declines_an_unsure_repeat_of_the_current_procedure() -> None:
    current, other = Candidate("2.000815", "a", 0.6), Candidate("3.000333", "b", 0.3)
    assert only_unsure_of_current(Target(hits=[current]), current.code)
    assert only_unsure_of_current(Target(code=current.code, alternatives=[other]), current.code)
    assert not only_unsure_of_current(Target(code=current.code), current.code)  # sure
    assert not only_unsure_of_current(Target(hits=[current, other]), current.code)
    assert not only_unsure_of_current(Target(code=other.code), current.code)
    assert not only_unsure_of_current(Target(hits=[current]), None)


async def test_out_of_scope_in_a_conversation_still_switches(use_full_db: str) -> None:
    chat = Chat()
    await chat.say("chung thuc ban sao mat bao nhieu tien", "ask_fee")
    reply = await chat.say("còn lltp thì sao", "out_of_scope")
    assert "3.000333" in named_codes(chat) or "3.000330" in named_codes(chat), reply


async def test_out_of_scope_in_a_conversation_declines_what_only_the_conversation_suggests(
    use_full_db: str,
) -> None:
    """Unsure, the resolver offered the household-business procedures again for the weather."""
    chat = Chat()
    await chat.say("tôi muốn đăng ký kinh doanh hộ cá thể", "ask_procedure_info")
    assert chat.slots["procedure_code"] == "1.001612"
    reply = await chat.say("thời tiết hôm nay thế nào", "out_of_scope")
    assert not named_codes(chat), reply
    assert "thủ tục hành chính" in reply


async def test_fallback_asks_the_resolver_first(use_full_db: str) -> None:
    reply = await Chat().say("mất ví, mất luôn bằng lái, giờ làm lại ở đâu", "nlu_fallback")
    assert "3.000348" in reply


async def test_greeting_gives_examples(use_full_db: str) -> None:
    reply = await Chat().say("xin chào", "greet")
    assert reply.count("\n- ") >= 3


async def test_a_greeting_that_names_a_procedure_is_answered(use_full_db: str) -> None:
    reply = await Chat().say("xin chào, tôi cần xác nhận cư trú", "greet")
    assert "Mã TTHC: 1.010041" in reply, reply


async def test_thanks_in_a_conversation_are_only_thanks(use_full_db: str) -> None:
    chat = Chat()
    await chat.say("dang ky ket hon can gi", "ask_documents")
    assert chat.slots["procedure_code"] == "1.000894"
    reply = await chat.say("cảm ơn bạn nhiều", "thank")
    assert reply == DOMAIN["responses"]["utter_thank"][0]["text"]
    reply = await chat.say("ok cảm ơn ad, còn khai tử thì sao", "thank")
    assert "1.000656" in named_codes(chat), reply


async def test_yes_to_the_one_procedure_asked_about_answers_it(use_full_db: str) -> None:
    chat = Chat()
    await chat.say("con toi moi sinh duoc 1 thang, lam giay khai sinh o dau", "ask_fee")
    assert [c["code"] for c in chat.slots["procedure_candidates"]] == ["1.001193"]
    reply = await chat.say("dung roi", "affirm")
    assert "Mã TTHC: 1.001193" in reply and "Phí, lệ phí" in reply, reply
    # After an answer, "ok" is only "ok".
    reply = await chat.say("ok", "affirm")
    assert reply == DOMAIN["responses"]["utter_affirm"][0]["text"]


async def test_yes_to_a_list_asks_which_one(use_full_db: str) -> None:
    chat = Chat()
    await chat.say(
        "toi bi mat vi, mat luon can cuoc va bang lai xe, gio lam lai can gi", "ask_documents"
    )
    assert len(chat.slots["procedure_candidates"]) > 1
    reply = await chat.say("ok", "affirm")
    assert reply == DOMAIN["responses"]["utter_choose_one"][0]["text"]
    assert len(chat.slots["procedure_candidates"]) > 1  # the list still stands for the pick


@pytest.fixture
def handover_store_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The hand-over cannot be recorded (tests/test_handover.py covers when it can)."""
    monkeypatch.setenv("PROCEDURES_DB_URL", "postgresql://postgres@127.0.0.1:9/missing")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_human_handoff_from_the_profile(
    profile_with_hotline: Path, handover_store_down: None
) -> None:
    reply = await Chat().say("cho tôi gặp cán bộ", "ask_human")
    assert "1900 0000" in reply
    assert "7h30-17h00" in reply
    assert "dichvucong.gov.vn" in reply


async def test_human_handoff_with_unknown_profile_values(handover_store_down: None) -> None:
    reply = await Chat().say("cho tôi nói chuyện với người thật", "ask_human")
    assert "chưa có thông tin" not in reply
    assert "Tổng đài hỗ trợ Cổng Dịch vụ công quốc gia: 18001096" in reply
    assert "https://dichvucong.gov.vn" in reply


async def test_broken_database_gives_an_apology(
    monkeypatch: pytest.MonkeyPatch, profile_with_hotline: Path
) -> None:
    monkeypatch.setenv("PROCEDURES_DB_URL", "postgresql://postgres@127.0.0.1:9/missing")
    get_settings.cache_clear()
    chat = Chat()
    reply = await chat.say(
        "đổi bằng lái mất bao lâu", "ask_processing_time", procedure="đổi bằng lái"
    )
    assert "Xin lỗi" in reply and "1900 0000" in reply
    assert "procedure_code" not in chat.slots


async def test_slow_database_gives_an_apology(
    use_full_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow(*_args: object, **_kwargs: object) -> None:
        import time

        time.sleep(1.0)

    monkeypatch.setenv("ACTION_DB_TIMEOUT_S", "0.2")
    get_settings.cache_clear()
    monkeypatch.setattr("procedures_db.queries.get_procedure", slow)
    started = asyncio.get_running_loop().time()
    reply = await Chat().say(
        "đổi bằng lái mất bao lâu", "ask_processing_time", procedure_code=LICENCE
    )
    assert asyncio.get_running_loop().time() - started < 0.9
    assert "Xin lỗi" in reply and "dichvucong.gov.vn" in reply


async def test_unexpected_error_still_answers(
    use_full_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> str:
        raise ValueError("unexpected record shape")

    monkeypatch.setattr("actions.procedure_answers.procedure_answer", broken)
    reply = await Chat().say(
        "đổi bằng lái mất bao lâu", "ask_processing_time", procedure_code=LICENCE
    )
    assert "Xin lỗi" in reply and "dichvucong.gov.vn" in reply


async def test_lookup_failure_is_typed() -> None:
    def boom() -> None:
        raise OSError("disk gone")

    with pytest.raises(lookup.LookupFailed):
        await lookup._call(boom)
