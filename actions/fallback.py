"""Low NLU confidence or an out-of-scope intent: the resolver is asked first.

A message the intent classifier is unsure of (or calls out of scope) may still name a procedure
clearly, in a story the classifier never saw: the resolver's decision is taken before any
"I did not understand". Only when it finds nothing likely does the bot ask to rephrase (then
give the hotline), or say what it can help with.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import lookup
from actions.procedure_answers import (
    EXAMPLES,
    FALLBACK_COUNT_SLOT,
    PROCEDURE_SLOT,
    Target,
    answer_target,
    contact_profile,
    find_target,
    guarded,
)
from actions.questions import correction_rest
from procedures_db.profile import contact_hint
from procedures_db.resolver import Context, Decision


async def resolved(tracker: Tracker) -> Target | None:
    """The resolver's target (an answer or candidates to offer) when some procedure is likelier
    than none; None to fall back."""
    target = await find_target(tracker, latest_text(tracker))
    if target.code or target.hits:
        return target
    return None


class ResolverFirst(Action, ABC):
    """An action whose `reply` runs guarded: any unexpected error still answers the citizen
    (abstract: rasa_sdk registers only its subclasses)."""

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        return await guarded(dispatcher, self.reply(dispatcher, tracker))

    @abstractmethod
    async def reply(
        self, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[dict[str, Any]]: ...


class ActionFallback(ResolverFirst):
    def name(self) -> str:
        return "action_fallback"

    async def reply(
        self, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[dict[str, Any]]:
        target = await resolved(tracker)
        if target:
            return await answer_target(dispatcher, tracker, target)
        count = int(tracker.get_slot(FALLBACK_COUNT_SLOT) or 0)
        if count == 0:
            dispatcher.utter_message(
                text="Xin lỗi, tôi chưa hiểu rõ câu hỏi. Bạn nói lại giúp tôi, nêu tên thủ tục"
                f" và điều bạn muốn biết nhé. {EXAMPLES}"
            )
            return [SlotSet(FALLBACK_COUNT_SLOT, 1.0)]
        profile = await contact_profile()
        # The second failure in a row: offer a person (the button sends the ask_human intent).
        dispatcher.utter_message(
            text=f"Xin lỗi, tôi vẫn chưa hiểu câu hỏi của bạn. {contact_hint(profile)}"
            " Bạn cũng có thể nhắn với cán bộ tổng đài ngay tại đây.",
            buttons=[{"title": "Gặp cán bộ", "payload": "/ask_human"}],
        )
        return [SlotSet(FALLBACK_COUNT_SLOT, 0.0)]


class ActionOutOfScope(ResolverFirst):
    """Out of scope for the classifier; answered (or the likely procedures offered) when the
    resolver finds some procedure likelier than none ("còn lltp thì sao")."""

    def name(self) -> str:
        return "action_out_of_scope"

    async def reply(
        self, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[dict[str, Any]]:
        target = await resolved(tracker)
        if target and not await only_from_the_conversation(target, tracker):
            return await answer_target(dispatcher, tracker, target)
        dispatcher.utter_message(response="utter_out_of_scope")
        return []


class ActionDeny(ResolverFirst):
    """ "No" ("không cần nữa"), or a correction that names the procedure meant ("ko, cấp lại hộ
    chiếu cơ"), which the classifier may also read as a denial: the latter is answered."""

    def name(self) -> str:
        return "action_deny"

    async def reply(
        self, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[dict[str, Any]]:
        target = await resolved(tracker) if correction_rest(latest_text(tracker)) else None
        if target:
            return await answer_target(dispatcher, tracker, target)
        dispatcher.utter_message(response="utter_deny")
        return []


def latest_text(tracker: Tracker) -> str:
    return tracker.latest_message.get("text") or ""


async def only_from_the_conversation(target: Target, tracker: Tracker) -> bool:
    """The resolver, unsure, offers what the conversation suggests and the message alone names
    nothing: "thời tiết hôm nay thế nào" after a question on a household business got the
    business procedures listed. A confident answer stays (a follow-up the classifier calls out
    of scope), and so does an unsure one the message names by itself ("còn lltp thì sao")."""
    current = tracker.get_slot(PROCEDURE_SLOT)
    if only_unsure_of_current(target, current):
        return True
    if current is None or (target.code is not None and not target.alternatives):
        return False
    return not await names_a_procedure(tracker)


async def names_a_procedure(tracker: Tracker) -> bool:
    """The latest message alone, without the conversation, makes some procedure likely."""
    alone = await lookup.resolve(latest_text(tracker), Context())
    return alone.decision is not Decision.NOT_FOUND


def only_unsure_of_current(target: Target, current: str | None) -> bool:
    """The resolver, unsure, can only offer the conversation's procedure again: for a message the
    classifier calls out of scope ("thời tiết hôm nay thế nào" after a question on
    certification) that is the conversation's prior speaking, not the message. A confident
    answer about the current procedure stays: declining every such turn cost 26 of the 5,621
    dev conversation turns (follow-ups the classifier calls out of scope; BENCHMARKS.md)."""
    if current is None:
        return False
    if target.code is not None:
        return target.code == current and bool(target.alternatives)
    return all(hit.code == current for hit in target.hits)
