"""Answer questions about a procedure: find it, remember it, answer every fact asked.

How a message is tied to a procedure (follow-up versus switch):
1. a picked candidate (button payload, typed number or name) after a disambiguation;
2. a procedure code (entity `procedure_code` or a code typed in the text) -> that code;
3. no `procedure` entity and, without question and filler words, fewer than two words left
   ("còn lệ phí thì sao?", "nộp ở đâu vậy?"): a follow-up on the current procedure;
4. otherwise search the `procedure` entity span, the whole message and the message without
   its question words; a clear winner switches (or stays, if it is the current one); clear
   winners that disagree are decided by how much of the message their names cover. Without
   a clear winner the current procedure stays when any search found it or the best hits do
   not cover the message's words (a follow-up with more detail: "người nước ngoài có làm
   được không"); a description of four or more words that only one of the close names
   contains in full names that one; else the best hits are offered.
The facts asked come from the intent plus cue words (multi-question messages); after a
disambiguation the original question, kept in the `pending_facts` slot, is answered; "còn X
thì sao?" asks the last question (`last_facts`) again about X.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import lookup
from actions.disambiguation import (
    CANDIDATES_SLOT,
    MAX_CANDIDATES,
    PENDING_FACTS_SLOT,
    offer,
    picked_code,
)
from actions.formatting import buttons_for, procedure_answer, wants_full
from actions.questions import (
    Fact,
    asks_same_again,
    codes_in,
    facts_asked,
    mentions_level_number,
    procedure_phrase,
    procedure_words,
)
from procedures_db.profile import ProvinceProfile, contact_hint, outage_apology
from procedures_db.search import SearchHit, has_clear_winner
from procedures_db.text import tokens

logger = logging.getLogger(__name__)

PROCEDURE_SLOT = "procedure_code"
FALLBACK_COUNT_SLOT = "fallback_count"
LAST_FACTS_SLOT = "last_facts"
FULL_NAME_WORDS = 4  # distinct words a description needs before it can pick a name alone
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


def procedure_span(tracker: Tracker, text: str) -> str | None:
    """The `procedure` entity, from its first to its last piece: the entity extractor often cuts
    one name into fragments ("khai" + "tạm vắng" in "khai báo tạm vắng mất bao lâu")."""
    pieces = [
        e
        for e in tracker.latest_message.get("entities") or []
        if e.get("entity") == "procedure" and e.get("value")
    ]
    if not pieces:
        return None
    starts, ends = [e.get("start") for e in pieces], [e.get("end") for e in pieces]
    if None in starts or None in ends:
        return " ".join(str(e["value"]) for e in pieces)
    return text[min(starts) : max(ends)]


def coverage(words: list[str], name: str) -> float:
    """The share of the message's procedure words that appear in this procedure name."""
    name_words = set(tokens(name))
    return sum(w in name_words for w in words) / len(words) if words else 1.0


async def find_target(tracker: Tracker, text: str, current: str | None) -> Target:
    picked = picked_code(tracker)
    if picked:
        return Target(code=picked, picked=True)
    codes = entity_values(tracker, "procedure_code") + codes_in(text)
    if codes:
        return Target(code=codes[0])
    span = procedure_span(tracker, text)
    words = procedure_words(text)
    if current and not span and len(words) < 2:
        return Target(code=current)
    if not span and not words:
        return Target(ask_which=True)
    # The span first, then the whole message, then the message without its question words
    # (which can outweigh a short name: "nộp" in "đăng ký thường trú nộp ở đâu" also matches
    # "Đăng ký thuế ... nộp thay").
    queries = list(dict.fromkeys(q for q in (span, text, procedure_phrase(text)) if q))
    results = [await lookup.search_procedures(query) for query in queries]
    winners = [hits[0] for hits in results if has_clear_winner(hits)]
    if winners:
        # Clear winners that disagree: the name that covers most of the message's words
        # ("xóa đăng ký thường trú" when the entity kept only "đăng ký thường trú").
        best = max(winners, key=lambda hit: coverage(words, hit.name))
        return Target(code=best.code)
    # The list to offer: the search whose best hit covers most of the message, then scores best.
    hits = max(results, key=lambda h: (coverage(words, h[0].name), h[0].score) if h else (-1, 0))
    found = {hit.code for result in results for hit in result}
    if current and (not hits or current in found or coverage(words, hits[0].name) < 0.75):
        return Target(code=current)
    # A long description that only one of the close names contains in full names that one.
    full = [hit for hit in hits[:MAX_CANDIDATES] if coverage(words, hit.name) == 1.0]
    if len(full) == 1 and len(set(words)) >= FULL_NAME_WORDS:
        return Target(code=full[0].code)
    return Target(hits=hits)


def _slot_facts(tracker: Tracker, slot: str) -> list[Fact]:
    return [Fact(f) for f in tracker.get_slot(slot) or []]


def facts_for(tracker: Tracker, target: Target) -> list[Fact]:
    """The question to answer: a pick answers the pending one, "còn X thì sao?" repeats the
    last one, else the intent plus cue words."""
    latest = tracker.latest_message
    text = latest.get("text") or ""
    pending = _slot_facts(tracker, PENDING_FACTS_SLOT)
    intent = (latest.get("intent") or {}).get("name")
    if intent == CHOOSE_INTENT or target.picked:
        return pending or [Fact.OVERVIEW]
    facts = facts_asked(intent, text)
    if facts != [Fact.OVERVIEW]:
        return facts
    if pending:
        return pending
    last = _slot_facts(tracker, LAST_FACTS_SLOT)
    return last if last and asks_same_again(text) else facts


async def contact_profile() -> ProvinceProfile:
    """The province profile, or the default (national portal only) when it cannot be read."""
    try:
        return await lookup.get_profile()
    except lookup.LookupFailed:
        return ProvinceProfile()


async def guarded(
    dispatcher: CollectingDispatcher, work: Awaitable[list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Run an action's work; any unexpected error still gives the citizen an answer."""
    try:
        return await work
    except Exception:
        logger.exception("action failed")
        return await apologize(dispatcher)


async def apologize(dispatcher: CollectingDispatcher) -> list[dict[str, Any]]:
    dispatcher.utter_message(text=outage_apology(await contact_profile()))
    return []


def answered(code: str, facts: list[Fact]) -> list[dict[str, Any]]:
    return [
        SlotSet(PROCEDURE_SLOT, code),
        SlotSet(LAST_FACTS_SLOT, [fact.value for fact in facts]),
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
    reply = procedure_answer(
        details,
        facts,
        profile,
        level_scale=mentions_level_number(text),
        question=text,
        full_documents=wants_full(text),
    )
    dispatcher.utter_message(text=reply.text, buttons=buttons_for(reply, details.code))
    return answered(details.code, facts)


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
        return await offer(dispatcher, target.hits, pending)
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
        return await guarded(dispatcher, respond(dispatcher, tracker))
