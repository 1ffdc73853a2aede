"""Greetings, thanks and "yes" that carry more than small talk.

"xin chào, tôi cần xác nhận cư trú" (greet for the classifier) names a procedure; "ok cảm ơn
ad, còn khai tử thì sao" (thank) switches to one; "đúng rồi" after "Có phải bạn hỏi về thủ tục
X?" accepts X. Each is answered; plain small talk still gets its fixed reply.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.disambiguation import CANDIDATES_SLOT, PENDING_FACTS_SLOT
from actions.fallback import ResolverFirst, names_a_procedure, resolved
from actions.procedure_answers import Target, answer_target


async def named_by_the_message(tracker: Tracker) -> Target | None:
    """The resolver's target when the message alone names a procedure (the conversation would
    otherwise make "cảm ơn bạn nhiều" a follow-up of the procedure just answered)."""
    return await resolved(tracker) if await names_a_procedure(tracker) else None


class SmallTalk(ResolverFirst):
    """A fixed reply, unless the message also names a procedure."""

    response = ""

    def name(self) -> str:
        return "action_" + self.response.removeprefix("utter_")

    async def reply(
        self, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[dict[str, Any]]:
        target = await named_by_the_message(tracker)
        if target:
            return await answer_target(dispatcher, tracker, target)
        dispatcher.utter_message(response=self.response)
        return []


class ActionGreet(SmallTalk):
    response = "utter_greet"


class ActionThank(SmallTalk):
    response = "utter_thank"


def asked_about(tracker: Tracker) -> list[str]:
    """The procedures of the bot's last question ("Có phải bạn hỏi về thủ tục X?" or a list to
    choose from, the question kept for the answer); none after an answer."""
    if tracker.get_slot(PENDING_FACTS_SLOT) is None:
        return []
    return [c.get("code") for c in tracker.get_slot(CANDIDATES_SLOT) or [] if c.get("code")]


class ActionAffirm(SmallTalk):
    """ "Đúng rồi" to "Có phải bạn hỏi về thủ tục X?" answers X (the pending question); to a
    list, it asks which one ("Vâng. Bạn cứ hỏi tiếp" would leave the question unanswered)."""

    response = "utter_affirm"

    async def reply(
        self, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[dict[str, Any]]:
        codes = asked_about(tracker)
        if len(codes) == 1:
            return await answer_target(dispatcher, tracker, Target(code=codes[0], picked=True))
        if codes:
            dispatcher.utter_message(response="utter_choose_one")
            return []
        return await super().reply(dispatcher, tracker)
