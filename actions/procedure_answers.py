"""Answer questions about a procedure: find it, remember it, answer every fact asked.

Which procedure a message is about is the resolver's call (`procedures_db.resolver`): the whole
message, the NLU's procedure span, the current procedure and the last offered candidates go in;
ranked procedures with calibrated probabilities and a decision come out. A typed pick among
offered candidates (button payload, number, name) is read first. Then:
- answer: answer the best procedure;
- suggest: answer the best and offer the close alternatives as buttons;
- ask: offer the plausible ones and keep the question for the pick;
- not found: say so (or ask which procedure, when the message names none).
Follow-up or switch is decided by the same probabilities (the current procedure is a candidate).
The facts asked come from the intent (in a conversation's later turns, from the learned
asked-fact model, `procedures_db.asked`) plus cue words (multi-question messages); after a
disambiguation the original question, kept in the `pending_facts` slot, is answered; "còn X
thì sao?" asks the last question (`last_facts`) again about X.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import lookup
from actions.disambiguation import (
    CANDIDATES_SLOT,
    PENDING_FACTS_SLOT,
    choose_payload,
    offer,
    picked_code,
)
from actions.formatting import buttons_for, procedure_answer, wants_full
from actions.questions import (
    Fact,
    codes_in,
    correction_rest,
    facts_asked,
    mentions_level_number,
    procedure_words,
)
from procedures_db.asked import asks_same_again
from procedures_db.profile import ProvinceProfile, contact_hint, outage_apology
from procedures_db.resolver import Candidate, Context, Decision, Resolution
from procedures_db.resolver.features import MAX_EARLIER, earlier_procedures
from procedures_db.search import short_title

logger = logging.getLogger(__name__)

PROCEDURE_SLOT = "procedure_code"
FALLBACK_COUNT_SLOT = "fallback_count"
LAST_FACTS_SLOT = "last_facts"
CHOOSE_INTENT = "choose_procedure"
EXAMPLES = 'Ví dụ: "Đổi giấy phép lái xe cần giấy tờ gì?" hoặc "Đăng ký khai sinh ở đâu?"'


# Asking which one: the candidates offered beside the best are those at least this share as likely
# (the list shows three at most). Read off the out-of-fold rankings of the dev real questions:
# 0.1 named the right procedure for 69.5 % of them, 0.05 for 71.2 % (2.4 names a reply instead
# of 2.1), 0.02 for 72.0 % (2.6 names): BENCHMARKS.md, "Calibration and thresholds".
ASK_AMONG_SHARE = 0.05


@dataclass
class Target:
    """Where a message leads: one procedure (with close alternatives), a list, or nothing."""

    code: str | None = None
    picked: bool = False  # chosen among offered candidates
    alternatives: list[Candidate] = field(default_factory=list)  # offered beside the answer
    hits: list[Candidate] = field(default_factory=list)  # to choose from
    ask_which: bool = False


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


def procedures_so_far(tracker: Tracker) -> list[str]:
    """The procedures this session was about, in turn (the procedure slot's values)."""
    codes: list[str] = []
    for event in tracker.events or []:
        if event.get("event") == "session_started":
            codes = []
        elif event.get("event") == "slot" and event.get("name") == PROCEDURE_SLOT:
            codes += [event["value"]] if isinstance(event.get("value"), str) else []
    return codes


def context_of(tracker: Tracker, text: str) -> Context:
    offered = tracker.get_slot(CANDIDATES_SLOT) or []
    current = tracker.get_slot(PROCEDURE_SLOT)
    earlier = earlier_procedures(procedures_so_far(tracker))[1]
    if offered and tracker.get_slot(PENDING_FACTS_SLOT) is not None:
        # The bot asked which one and answered nothing: the list is what the conversation is
        # about now ("bao lâu thì có" asks about those offered), the answered one is earlier.
        earlier = tuple(c for c in (current, *earlier) if c)[:MAX_EARLIER]
        current = None
    return Context(
        current=current,
        offered=tuple(c["code"] for c in offered if isinstance(c, dict) and c.get("code")),
        span=procedure_span(tracker, text),
        earlier=tuple(c for c in earlier if c != current),
    )


def rejected_by(correction: bool, context: Context, resolution: Resolution) -> tuple[str, ...]:
    """What a correction rejects once its ranking names another procedure: the one just
    answered, or the ones just offered ("không phải, ý em là …" may also correct the question,
    then the best is still the procedure answered)."""
    best = resolution.best
    if best is None or not correction:
        return ()
    if context.current:
        return (context.current,) if best.code != context.current else ()
    return context.offered if best.code not in context.offered else ()


async def find_target(tracker: Tracker, text: str) -> Target:
    picked = picked_code(tracker)
    if picked:
        return Target(code=picked, picked=True)
    codes = codes_in(text)  # a typed code identifies; nothing to rank
    if codes:
        return Target(code=codes[0])
    context = context_of(tracker, text)
    rest = correction_rest(text)
    text = rest or text  # "không phải, ý em là X": the denial names no procedure
    resolution = await lookup.resolve(text, context)
    rejected = rejected_by(rest is not None, context, resolution)
    if rejected:
        resolution = await lookup.resolve(text, replace(context, rejected=rejected))
    best = resolution.best
    if resolution.decision is Decision.ANSWER:
        return Target(code=best.code)
    if resolution.decision is Decision.SUGGEST:
        return Target(code=best.code, alternatives=resolution.alternatives())
    if resolution.decision is Decision.ASK:
        hits = [best, *resolution.alternatives(share=ASK_AMONG_SHARE)]
        return Target(hits=asked_again(hits, context) if not context.current else hits)
    return Target(ask_which=not procedure_words(text))


def asked_again(hits: list[Candidate], context: Context) -> list[Candidate]:
    """Asking again after a list: a procedure joins those offered only when likelier than one
    of them. A word the list's procedures lack ("gia hạn thì sao", "bố mẹ có phải đi cùng ko")
    otherwise brought in a procedure of another field, which the next turn then answered first."""
    listed = [h.probability for h in hits if h.code in context.offered]
    if not listed:
        return hits
    return [h for h in hits if h.code in context.offered or h.probability > min(listed)]


def _slot_facts(tracker: Tracker, slot: str) -> list[Fact]:
    return [Fact(f) for f in tracker.get_slot(slot) or []]


def facts_for(tracker: Tracker, target: Target) -> list[Fact]:
    """The question to answer: a pick answers the pending one, "còn X thì sao?" repeats the
    last one, else the intent (the asked-fact model once a procedure is under way) plus cue
    words."""
    latest = tracker.latest_message
    text = latest.get("text") or ""
    pending = _slot_facts(tracker, PENDING_FACTS_SLOT)
    intent = (latest.get("intent") or {}).get("name")
    if intent == CHOOSE_INTENT or target.picked:
        return pending or [Fact.OVERVIEW]
    # A later turn (a procedure answered or a list offered): the asked-fact model reads it.
    in_conversation = bool(tracker.get_slot(PROCEDURE_SLOT) or tracker.get_slot(CANDIDATES_SLOT))
    facts = facts_asked(intent, text, in_conversation)
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
    buttons = buttons_for(reply, details.code)
    if reply.then:  # the buttons go under the last message
        dispatcher.utter_message(text=reply.text)
    dispatcher.utter_message(text=reply.then or reply.text, buttons=buttons)
    return answered(details.code, facts)


def offer_alternatives(
    dispatcher: CollectingDispatcher, alternatives: list[Candidate]
) -> list[dict[str, Any]]:
    """After answering the likeliest procedure: the close ones, one tap away."""
    dispatcher.utter_message(
        text="Hay bạn hỏi về thủ tục khác:",  # one line on a phone, with the answer above
        buttons=[
            {"title": short_title(c.name), "payload": choose_payload(c.code)} for c in alternatives
        ],
    )
    return [SlotSet(CANDIDATES_SLOT, [{"code": c.code, "name": c.name} for c in alternatives])]


async def respond(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
    """Find the procedure the latest message is about and answer it (or ask which one)."""
    text = tracker.latest_message.get("text") or ""
    try:
        target = await find_target(tracker, text)
    except lookup.LookupFailed:
        return await apologize(dispatcher)
    return await answer_target(dispatcher, tracker, target)


async def answer_target(
    dispatcher: CollectingDispatcher, tracker: Tracker, target: Target
) -> list[dict[str, Any]]:
    text = tracker.latest_message.get("text") or ""
    try:
        facts = facts_for(tracker, target)
        if target.code:
            events = await answer_code(dispatcher, target.code, facts, text)
            if target.alternatives:
                events += offer_alternatives(dispatcher, target.alternatives)
            return events
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
