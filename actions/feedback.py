"""A citizen rates an answer ("Hữu ích" / "Chưa đúng"): thank them; Rasa keeps the rating in the
conversation (the user event's entities), where the staff unanswered page reads it."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.formatting import HELPFUL, WRONG
from actions.lookup import get_profile_or_default
from procedures_db.profile import contact_hint


def rating_of(tracker: Tracker) -> str | None:
    ratings = [v for v in tracker.get_latest_entity_values("rating") if v in (HELPFUL, WRONG)]
    return ratings[0] if ratings else None


class ActionFeedback(Action):
    def name(self) -> str:
        return "action_feedback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        if rating_of(tracker) == WRONG:
            hint = contact_hint(await get_profile_or_default())
            dispatcher.utter_message(
                text="Cảm ơn bạn đã báo. Câu trả lời này đã được ghi lại để cán bộ kiểm tra và"
                f" sửa. {hint}"
            )
        else:
            dispatcher.utter_message(text="Cảm ơn bạn đã góp ý!")
        return []
