"""Answer questions about a procedure: find it, remember it, answer every fact asked.

How a message is tied to a procedure (follow-up versus switch):
1. a picked candidate (button payload, typed number or name) after a disambiguation;
2. a procedure code (entity `procedure_code` or a code typed in the text) -> that code;
3. a `procedure` entity span -> search(span): a clear winner switches to it; if the current
   procedure is among the hits it stays (follow-up); otherwise the hits are offered;
4. no entity: if the message, without question and filler words, keeps fewer than two words
   ("còn lệ phí thì sao?", "nộp ở đâu vậy?") it is a follow-up on the current procedure;
   otherwise the whole message is searched, then the message without its question words if
   that finds no clear winner. A clear winner switches (or stays, if it is the current one).
   Without a clear winner the current procedure stays when it is among the hits or the hits
   do not cover the words (a follow-up with more detail: "người nước ngoài có làm được
   không"); else the hits are offered.
The facts asked come from the intent plus cue words (multi-question messages); after a
disambiguation the original question, kept in the `pending_facts` slot, is answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import lookup
from actions.disambiguation import CANDIDATES_SLOT, PENDING_FACTS_SLOT, offer, picked_code
from actions.formatting import contact_hint, procedure_answer
from actions.questions import (
    Fact,
    codes_in,
    facts_asked,
    mentions_level_number,
    procedure_phrase,
    procedure_words,
)
from procedures_db.profile import ProvinceProfile
from procedures_db.search import SearchHit, has_clear_winner
from procedures_db.text import tokens

PROCEDURE_SLOT = "procedure_code"
FALLBACK_COUNT_SLOT = "fallback_count"
CHOOSE_INTENT = "choose_procedure"
EXAMPLES = 'Ví dụ: "Đổi giấy phép lái xe cần giấy tờ gì?" hoặc "Đăng ký khai sinh ở đâu?"'


@dataclass
class Target:
    """Where a message leads: one procedure, a list to choose from, or nothing found."""

    code: str | None = None
    picked: bool = False  # chosen among offered candidates
    hits: list[SearchHit] = field(default_factory=list)
    ask_which: bool = False


def entity_values(tracker: Tracker, name: str) -> list[str]:
    return [str(v) for v in tracker.get_latest_entity_values(name) if v]


def _covers(words: list[str], name: str) -> bool:
    """Most of the message's procedure words appear in this procedure name."""
    name_words = set(tokens(name))
    return sum(w in name_words for w in words) >= 0.75 * len(words)


async def find_target(tracker: Tracker, text: str, current: str | None) -> Target:
    picked = picked_code(tracker)
    if picked:
        return Target(code=picked, picked=True)
    codes = entity_values(tracker, "procedure_code") + codes_in(text)
    if codes:
        return Target(code=codes[0])
    for span in entity_values(tracker, "procedure"):
        hits = await lookup.search_procedures(span)
        if hits and has_clear_winner(hits):
            return Target(code=hits[0].code)
        if current and current in [hit.code for hit in hits]:
            return Target(code=current)
        if hits:
            return Target(hits=hits)
    words = procedure_words(text)
    if current and len(words) < 2:
        return Target(code=current)
    if not words:
        return Target(ask_which=True)
    hits = await lookup.search_procedures(text)
    phrase = procedure_phrase(text)
    if not has_clear_winner(hits) and phrase and phrase != text:
        # The question words can outweigh a short name ("nộp" in "đăng ký thường trú nộp ở
        # đâu" also matches "Đăng ký thuế ... nộp thay"): try the name alone.
        hits = await lookup.search_procedures(phrase) or hits
    if hits and has_clear_winner(hits):
        return Target(code=hits[0].code)
    if current and (
        not hits or current in [hit.code for hit in hits] or not _covers(words, hits[0].name)
    ):
        return Target(code=current)
    return Target(hits=hits)


def facts_for(tracker: Tracker, target: Target) -> list[Fact]:
    """The question to answer: a pick answers the pending one, else intent + cue words."""
    latest = tracker.latest_message
    pending = [Fact(f) for f in tracker.get_slot(PENDING_FACTS_SLOT) or []]
    intent = (latest.get("intent") or {}).get("name")
    if intent == CHOOSE_INTENT or target.picked:
        return pending or [Fact.OVERVIEW]
    facts = facts_asked(intent, latest.get("text") or "")
    return pending if facts == [Fact.OVERVIEW] and pending else facts


async def contact_profile() -> ProvinceProfile:
    """The province profile, or the default (national portal only) when it cannot be read."""
    try:
        return await lookup.get_profile()
    except lookup.LookupFailed:
        return ProvinceProfile()


async def apologize(dispatcher: CollectingDispatcher) -> list[dict[str, Any]]:
    profile = await contact_profile()
    dispatcher.utter_message(
        text="Xin lỗi, hệ thống tra cứu thủ tục đang gặp sự cố nên tôi chưa trả lời được. "
        + contact_hint(profile)
    )
    return []


def answered(code: str) -> list[dict[str, Any]]:
    return [
        SlotSet(PROCEDURE_SLOT, code),
        SlotSet(CANDIDATES_SLOT, None),
        SlotSet(PENDING_FACTS_SLOT, None),
        SlotSet(FALLBACK_COUNT_SLOT, 0.0),
    ]


async def answer_code(
    dispatcher: CollectingDispatcher, code: str, facts: list[Fact], text: str
) -> list[dict[str, Any]]:
    details = await lookup.get_procedure(code)
    profile = await contact_profile()
    if details is None:
        dispatcher.utter_message(
            text=f"Không tìm thấy thủ tục có mã {code} trong cơ sở dữ liệu. {contact_hint(profile)}"
        )
        return [SlotSet(CANDIDATES_SLOT, None)]
    level_scale = mentions_level_number(text)
    dispatcher.utter_message(
        text=procedure_answer(details, facts, profile, level_scale=level_scale)
    )
    return answered(details.code)


async def respond(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
    """Find the procedure the latest message is about and answer it (or ask which one)."""
    text = tracker.latest_message.get("text") or ""
    current = tracker.get_slot(PROCEDURE_SLOT)
    try:
        target = await find_target(tracker, text, current)
        facts = facts_for(tracker, target)
        if target.code:
            return await answer_code(dispatcher, target.code, facts, text)
        profile = await contact_profile()
    except lookup.LookupFailed:
        return await apologize(dispatcher)
    # Keep the question: the next message may only name (or pick) the procedure.
    pending = [fact.value for fact in facts]
    if target.hits:
        return offer(dispatcher, target.hits, pending)
    if target.ask_which:
        dispatcher.utter_message(text=f"Bạn muốn hỏi về thủ tục nào? {EXAMPLES}")
        return [SlotSet(PENDING_FACTS_SLOT, pending)]
    dispatcher.utter_message(
        text="Xin lỗi, tôi chưa tìm thấy thủ tục nào phù hợp với câu hỏi của bạn. "
        f"Bạn thử diễn đạt lại, nêu rõ tên thủ tục. {EXAMPLES} {contact_hint(profile)}"
    )
    return [SlotSet(PENDING_FACTS_SLOT, pending)]


class ActionAnswerProcedure(Action):
    def name(self) -> str:
        return "action_answer_procedure"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        return await respond(dispatcher, tracker)
