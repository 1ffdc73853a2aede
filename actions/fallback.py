"""Low NLU confidence: a pick or a follow-up is still answered; else rephrase, then hotline."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.disambiguation import picked_code
from actions.procedure_answers import (
    EXAMPLES,
    FALLBACK_COUNT_SLOT,
    PROCEDURE_SLOT,
    contact_profile,
    guarded,
    respond,
)
from actions.questions import Fact, codes_in, facts_asked
from procedures_db.profile import contact_hint


def still_answerable(tracker: Tracker) -> bool:
    """A typed pick, a code, or a fact cue about the current procedure needs no clear intent."""
    text = tracker.latest_message.get("text") or ""
    if picked_code(tracker) or codes_in(text):
        return True
    return bool(tracker.get_slot(PROCEDURE_SLOT)) and facts_asked(None, text) != [Fact.OVERVIEW]


class ActionFallback(Action):
    def name(self) -> str:
        return "action_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        return await guarded(dispatcher, self.reply(dispatcher, tracker))

    async def reply(
        self, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[dict[str, Any]]:
        if still_answerable(tracker):
            return await respond(dispatcher, tracker)
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
